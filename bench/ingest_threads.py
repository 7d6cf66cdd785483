"""Why the embedded cluster's workers are threads (issue 14): the measurements behind it.

    .venv/bin/python bench/ingest_threads.py [--only gil,cluster,housekeeping,decode]
                                             [--reps 3] [--work /tmp/cwm-bench-ingest]

  gil           one thread decoding the 90 s 320x240 input as `cwm.ingest.decode` does (decode,
                reformat to RGB and resize, to_ndarray, crop), `time.thread_time()` around each
                call: the share of a frame spent in Python between PyAV's calls (PyAV releases
                the GIL inside them: `with cython.nogil` around avcodec_send_packet /
                avcodec_receive_frame, sws_scale_frame, av_read_frame).
  cluster       a LocalCluster of 2 single-threaded workers + Client + one task + close, in a
                fresh process: CPU-s of that process and of its children, threads
                (processes=False) against spawned processes (processes=True).
  housekeeping  CPU-s of the embedded cluster's event-loop thread while 2 tasks sleep 6 s,
                dask's defaults against `cwm.ingest.distribute._QUIET`.
  decode        `decode_file` (default options) against the ffmpeg CLI peer of
                bench/ingest_scale.py, per file of the folder10 inputs, interleaved: CPU-s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ingest_scale import ffmpeg_one, folder, looped  # noqa: E402


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def gil(work: Path, reps: int) -> None:
    import av
    import numpy as np
    from av.video.reformatter import Interpolation, VideoReformatter

    path = looped(work, 320, 240, 90)
    clock = time.thread_time
    for rep in range(reps):
        decode = swscale = python = 0.0
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            frames, it, reformatter = [], iter(container.decode(stream)), VideoReformatter()
            start = clock()
            while True:
                a = clock()
                try:
                    frame = next(it)
                except StopIteration:
                    break
                b = clock()
                rgb = reformatter.reformat(frame, width=85, height=64, format="rgb24",
                                           interpolation=Interpolation.AREA, threads=1)
                c = clock()
                frames.append(rgb.to_ndarray()[:, 10:74])
                _ = frame.time
                d = clock()
                decode, swscale, python = decode + b - a, swscale + c - b, python + d - c
            np.stack(frames)
            total = clock() - start
        print(f"gil rep {rep + 1}: {len(frames)} frames, {total:.3f} s: decode {decode:.3f}, "
              f"swscale {swscale:.3f}, Python between the calls {python:.3f} "
              f"({python / total:.1%}, {python / len(frames) * 1e6:.0f} us a frame)", flush=True)


_CLUSTER = r"""
import logging, resource, sys
def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime
def main():
    from distributed import Client, LocalCluster
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=sys.argv[1] == "processes",
                           dashboard_address=":0", silence_logs=logging.CRITICAL)
    client = Client(cluster)
    client.wait_for_workers(2)
    client.submit(abs, -1).result()
    client.close()
    cluster.close()
    print(cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN))
if __name__ == "__main__":
    main()
"""


def cluster(reps: int) -> None:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_CLUSTER)
    try:
        for rep in range(reps):
            row = []
            for kind in ("threads", "processes"):
                out = subprocess.run([sys.executable, f.name, kind], check=True,
                                     capture_output=True, text=True).stdout.split()
                me, children = float(out[0]), float(out[1])
                row.append(f"{kind} {me + children:.2f} CPU-s ({children:.2f} in workers)")
            print(f"cluster rep {rep + 1} (load {os.getloadavg()[0]:.1f}): " + "; ".join(row),
                  flush=True)
    finally:
        os.unlink(f.name)


def _loop_cpu() -> float:
    import threading

    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        if names.get(int(tid)) == "IO loop":
            fields = open(f"/proc/self/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tick
    return 0.0


def housekeeping(reps: int) -> None:
    import logging

    import dask
    from distributed import Client, LocalCluster

    from cwm.ingest.distribute import _QUIET

    for rep in range(reps):
        row = []
        for name, settings in (("defaults", {}), ("cwm", _QUIET)):
            with dask.config.set(settings):
                cl = LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=":0", silence_logs=logging.CRITICAL,
                                  **({"memory_limit": 0} if settings else {}))
            client = Client(cl)
            before = _loop_cpu()
            client.gather(client.map(time.sleep, [6, 6], pure=False))
            row.append(f"{name} {_loop_cpu() - before:.2f}")
            client.close()
            cl.close()
        print(f"housekeeping rep {rep + 1}: event-loop CPU-s over 6 s of tasks: "
              + ", ".join(row), flush=True)


def decode(work: Path, reps: int) -> None:
    from cwm.ingest.config import FrameOptions
    from cwm.ingest.decode import decode_file

    small, large = looped(work, 320, 240, 20), looped(work, 1280, 720, 20)
    src = folder(work, "folder10", [(small, 8), (large, 2)])
    opts, ratios = FrameOptions(), []
    for rep in range(reps):
        ours = peer = 0.0
        for f in sorted(src.glob("*.mp4")):
            c = self_cpu()
            decode_file(f, opts)
            ours += self_cpu() - c
            peer += ffmpeg_one(f)[1]
        ratios.append(peer / ours)
        print(f"decode rep {rep + 1} (load {os.getloadavg()[0]:.1f}): decode_file {ours:.2f} "
              f"CPU-s, ffmpeg CLI {peer:.2f}: {ratios[-1]:.2f}x", flush=True)
    print(f"decode: median ffmpeg/PyAV CPU {statistics.median(ratios):.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    ap.add_argument("--only", default="gil,cluster,housekeeping,decode")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    if "gil" in only:
        gil(args.work, args.reps)
    if "cluster" in only:
        cluster(args.reps)
    if "housekeeping" in only:
        housekeeping(args.reps)
    if "decode" in only:
        decode(args.work, args.reps)


if __name__ == "__main__":
    main()
