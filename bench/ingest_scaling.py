"""Ingest throughput with 2 dask workers against 1 worker, on the same input set.

    .venv/bin/python bench/ingest_scaling.py [--reps 3] [--videos 16] [--work /tmp/cwm-bench-ingest]

Input: `--videos` links to the 320x240 real-footage file of ingest_inputs.py (~580 frames
each), two videos per shard. For each repetition and worker count (1, then 2), an embedded
LocalCluster(n_workers=n, threads_per_worker=1, processes=True) is started and warmed up (the
workers import the ingest code), then the timed part is `run_shards` over all shards into a fresh
output directory: cluster start-up is excluded, everything a shard task does is included.
Throughput = source frames decoded / wall seconds; the 2-vs-1 ratio is taken per repetition and
the median reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dask  # noqa: E402
from distributed import Client, LocalCluster  # noqa: E402
from ingest_inputs import make_input  # noqa: E402

from cwm.ingest.config import FrameOptions  # noqa: E402
from cwm.ingest.distribute import run_shards  # noqa: E402
from cwm.ingest.plan import make_plan  # noqa: E402
from cwm.ingest.progress import Progress  # noqa: E402
from cwm.ingest.sources import folder  # noqa: E402


def _warm_up() -> bool:
    import cwm.ingest.writer  # noqa: F401  (import cost stays out of the timed part)
    return True


def _cpu_seconds() -> float:
    return time.process_time()


def timed_run(n_workers: int, plan, out: Path) -> tuple[float, float, float]:
    """(frames per wall second, frames per worker-CPU second, 1-min load average before)
    of one full pass over `plan` on a fresh n-worker cluster."""
    # Same cluster settings as cwm.ingest.distribute's embedded cluster (profiler off).
    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True,
                         dashboard_address=None, silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        client.run(_warm_up)
        progress = Progress(len(plan.shards), plan.n_videos, enabled=False)
        out.mkdir(parents=True)
        load = os.getloadavg()[0]
        cpu0 = sum(client.run(_cpu_seconds).values())
        t0 = time.perf_counter()
        outcome = run_shards(plan.shards, FrameOptions(), out, "bench", scheduler=None,
                             workers=None, retries=0, progress=progress, client=client)
        wall = time.perf_counter() - t0
        cpu = sum(client.run(_cpu_seconds).values()) - cpu0
    assert not outcome.failed, outcome.failed
    frames = sum(s["decoded_frames"] for s in outcome.stats)
    return frames / wall, frames / cpu, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--videos", type=int, default=16)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    args = parser.parse_args()
    source = make_input(args.work, 320, 240)
    src = args.work / f"scaling_{args.videos}"
    src.mkdir(parents=True, exist_ok=True)
    for i in range(args.videos):
        link = src / f"v{i:03d}.mp4"
        if not link.exists():
            link.symlink_to(source)
    plan = make_plan(folder.list_videos(src), str(src), "bench", 2)

    runs = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for n in (1, 2):
                runs[n].append(timed_run(n, plan, Path(tmp) / f"r{rep}w{n}"))
                wall_fps, cpu_fps, load = runs[n][-1]
                print(f"rep {rep + 1}, {n} worker(s): {wall_fps:,.0f} frames/s wall, "
                      f"{cpu_fps:,.0f} frames per worker-CPU-s, load before {load:.1f}",
                      file=sys.stderr)
    ratios = [b[0] / a[0] for a, b in zip(runs[1], runs[2])]
    print(f"{plan.n_videos} videos, {len(plan.shards)} shards, {os.cpu_count()} cores")
    print("| workers | frames/s wall (median) | frames per worker-CPU-s (median) | "
          "load avg before runs | ratio 2/1 per rep | median ratio |")
    print("|---|---|---|---|---|---|")
    for n in (1, 2):
        med = [statistics.median(r[i] for r in runs[n]) for i in range(2)]
        loads = ", ".join(f"{r[2]:.1f}" for r in runs[n])
        tail = (f"{', '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f}x"
                if n == 2 else " | ")
        print(f"| {n} | {med[0]:,.0f} | {med[1]:,.0f} | {loads} | {tail} |")


if __name__ == "__main__":
    main()
