"""The ingest command as a user runs it (default options), on the three scenarios of issue 14.

    .venv/bin/python bench/ingest_scale.py [--reps 3] [--work /tmp/cwm-bench-ingest]
                                           [--only folder10,long2short8,tenmin,ceiling]

Inputs: the real camera footage of `ingest_inputs.py` (25 fps) looped to length and re-encoded
once (libx264 veryfast, crf 23, default GOP) into the work directory; identical videos are
hard links, so the page cache holds one copy.

  folder10     8 x 320x240 + 2 x 1280x720, 20 s each. `cwm-ingest folder --src D --out O
               --no-progress` (defaults: all cores) against the ffmpeg CLI on the same 10 files
               (`ffmpeg -threads 1 -filter_threads 1 -i F -vf scale=64:64:flags=area -f rawvideo
               -pix_fmt rgb24 -y /dev/null`, one after the other). CPU seconds of each whole
               command and everything it started (RUSAGE_CHILDREN: the dask workers are reaped by
               the command, so their CPU is included). Ratio = ffmpeg CPU-s / ingest CPU-s.
  long2short8  2 x 90 s + 8 x 4 s at 320x240. `--workers 1` against `--workers 2`, wall rate =
               frames written / wall seconds of the whole command (cluster start-up included;
               the frames written are the same for both, the frames decoded are not: a split
               range decodes its keyframe pre-roll too). Also: in how many shards each long
               video's segments landed.
  tenmin       one 10-minute 320x240 video, `--workers 1` against `--workers 2`, as above.
  ceiling      the machine's own limit for the two 2-vs-1 targets: the ffmpeg CLI command above
               decoding the 10-minute video once, against two copies of it running at the same
               time; ratio = 2 x (one copy's wall) / (the pair's wall). No ingest code runs, so
               this is what two cores give this decode when nothing is shared but the hardware
               (caches, memory bandwidth, and whatever the host puts beside the two vCPUs).

Per repetition the peers run back to back; medians of the per-repetition ratios are reported.
The 2-vs-1 ratios need two idle cores: every line gives the 1-minute load average before the
run, and the summary says when a repetition started above IDLE_LOAD.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_inputs import cached_dir, make_input  # noqa: E402


def looped(work: Path, width: int, height: int, seconds: float) -> Path:
    """`work/loop_<w>x<h>_<s>s.mp4`: the real footage looped to `seconds`, made once."""
    path = work / f"loop_{width}x{height}_{seconds:g}s.mp4"
    if not path.is_file():
        src = make_input(work, width, height)
        tmp = path.with_suffix(".part.mp4")
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1",
                        "-i", str(src), "-t", f"{seconds:g}", "-c:v", "libx264", "-preset",
                        "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-an", str(tmp)],
                       check=True)
        tmp.replace(path)
    return path


def folder(work: Path, name: str, files: list[tuple[Path, int]]) -> Path:
    """A folder of hard links: (source, copies)."""
    def build(tmp: Path) -> None:
        k = 0
        for source, copies in files:
            for _ in range(copies):
                os.link(source, tmp / f"v{k:02d}_{source.stem}.mp4")
                k += 1
    return cached_dir(work, name, build)


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the command and its children, stdout)."""
    cpu0, t0 = children_cpu(), time.perf_counter()
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, children_cpu() - cpu0
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}")
    return wall, cpu, result.stdout


def ingest(src: Path, out: Path, *extra: str, code: Path | None = None) -> tuple[float, float, dict]:
    """The command with this checkout's code, or with the `cwm` package under `code`."""
    shutil.rmtree(out, ignore_errors=True)
    env = None if code is None else dict(os.environ, PYTHONPATH=str(code))
    wall, cpu, _ = run(["cwm-ingest", "folder", "--src", str(src), "--out", str(out),
                        "--no-progress", *extra], env)
    index = json.loads((out / "_index.json").read_text())
    return wall, cpu, index


def ffmpeg_one(f: Path) -> tuple[float, float]:
    """(wall s, CPU s) of the ffmpeg CLI decoding `f` to 64x64 RGB, one thread."""
    wall, cpu, _ = run(["ffmpeg", "-nostdin", "-v", "error", "-threads", "1", "-filter_threads",
                        "1", "-i", str(f), "-vf", "scale=64:64:flags=area", "-f", "rawvideo",
                        "-pix_fmt", "rgb24", "-y", "/dev/null"])
    return wall, cpu


def ffmpeg_all(src: Path) -> tuple[float, float]:
    wall = cpu = 0.0
    for f in sorted(src.glob("*.mp4")):
        w, c = ffmpeg_one(f)
        wall, cpu = wall + w, cpu + c
    return wall, cpu


def shards_per_source(out: Path) -> dict[str, int]:
    where: dict[str, set] = {}
    for tar_path in out.glob("*.tar"):
        with tarfile.open(tar_path) as tar:
            for name in tar.getnames():
                where.setdefault(name.split(".", 1)[0].rsplit("_", 1)[0], set()).add(tar_path.name)
    return {k: len(v) for k, v in sorted(where.items())}


