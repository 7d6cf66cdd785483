"""Where shard tasks run: an embedded dask LocalCluster (default), an existing dask scheduler,
or inline in this process (for debugging and single-shard tests).

One task per shard, submitted with `pure=False` (pure=True would let dask de-duplicate calls
that exist for their side effects) and `retries`. Tasks report each finished video as a dask
event on a per-run topic, so the driver's video bar moves while a shard is still being written.
A shard whose task still fails after its retries is reported, not raised: it has no stats file,
so the next run redoes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import dask
import psutil
from distributed import Client, LocalCluster, as_completed, get_worker

from cwm.errors import UserError
from cwm.ingest.config import INLINE, FrameOptions
from cwm.ingest.plan import ShardSpec
from cwm.ingest.progress import Progress
from cwm.ingest.writer import write_shard
from cwm.signals import interrupts_deferred, spawning_children



@dataclass
class Outcome:
    stats: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)   # (shard name, reason)
    workers: int = 0


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _shard_task(spec: ShardSpec, opts: FrameOptions, out_dir: str, dataset: str,
                topic: str) -> dict:
    """Runs on a dask worker."""
    worker = get_worker()
    return write_shard(spec, opts, out_dir, dataset,
                       on_video=lambda status: worker.log_event(topic, status))


def _run_inline(specs, opts, out_dir, dataset, progress: Progress) -> Outcome:
    outcome = Outcome(workers=1)
    for spec in specs:
        outcome.stats.append(write_shard(spec, opts, out_dir, dataset, on_video=progress.video))
        progress.shard()
    return outcome


def _connect(scheduler: str | None, workers: int):
    if scheduler:
        try:
            # dask's own setting, so DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s shortens it
            return Client(scheduler, timeout=dask.config.get("distributed.comm.timeouts.connect")), None
        except (OSError, TimeoutError) as e:
            raise UserError(f"cannot reach the dask scheduler at {scheduler}: {e}") from None
    # The workers' statistical profiler samples every thread each 10 ms; measured here it costs
    # ~25% of a worker's CPU on this workload, and nobody looks at it without a dashboard.
    # Ctrl-C reaches the whole process group: the workers are spawned ignoring it, and this
    # process shuts them down, instead of each dying mid-task with a traceback of its own. A
    # Ctrl-C or SIGTERM during the start-up takes effect once the cluster is up (dask cannot be
    # interrupted half way through starting and still close cleanly).
    cluster = client = None
    try:
        with interrupts_deferred():
            with dask.config.set({"distributed.worker.profile.enabled": False}):
                # A shard that fails is reported in the summary (exit 1), so the workers' own
                # error logs (a traceback per failed task) stay quiet; the HTTP server takes a
                # free port (":8787" warns when another cluster holds it).
                cluster = LocalCluster(n_workers=0, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", silence_logs=logging.CRITICAL)
            with spawning_children():
                cluster.scale(workers)
                _wait_for_spawn(workers)
            client = Client(cluster)
            client.wait_for_workers(workers)
    except BaseException:
        for thing in (client, cluster):
            if thing is not None:
                thing.close()
        raise
    return client, cluster


def _wait_for_spawn(n: int, timeout: float = 60.0) -> None:
    """Until `n` worker processes of ours exist (they have exec'd: their signal state is set)."""
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


def run_shards(specs: list[ShardSpec], opts: FrameOptions, out_dir: Path, dataset: str, *,
               scheduler: str | None, workers: int | None, retries: int,
               progress: Progress, client: Client | None = None) -> Outcome:
    """Write every shard in `specs`; returns their stats and the shards that failed.

    `client`: an already connected dask client to use (and leave open) instead of starting or
    joining one from `scheduler`/`workers`.
    """
    if not specs:
        return Outcome()
    if scheduler == INLINE and client is None:
        return _run_inline(specs, opts, str(out_dir), dataset, progress)
    cluster = None
    own_client = client is None
    if own_client:
        client, cluster = _connect(scheduler, min(workers or available_cores(), len(specs)))
    topic = f"cwm-ingest-{uuid.uuid4().hex[:12]}"
    outcome = Outcome()
    try:
        outcome.workers = len(client.scheduler_info().get("workers", {}))
        client.subscribe_topic(topic, lambda event: progress.video(event[1]))
        futures = client.map(_shard_task, specs, opts=opts, out_dir=str(out_dir),
                             dataset=dataset, topic=topic, pure=False, retries=retries,
                             key=[f"{topic}-{spec.name}" for spec in specs])
        names = {f.key: spec.name for f, spec in zip(futures, specs)}
        for future in as_completed(futures):
            try:
                outcome.stats.append(future.result())
            except Exception as e:  # a shard that failed after its retries; reported, not raised
                outcome.failed.append((names[future.key], f"{type(e).__name__}: {e}"))
            progress.shard()
    finally:
        client.unsubscribe_topic(topic)
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()
    return outcome
