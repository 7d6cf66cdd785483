"""Where ingest tasks run: an embedded dask LocalCluster (default), an existing dask scheduler,
or inline in this process (for debugging and small tests).

One `Executor` serves the whole run (probe batches, decode tasks, shard tasks), so the cluster
starts once. Tasks are submitted with `pure=False` (pure=True would let dask de-duplicate calls
that exist for their side effects) and `retries`. A task may report progress through its `emit`
argument; on dask that is an event on a per-run topic, so the driver's bars move while a task is
still running. A task that still fails after its retries is reported, not raised.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from cwm.errors import UserError
from cwm.ingest.config import INLINE
from cwm.signals import interrupts_deferred, spawning_children


@dataclass
class Outcome:
    results: list = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)   # (task name, reason)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _on_worker(fn: Callable, item, topic: str, kwargs: dict):
    """Runs on a dask worker: `emit` becomes a dask event the driver subscribed to."""
    from distributed import get_worker

    worker = get_worker()
    return fn(item, **kwargs, emit=lambda payload: worker.log_event(topic, payload))


# Seconds the embedded cluster's workers may take to start (a worker that cannot start would
# otherwise be waited for forever).
WORKER_START_TIMEOUT = 120.0


def _wait_for_spawn(n: int, timeout: float = 60.0) -> None:
    """Until `n` worker processes of ours exist (they have exec'd: their signal state is set)."""
    import psutil

    me = psutil.Process()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        spawned = 0
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                spawned += any("spawn_main" in part for part in child.cmdline())
        if spawned >= n:
            return
        time.sleep(0.02)


class Executor:
    """`with Executor(scheduler, workers) as ex: ex.map(fn, items, names, ...)`."""

    def __init__(self, scheduler: str | None, workers: int | None, client=None):
        self.scheduler = scheduler
        self.requested = workers
        self.client = client
        self._own = client is None
        self._cluster = None

    @property
    def inline(self) -> bool:
        return self.scheduler == INLINE and self.client is None

    def start(self, cap: int | None = None) -> "Executor":
        """Connect (or start the embedded cluster with at most `cap` workers)."""
        if self.inline or self.client is not None:
            return self
        import dask      # here, not at import: an inline run and `--help` never pay for dask
        from distributed import Client, LocalCluster

        if self.scheduler:
            try:
                # dask's own setting, so DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s shortens it
                self.client = Client(self.scheduler,
                                     timeout=dask.config.get("distributed.comm.timeouts.connect"))
            except (OSError, TimeoutError) as e:
                raise UserError(f"cannot reach the dask scheduler at {self.scheduler}: {e}") \
                    from None
            return self
        n = self.requested or available_cores()
        if cap is not None:
            n = max(1, min(n, cap))
        # The workers' statistical profiler samples every thread each 10 ms; measured here it
        # costs ~25% of a worker's CPU on this workload, and nobody looks at it without a
        # dashboard. Ctrl-C reaches the whole process group: the workers are spawned ignoring
        # it, and this process shuts them down, instead of each dying mid-task with a traceback
        # of its own. A Ctrl-C or SIGTERM during the start-up takes effect once the cluster is
        # up (dask cannot be interrupted half way through starting and still close cleanly).
        try:
            with interrupts_deferred():
                with dask.config.set({"distributed.worker.profile.enabled": False}):
                    # A task that fails is reported in the summary (exit 1), so the workers'
                    # own error logs (a traceback per failed task) stay quiet; the HTTP server
                    # takes a free port (":8787" warns when another cluster holds it).
                    self._cluster = LocalCluster(n_workers=0, threads_per_worker=1,
                                                 processes=True, dashboard_address=":0",
                                                 silence_logs=logging.CRITICAL)
                with spawning_children():
                    self._cluster.scale(n)
                    _wait_for_spawn(n)
                self.client = Client(self._cluster)
                try:
                    self.client.wait_for_workers(n, timeout=WORKER_START_TIMEOUT)
                except TimeoutError:
                    raise UserError(f"the embedded dask cluster's {n} worker process(es) did "
                                    f"not start within {WORKER_START_TIMEOUT:.0f} s; try "
                                    f"--scheduler inline to see why") from None
        except BaseException:
            self.close()
            raise
        return self

    @property
    def started(self) -> bool:
        return self.inline or self.client is not None

    @property
    def slots(self) -> int:
        """Tasks that can run at once (worker threads)."""
        if self.inline:
            return 1
        if self.client is None:
            return self.requested or available_cores()
        info = self.client.scheduler_info().get("workers", {})
        return max(1, sum(w.get("nthreads", 1) for w in info.values()))

    @property
    def workers(self) -> int:
        if self.inline:
            return 1
        return len(self.client.scheduler_info().get("workers", {})) if self.client else 0

    def map(self, fn: Callable, items: list, names: list[str], retries: int,
            on_event: Callable | None = None, on_done: Callable | None = None,
            **kwargs) -> Outcome:
        """Run `fn(item, **kwargs, emit=...)` for every item; results in completion order."""
        outcome = Outcome()
        if not items:
            return outcome
        emit = on_event or (lambda payload: None)
        if self.inline:
            for item in items:
                outcome.results.append(fn(item, **kwargs, emit=emit))
                if on_done:
                    on_done()
            return outcome
        self.start()
        from distributed import as_completed

        topic = f"cwm-ingest-{uuid.uuid4().hex[:12]}"
        self.client.subscribe_topic(topic, lambda event: emit(event[1]))
        try:
            futures = self.client.map(partial(_on_worker, fn, topic=topic, kwargs=kwargs), items,
                                      pure=False, retries=retries,
                                      key=[f"{topic}-{name}" for name in names])
            name_of = {f.key: name for f, name in zip(futures, names)}
            for future in as_completed(futures):
                try:
                    outcome.results.append(future.result())
                except Exception as e:  # a task that failed after its retries: reported
                    outcome.failed.append((name_of[future.key], f"{type(e).__name__}: {e}"))
                if on_done:
                    on_done()
        finally:
            self.client.unsubscribe_topic(topic)
        return outcome

    def close(self) -> None:
        if self._own and self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
