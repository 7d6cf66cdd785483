"""Probe backends for the work plan: PyAV (in process) against `ffmpeg.probe` (ffmpeg-python,
one ffprobe process per file), on many small files and on long files.

    .venv/bin/python bench/ingest_probe.py [--small 1000] [--reps 3] [--work /tmp/cwm-bench-ingest]

Small: `--small` distinct copies (hard links) of a 4 s 320x240 H.264 file, like SSv2-sized
clips. Long: 10-minute 320x240 and 20 s 1280x720 files (ingest_scale.py's inputs), each probed
20 times. Per repetition, both backends interleaved, files per wall second and per CPU second
(this process + children). Also checks both backends' frame estimates agree.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_scale import looped  # noqa: E402

from cwm.ingest.probe import probe_ffprobe, probe_pyav  # noqa: E402


def cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn, files) -> tuple[float, float, list]:
    c0, t0 = cpu(), time.perf_counter()
    probes = [fn(f, 30.0) for f in files]
    return time.perf_counter() - t0, cpu() - c0, probes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    clip = looped(args.work, 320, 240, 4)
    small_dir = args.work / f"probe_small_{args.small}"
    small_dir.mkdir(exist_ok=True)
    small = []
    for i in range(args.small):
        link = small_dir / f"c{i:05d}.mp4"
        if not link.exists():
            os.link(clip, link)
        small.append(link)
    long_files = [looped(args.work, 320, 240, 600), looped(args.work, 1280, 720, 20)] * 10
    sets = {"small": small, "long": long_files}
    rates = {(k, b): [] for k in sets for b in ("pyav", "ffprobe")}
    for rep in range(args.reps):
        for kind, files in sets.items():
            for backend, fn in (("pyav", probe_pyav), ("ffprobe", probe_ffprobe)):
                wall, c, probes = timed(fn, files)
                rates[kind, backend].append((len(files) / wall, len(files) / c, probes))
                print(f"rep {rep + 1} {kind:5s} {backend:7s}: {len(files) / wall:8,.0f} files/s "
                      f"wall, {len(files) / c:8,.0f} files per CPU-s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
    for kind in sets:
        a = [r[0] for r in rates[kind, "pyav"]]
        b = [r[0] for r in rates[kind, "ffprobe"]]
        ac = [r[1] for r in rates[kind, "pyav"]]
        bc = [r[1] for r in rates[kind, "ffprobe"]]
        same = all(p.frames == q.frames for p, q in zip(rates[kind, "pyav"][0][2],
                                                        rates[kind, "ffprobe"][0][2]))
        print(f"{kind}: pyav {statistics.median(a):,.0f} files/s ({statistics.median(ac):,.0f}/CPU-s), "
              f"ffprobe {statistics.median(b):,.0f} files/s ({statistics.median(bc):,.0f}/CPU-s): "
              f"pyav {statistics.median(x / y for x, y in zip(a, b)):.1f}x wall, "
              f"{statistics.median(x / y for x, y in zip(ac, bc)):.1f}x CPU; same frame estimates: {same}; "
              f"frames {rates[kind, 'pyav'][0][2][0].frames} / {rates[kind, 'ffprobe'][0][2][0].frames}")


if __name__ == "__main__":
    main()