def scenario_folder10(work: Path, tmp: Path, reps: int, baseline: Path | None) -> None:
    small, large = looped(work, 320, 240, 20), looped(work, 1280, 720, 20)
    src = folder(work, "folder10", [(small, 8), (large, 2)])
    ratios, base_ratios = [], []
    for rep in range(reps):
        load = os.getloadavg()[0]
        f_wall, f_cpu = ffmpeg_all(src)
        i_wall, i_cpu, index = ingest(src, tmp / "f10")
        ratios.append(f_cpu / i_cpu)
        line = (f"folder10 rep {rep + 1} (load {load:.1f}): ffmpeg {f_cpu:.2f} CPU-s "
                f"({f_wall:.2f} s wall), cwm-ingest {i_cpu:.2f} CPU-s ({i_wall:.2f} s wall, "
                f"{index['totals']['decoded_frames']} frames, {index['num_shards']} shards): "
                f"ratio {ratios[-1]:.2f}x")
        if baseline is not None:
            b_wall, b_cpu, _ = ingest(src, tmp / "f10b", code=baseline)
            base_ratios.append(f_cpu / b_cpu)
            line += f"; baseline {b_cpu:.2f} CPU-s ({b_wall:.2f} s wall): {base_ratios[-1]:.2f}x"
        print(line, flush=True)
    print(f"folder10: median ffmpeg/ingest CPU ratio {statistics.median(ratios):.2f}x"
          + (f", baseline {statistics.median(base_ratios):.2f}x" if base_ratios else ""))


IDLE_LOAD = 1.5     # 1-minute load average above which the 2-vs-1 figures are not of record


def two_vs_one(name: str, src: Path, tmp: Path, reps: int) -> None:
    ratios, loads = [], []
    for rep in range(reps):
        rates = {}
        for workers in (1, 2):
            load = os.getloadavg()[0]
            loads.append(load)
            wall, cpu, index = ingest(src, tmp / name, "--workers", str(workers))
            frames = index["totals"]["frames"]
            rates[workers] = frames / wall
            spread = shards_per_source(tmp / name)
            longest = {k: v for k, v in spread.items() if "90s" in k or "600s" in k}
            print(f"{name} rep {rep + 1}, {workers} worker(s) (load {load:.1f}): "
                  f"{wall:.2f} s wall, {cpu:.2f} CPU-s, {frames} frames written "
                  f"({index['totals']['decoded_frames']} decoded), "
                  f"{rates[workers]:,.0f} frames/s, {index['num_shards']} shards; "
                  f"shards per long source {longest}", flush=True)
        ratios.append(rates[2] / rates[1])
    busy = sum(load > IDLE_LOAD for load in loads)
    print(f"{name}: 2/1 workers wall-rate ratios {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}x; load {min(loads):.1f}-{max(loads):.1f}"
          + (f" ({busy} of {len(loads)} runs started above {IDLE_LOAD}: not idle)" if busy
             else " (idle)"))


def ceiling(src: Path, reps: int) -> None:
    (video,) = sorted(src.glob("*.mp4"))
    ratios, loads = [], []
    for rep in range(reps):
        loads.append(os.getloadavg()[0])
        one, _ = ffmpeg_one(video)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ffmpeg_one, [video, video]))
        pair = time.perf_counter() - t0
        ratios.append(2 * one / pair)
        print(f"ceiling rep {rep + 1} (load {loads[-1]:.1f}): one ffmpeg {one:.2f} s, two at "
              f"once {pair:.2f} s: {ratios[-1]:.2f}x", flush=True)
    print(f"ceiling: 2 concurrent / 1 ffmpeg decodes {', '.join(f'{r:.2f}' for r in ratios)}; "
          f"median {statistics.median(ratios):.2f}x; load {min(loads):.1f}-{max(loads):.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cwm-bench-ingest")
    ap.add_argument("--only", default="folder10,long2short8,tenmin,ceiling")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="a directory holding another version's `cwm` package (e.g. `git archive "
                         "<commit> cwm | tar -x -C DIR`): folder10 runs it too, same defaults")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    only = set(args.only.split(","))
    print(f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "folder10" in only:
            scenario_folder10(args.work, tmp, args.reps, args.baseline)
        if "long2short8" in only:
            src = folder(args.work, "long2short8", [(looped(args.work, 320, 240, 90), 2),
                                                    (looped(args.work, 320, 240, 4), 8)])
            two_vs_one("long2short8", src, tmp, args.reps)
        if only & {"tenmin", "ceiling"}:
            tenmin = folder(args.work, "tenmin", [(looped(args.work, 320, 240, 600), 1)])
        if "tenmin" in only:
            two_vs_one("tenmin", tenmin, tmp, args.reps)
        if "ceiling" in only:
            ceiling(tenmin, args.reps)


if __name__ == "__main__":
    main()
