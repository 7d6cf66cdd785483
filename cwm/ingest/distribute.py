"""Where ingest tasks run: an embedded dask LocalCluster (default), an existing dask scheduler,
or inline in this process (for debugging and small tests).

The embedded cluster's workers are single-threaded workers running as threads of this process,
not spawned processes: PyAV releases the GIL while it demuxes, decodes and resizes, so two
threads decode about as fast as two processes, and the ~1 CPU-s each spawned worker paid to
start its interpreter and import dask, numpy and PyAV again is gone. The price is isolation: a
decoder that crashes the process ends the run (rerun to resume; a scheduler's process workers,
`--scheduler`, keep that isolation), and Ctrl-C reaches only the main thread, so `close` cancels
the run's tasks (`cwm.ingest.cancel`) rather than waiting for a long video to finish. Simulator
episodes (`sim`) are the exception, `processes=True`: Meta-world corrupts frames when two envs
render in one process, and stepping an env holds the GIL.

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
from cwm.ingest import cancel
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


def _on_worker(fn: Callable, item, topic: str, run: str, kwargs: dict):
    """Runs on a dask worker: `emit` becomes a dask event the driver subscribed to; on the
    embedded cluster's threads the task stops at its next frame once the run is cancelled."""
    from distributed import get_worker

    worker = get_worker()
    with cancel.running(run):
        return fn(item, **kwargs, emit=lambda payload: worker.log_event(topic, payload))


# The embedded cluster's housekeeping, for a dashboard and for diagnostics nobody looks at in
# a batch command. Measured on its event-loop thread (2 workers, 6 s of tasks): 0.26 CPU-s with
# dask's defaults, 0.04 with these. The workers' statistical profiler (every thread sampled each
# 10 ms) cost ~25% of a worker's CPU when workers were processes.
_QUIET = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",               # event-loop stall detector, 20 ms
    "distributed.admin.system-monitor.interval": "10s",   # host CPU/memory/disk/net, 500 ms
}


# Seconds the embedded cluster's worker processes may take to start (a worker that cannot start
# would otherwise be waited for forever).
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

    def __init__(self, scheduler: str | None, workers: int | None, client=None,
                 processes: bool = False):
        self.scheduler = scheduler
        self.requested = workers
        self.processes = processes        # embedded cluster: spawned worker processes
        self.client = client
        self._own = client is None
        self._cluster = None
        self.run = uuid.uuid4().hex           # this executor's tasks, for `cancel`

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
        # A Ctrl-C or SIGTERM during the start-up takes effect once the cluster is up (dask
        # cannot be interrupted half way through starting and still close cleanly).
        try:
            with interrupts_deferred():
                with dask.config.set(_QUIET):
                    # A task that fails is reported in the summary (exit 1), so the workers'
                    # own error logs (a traceback per failed task) stay quiet. The scheduler's
                    # HTTP server takes a free port (":8787" warns when another cluster has it).
                    if self.processes:
                        self._cluster = LocalCluster(n_workers=0, threads_per_worker=1,
                                                     processes=True, dashboard_address=":0",
                                                     silence_logs=logging.CRITICAL)
                        self._spawn(n)      # in here: each nanny hands this config on
                    else:
                        # No memory limit: tasks return small records, nothing to spill.
                        self._cluster = LocalCluster(n_workers=n, threads_per_worker=1,
                                                     processes=False, dashboard_address=":0",
                                                     memory_limit=0,
                                                     silence_logs=logging.CRITICAL)
                self.client = Client(self._cluster)
                if self.processes:
                    try:
                        self.client.wait_for_workers(n, timeout=WORKER_START_TIMEOUT)
                    except TimeoutError:
                        raise UserError(f"the embedded dask cluster's {n} worker process(es) "
                                        f"did not start within {WORKER_START_TIMEOUT:.0f} s; try "
                                        f"--scheduler inline to see why") from None
        except BaseException:
            self.close()
            raise
        return self

    def _spawn(self, n: int) -> None:
        """Ctrl-C reaches the whole process group: the worker processes are spawned ignoring it,
        and this process shuts them down, instead of each dying mid-task with a traceback."""
        with spawning_children():
            self._cluster.scale(n)
            _wait_for_spawn(n)

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
            futures = self.client.map(partial(_on_worker, fn, topic=topic, run=self.run,
                                              kwargs=kwargs), items,
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
        # Tasks still running (an interrupted run) stop at their next frame instead of being
        # waited for; a remote scheduler's workers are other processes and never see this.
        cancel.cancel(self.run)
        if self._own and self.client is not None:
            self.client.close()
            self.client = None
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None
        cancel.forget(self.run)

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
