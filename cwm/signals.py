"""Stopping long runs cleanly: SIGTERM (a scheduler's polite kill) saves like Ctrl-C does."""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt, so one save-then-exit path serves both.

    Signal handlers can only be installed from the main thread; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Inside, Ctrl-C and SIGTERM wait: the block runs to its end, then KeyboardInterrupt is raised.

    Applies to each of the two whose handler raises KeyboardInterrupt at entry (Python's Ctrl-C
    handler, `sigterm_as_interrupt`).

    For bookkeeping that must not be cut in half, e.g. an evaluation's row in metrics.jsonl and
    the counter saying it was done: a stop between the two would make the resumed run evaluate
    the same step again. Main thread only; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def handler(signum, frame):
        caught.append(signum)

    # Only signals that would raise here now (a Python handler); an ignored SIGINT (a background
    # job) or a default SIGTERM keeps its meaning.
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)
                if callable(signal.getsignal(sig))}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def spawning_children() -> Iterator[None]:
    """For spawning worker processes (dask's embedded cluster) that must leave Ctrl-C to us.

    Ctrl-C in a terminal reaches the whole foreground process group: workers that took it would
    die mid-task, each printing its own traceback, while this process shuts them down anyway.
    SIGINT is ignored while they are spawned (process-wide: another thread may spawn them), and
    a process that starts with SIGINT ignored keeps it ignored. A Ctrl-C pressed inside is
    dropped, so keep the block to the spawning itself, inside `interrupts_deferred`.
    Main thread only; elsewhere this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
