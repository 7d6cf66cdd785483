"""One owner per run directory: an advisory lock that the kernel releases when its process dies.

Every command that writes a directory (`cwm-ingest --out`, `cwm-train --out`, `cwm-rl`'s replay)
takes `<dir>/.lock` with `flock` before it touches anything there. A second command on the same
directory fails at once with one line naming the holder, instead of deleting the first one's
temporaries or interleaving its checkpoints. `kill -9` needs no clean-up: the lock dies with the
process, and the next run takes it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator

from cwm.errors import UserError

LOCK_NAME = ".lock"


class DirLock:
    """An exclusive lock on `directory` (created if missing); `release()` or process exit frees it."""

    def __init__(self, directory: str | os.PathLike, what: str):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"cannot use {self.directory} for {what}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise UserError(f"{self.directory} is in use by another {holder or 'process'}; "
                                f"wait for it to end or choose another directory") from None
            raise UserError(f"cannot lock {self.directory}: {e.strerror}") from None
        self._fd: int | None = fd
        with contextlib.suppress(OSError):       # who holds it, for the message above
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{what} (pid {os.getpid()})\n".encode(), 0)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DirLock":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    with contextlib.suppress(OSError, UnicodeDecodeError):
        return os.pread(fd, 200, 0).decode().strip()
    return ""


@contextlib.contextmanager
def locked_dir(directory: str | os.PathLike, what: str) -> Iterator[DirLock]:
    """`with locked_dir(out, "cwm-ingest"):` the block owns `out`."""
    lock = DirLock(directory, what)
    try:
        yield lock
    finally:
        lock.release()
