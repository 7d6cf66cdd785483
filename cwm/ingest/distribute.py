"""Where ingest tasks run: an embedded dask LocalCluster (default), an existing dask scheduler,
or inline in this process (for debugging and small tests).

One `Executor` serves the whole run (probe batches, decode tasks, shard tasks), so the cluster
starts once. Tasks are submitted with `pure=False` (pure=True would let dask de-duplicate calls
that exist for their side effects) and `retries`. A task may report progress through its `emit`
argument; on dask that is an event on a per-run topic, so the driver's bars move while a task is
still running. A task that still fails after its retries is reported, not raised.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

from cwm.errors import UserError

INLINE = "inline"
# Embedded workers are forked from this process (which has already imported everything a task
# needs) instead of dask's default `spawn` (a fresh interpreter re-importing dask, av, numpy):
# measured in bench/RESULTS.md (ingest start-up). A method set in dask's own configuration
# (DASK_DISTRIBUTED__WORKER__MULTIPROCESSING_METHOD) other than the default wins.
START_METHOD = "fork"


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
        # dashboard.
        settings = {"distributed.worker.profile.enabled": False}
        if dask.config.get("distributed.worker.multiprocessing-method") == "spawn" \
                and "fork" in multiprocessing.get_all_start_methods():
            settings["distributed.worker.multiprocessing-method"] = START_METHOD
        with dask.config.set(settings):
            self._cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                         dashboard_address=None, silence_logs=logging.ERROR)
        self.client = Client(self._cluster)
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
