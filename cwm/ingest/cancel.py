"""Stopping decode tasks that run as threads of this process when their run ends early.

The embedded cluster's workers are threads of the command (`cwm.ingest.distribute`): a Ctrl-C
or SIGTERM reaches only the main thread, and closing the cluster waits for the tasks still
running, which may be minutes into a long video. So the decode loops call `check()` once per
frame: after `cancel(run)`, every task of that run raises `Cancelled` at its next frame. The run
is told apart by a token the task wrapper sets on its thread (`running(run)`), so one process
may hold several runs. `Cancelled` derives from BaseException, like KeyboardInterrupt, so that no
`except Exception` records a cancelled input as a failed one; its part is simply not written.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_cancelled: set[str] = set()
_local = threading.local()


class Cancelled(BaseException):
    """The run this task belongs to was stopped; nothing of the task is kept."""


@contextlib.contextmanager
def running(run: str) -> Iterator[None]:
    """Inside, `check()` on this thread raises once `run` is cancelled."""
    previous = getattr(_local, "run", None)
    _local.run = run
    try:
        yield
    finally:
        _local.run = previous


def cancel(run: str) -> None:
    _cancelled.add(run)


def forget(run: str) -> None:
    """After the run's tasks have all returned."""
    _cancelled.discard(run)


def check() -> None:
    run = getattr(_local, "run", None)
    if run is not None and run in _cancelled:
        raise Cancelled(run)
