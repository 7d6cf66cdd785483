"""Crash-safe file writes: readers only ever see a complete file under its final name.

Used for shards, stats files, checkpoints and replay chunks. The data goes to a temporary name in
the same directory (same filesystem, so the final `os.replace` is atomic), is flushed and
fsync'ed, and only then renamed. A kill -9 at any moment leaves either the old file or the new
one, plus at worst a stray temporary that the next run ignores or removes.

A write that fails because of the storage (full disk, quota, I/O error, read-only filesystem) is
raised as `StorageError`: one line naming the file and the reason, which every command prints
as `error: ...`. `storage_errors()` gives the same treatment to writers outside this module
(append-only logs, TensorBoard, h5py). Whatever wraps the failure (torch's "unexpected pos",
h5py's multi-line message), the errno underneath decides.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path
from typing import IO, Iterator

from cwm.errors import UserError

TMP_SUFFIX = ".tmp"
# Failures of the place being written to, not of the program: full disk, quota, I/O error,
# read-only filesystem, file too large, no permission.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG,
                            errno.EACCES, errno.EPERM})


class StorageError(UserError):
    """A write failed for a reason of the storage, not of the program: full disk, I/O error..."""

    def __init__(self, what: str | os.PathLike, reason: str):
        super().__init__(f"cannot write {what}: {reason}")
        self.what, self.reason = str(what), reason


def storage_cause(e: BaseException | None) -> OSError | None:
    """The storage-level OSError behind `e`: `e` itself or one in its cause/context chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in STORAGE_ERRNOS:
            return e
        e = e.__cause__ or e.__context__
    return None


@contextlib.contextmanager
def storage_errors(what: str | os.PathLike) -> Iterator[None]:
    """Inside, a failure caused by the storage becomes `StorageError("cannot write WHAT: ...")`."""
    try:
        yield
    except StorageError:
        raise
    except Exception as e:
        cause = storage_cause(e)
        if cause is None:
            raise
        raise StorageError(what, os.strerror(cause.errno).lower()) from None


def tmp_path_for(path: str | os.PathLike) -> Path:
    """The temporary name a file is written under before it is renamed to `path`."""
    path = Path(path)
    return path.with_name(f"{path.name}.{os.getpid()}{TMP_SUFFIX}")


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` atomically.

    For writers that want a file name rather than a file object (tarfile, h5py, torch.save).
    On an exception the temporary is removed and `path` is left untouched.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        with storage_errors(path):
            yield tmp
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[IO]:
    """`open()` for writing whose result appears under `path` only once complete."""
    if not any(m in mode for m in "wx"):
        raise ValueError("atomic_open is for writing")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


def write_json(path: str | os.PathLike, obj, **kwargs) -> None:
    """Write `obj` as JSON atomically (indent 2 unless told otherwise)."""
    kwargs.setdefault("indent", 2)
    with atomic_open(path, "w") as f:
        json.dump(obj, f, **kwargs)
        f.write("\n")


def read_json(path: str | os.PathLike) -> dict | None:
    """The JSON object in `path` (as `write_json` wrote it), or None when the file is missing,
    damaged after the fact (not UTF-8 JSON, nested too deeply) or holds something else.

    For state files a rerun reads: a damaged one means "redo", never a traceback."""
    try:
        found = json.loads(Path(path).read_bytes())
    except (OSError, ValueError, RecursionError):
        return None
    return found if isinstance(found, dict) else None


def remove_stale_tmp(directory: str | os.PathLike, pattern: str = "*") -> int:
    """Delete temporaries left by a killed writer in `directory`; returns how many."""
    n = 0
    for p in Path(directory).glob(f"{pattern}{TMP_SUFFIX}"):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            n += 1
    return n
