"""Ingest frames/s per core against the ffmpeg CLI decoding + scaling the same files to 64x64.

    .venv/bin/python bench/ingest_speed.py [--reps 5] [--work /tmp/cwm-bench-ingest]

For each input size (320x240 and 1280x720, real footage, see ingest_inputs.py) and each
repetition, in one run and interleaved:
  ffmpeg   `ffmpeg -threads 1 -filter_threads 1 -i F -vf scale=64:64:flags=area
            -f rawvideo -pix_fmt rgb24 /dev/null` (the practical single-core limit)
  ingest   cwm.ingest.writer.write_part on that one file: decode, swscale, segments, npy,
           tar (everything a decode task does), aspect squash (= scale=64:64) and center-crop
  decode   cwm.ingest.decode.decode_file alone (squash)
Frames/s is reported per wall second and per CPU second (user+sys of the process doing the
work): on a shared machine the CPU figure is the fairer "per core" number. Ratios are taken per
repetition and the median is reported.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_inputs import make_input  # noqa: E402

from cwm.ingest.config import FrameOptions  # noqa: E402
from cwm.ingest.decode import decode_file  # noqa: E402
from cwm.ingest.decode import WHOLE  # noqa: E402
from cwm.ingest.plan import PlannedVideo, Task, Unit  # noqa: E402
from cwm.ingest.sources.base import VideoInput  # noqa: E402
from cwm.ingest.writer import write_part  # noqa: E402

SIZES = ((320, 240), (1280, 720))


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_ffmpeg(path: Path) -> tuple[float, float]:
    cpu0, t0 = _children_cpu(), time.perf_counter()
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-filter_threads", "1",
                    "-i", str(path), "-vf", "scale=64:64:flags=area", "-f", "rawvideo",
                    "-pix_fmt", "rgb24", "-y", "/dev/null"], check=True)
    return time.perf_counter() - t0, _children_cpu() - cpu0


def run_ingest(path: Path, aspect: str, out: Path) -> tuple[float, float, int]:
    item = VideoInput(video_id=path.stem, path=path.name)
    task = Task(name="bench", root=str(path.parent),
                units=(Unit(PlannedVideo(path.stem, item), WHOLE, 1.0),))
    opts = FrameOptions(aspect=aspect, min_frames=1)
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats = write_part(task, opts, out, "bench")
    return time.perf_counter() - t0, time.process_time() - cpu0, stats["decoded"]


def run_decode(path: Path) -> tuple[float, float, int]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    video = decode_file(path, FrameOptions(aspect="squash"))
    return time.perf_counter() - t0, time.process_time() - cpu0, video.decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    args = parser.parse_args()
    inputs = {f"{w}x{h}": make_input(args.work, w, h) for w, h in SIZES}
    rows = {size: {k: [] for k in ("ffmpeg", "ingest_squash", "ingest_crop", "decode")}
            for size in inputs}
    n_frames = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for size, path in inputs.items():
                wall, cpu, frames = run_ingest(path, "squash", Path(tmp))
                n_frames[size] = frames
                rows[size]["ingest_squash"].append((frames / wall, frames / cpu))
                wall, cpu = run_ffmpeg(path)
                rows[size]["ffmpeg"].append((frames / wall, frames / cpu))
                wall, cpu, _ = run_ingest(path, "center-crop", Path(tmp))
                rows[size]["ingest_crop"].append((frames / wall, frames / cpu))
                wall, cpu, _ = run_decode(path)
                rows[size]["decode"].append((frames / wall, frames / cpu))
            print(f"rep {rep + 1}/{args.reps} done", file=sys.stderr)

    report = {}
    print("| input | frames | ffmpeg -threads 1 (wall / cpu fps) | ingest squash | ingest "
          "center-crop | decode only | ratio ingest/ffmpeg (wall) | ratio (cpu) |")
    print("|---|---|---|---|---|---|---|---|")
    for size, r in rows.items():
        med = {k: (statistics.median(v[0] for v in vals), statistics.median(v[1] for v in vals))
               for k, vals in r.items()}
        ratio_wall = statistics.median(a[0] / b[0] for a, b in zip(r["ingest_squash"], r["ffmpeg"]))
        ratio_cpu = statistics.median(a[1] / b[1] for a, b in zip(r["ingest_squash"], r["ffmpeg"]))
        report[size] = {"median_fps": med, "ratio_wall": ratio_wall, "ratio_cpu": ratio_cpu,
                        "ratios_wall": [a[0] / b[0] for a, b in zip(r["ingest_squash"], r["ffmpeg"])]}

        def cell(k):
            return f"{med[k][0]:,.0f} / {med[k][1]:,.0f}"
        print(f"| {size} | {n_frames[size]} | {cell('ffmpeg')} | {cell('ingest_squash')} | "
              f"{cell('ingest_crop')} | {cell('decode')} | {ratio_wall:.2f}x | {ratio_cpu:.2f}x |")
    print(json.dumps(report, indent=1), file=sys.stderr)


if __name__ == "__main__":
    main()
