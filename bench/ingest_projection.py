"""Per-core rates of the ingest on dataset-like inputs, and the wall time they project.

    .venv/bin/python bench/ingest_projection.py [--reps 3] [--work /tmp/cwm-bench-ingest]

Measured in this process (one core, CPU seconds, median of --reps), on the real footage of
`ingest_inputs.py`:
  ssv2-like   60 VP9 .webm clips, 428x240, 12 fps, 45 frames (SSv2's format and mean length):
              `write_part` of one task holding all 60 (probe excluded), then the PyAV probe of
              the same 60 files; frames and clips per CPU second
  ytb-like    one run of 600 JPEG stills at 640x360 and at 1280x720 (the ACO release ships
              JPEG frames), upstream's sampling (skip 100, every 5th): kept frames per CPU-s
Projection (printed): work / (rate x cores) + probe + start-up, for full SSv2 (220,847 clips,
~10M frames) on one 32-core node and on 4 such nodes, and for YouTube-driving (~1.7M kept
frames). Assumes the per-core rate holds at 32 processes per node (no memory-bandwidth or
storage limit: the output is ~12.3 KB per npy frame, ~123 GB for SSv2, written twice (parts,
then shards), which the storage must absorb at ~1 GB/s per node to stay off the critical path).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_inputs import cached_dir, make_input  # noqa: E402

from cwm.ingest.config import FrameOptions  # noqa: E402
from cwm.ingest.decode import WHOLE  # noqa: E402
from cwm.ingest.plan import PlannedVideo, Task, Unit  # noqa: E402
from cwm.ingest.probe import probe_pyav  # noqa: E402
from cwm.ingest.sources.base import VideoInput  # noqa: E402
from cwm.ingest.writer import write_part  # noqa: E402

SSV2_CLIPS, SSV2_FRAMES = 220_847, 10_000_000
YTB_KEPT = 1_700_000


def ssv2_like(work: Path, n: int) -> Path:
    def build(tmp: Path) -> None:
        src = make_input(work, 428, 240)
        for i in range(n):
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss",
                            f"{(i * 0.7) % 20:.2f}", "-i", str(src), "-frames:v", "45", "-r", "12",
                            "-c:v", "libvpx-vp9", "-b:v", "0", "-crf", "35", "-deadline",
                            "realtime", "-cpu-used", "8", "-an", str(tmp / f"{i}.webm")],
                           check=True)
    return cached_dir(work, f"ssv2like_{n}", build)


def jpeg_run(work: Path, width: int, height: int, n: int = 600) -> Path:
    def build(tmp: Path) -> None:
        src = make_input(work, 1280, 720)
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i",
                        str(src), "-frames:v", str(n), "-vf", f"scale={width}:{height}", "-q:v",
                        "3", "-start_number", "0", str(tmp / "%d.jpg")], check=True)
    return cached_dir(work, f"jpegs_{width}x{height}", build)


def task_of(root: Path, items: list[VideoInput]) -> Task:
    units = tuple(Unit(PlannedVideo(it.video_id, it), WHOLE, 1.0) for it in items)
    return Task(name="bench", root=str(root), units=units)


def cpu_timed(fn):
    c0 = time.process_time()
    result = fn()
    return time.process_time() - c0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    ssv2 = ssv2_like(args.work, 60)
    clips = [VideoInput(p.stem, p.name) for p in sorted(ssv2.glob("*.webm"))]
    runs = {}
    for w, h in ((640, 360), (1280, 720)):
        d = jpeg_run(args.work, w, h)
        names = tuple(f"{i}.jpg" for i in range(600))
        runs[f"{w}x{h}"] = (d.parent, VideoInput(d.name, d.name, frames=names,
                                                 frame_numbers=tuple(range(600)), frame_rate=30.0))
    rates: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            opts = FrameOptions()
            c, rec = cpu_timed(lambda: write_part(task_of(ssv2, clips), opts, tmp, "ssv2"))
            rates.setdefault("ssv2 frames/CPU-s", []).append(rec["decoded"] / c)
            rates.setdefault("ssv2 clips/CPU-s", []).append(len(clips) / c)
            c, _ = cpu_timed(lambda: [probe_pyav(ssv2 / it.path, 30.0) for it in clips])
            rates.setdefault("ssv2 probes/CPU-s", []).append(len(clips) / c)
            ytb = FrameOptions(every=5, skip_start=100)
            for size, (root, item) in runs.items():
                c, rec = cpu_timed(lambda: write_part(task_of(root, [item]), ytb, tmp, "ytb"))
                rates.setdefault(f"ytb {size} kept frames/CPU-s", []).append(rec["frames"] / c)
            print(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:,.0f}" for k, v in rates.items()),
                  flush=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("| measure (one core) | median |")
    print("|---|---|")
    for k, v in med.items():
        print(f"| {k} | {v:,.0f} |")

    def project(frames: float, rate: float, cores: int, probes: float = 0.0,
                start: float = 10.0) -> float:
        return start + probes / (med["ssv2 probes/CPU-s"] * cores) + frames / (rate * cores)

    print("| dataset | cluster | projected wall |")
    print("|---|---|---|")
    for cores, label in ((32, "1 node x 32 cores"), (128, "4 nodes x 32 cores")):
        t = project(SSV2_FRAMES, med["ssv2 frames/CPU-s"], cores, SSV2_CLIPS)
        print(f"| SSv2 (220,847 clips, ~10M frames) | {label} | {t / 60:,.1f} min |")
        for size in runs:
            t = project(YTB_KEPT, med[f"ytb {size} kept frames/CPU-s"], cores)
            print(f"| YouTube-driving (~1.7M kept, {size} JPEG) | {label} | {t / 60:,.1f} min |")


if __name__ == "__main__":
    main()
