"""`synthetic`: procedurally generated videos for the demo and tests (never a stand-in for real
footage in claims about decoding).

Each video is a few moving, bouncing textured objects over a textured, slowly panning
background, with its own size (landscape, square and portrait), frame rate and length. The
videos are encoded to real files (H.264 .mp4, and VP8 .webm for every third) with PyAV, and then
ingested through exactly the same decode path as downloaded footage. Generation is a pure
function of (seed, index), and each file is written under a temporary name and renamed, so an
interrupted generation is simply completed by the next run.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from cwm.atomic import atomic_path, remove_stale_tmp
from cwm.ingest.sources.base import VideoInput

CACHE_DIR = "_synthetic"
SIZES = ((160, 120), (128, 128), (96, 128), (176, 144), (128, 96))
RATES = (10, 12, 15, 25)


def _texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[h, w, 3] uint8: stripes, checks or smooth blotches between two random colours."""
    c1, c2 = rng.integers(0, 256, (2, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        angle, period = rng.uniform(0, np.pi), rng.uniform(6, 24)
        mix = 0.5 + 0.5 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    elif kind == 1:
        p = int(rng.integers(4, 16))
        mix = ((xx // p + yy // p) % 2).astype(np.float32)
    else:
        from PIL import Image     # here: every `cwm-ingest` imports this module

        small = (rng.random((max(2, h // 16), max(2, w // 16))) * 255).astype(np.uint8)
        mix = np.asarray(Image.fromarray(small).resize((w, h), Image.BILINEAR), np.float32) / 255
    img = c1 * mix[..., None] + c2 * (1 - mix[..., None]) + rng.normal(0, 6, (h, w, 1))
    return np.clip(img, 0, 255).astype(np.uint8)


def render(seed: int, index: int) -> tuple[np.ndarray, int]:
    """Frames [T, H, W, 3] uint8 and the frame rate of synthetic video `index`."""
    rng = np.random.default_rng([seed, index])
    w, h = SIZES[index % len(SIZES)]
    n_frames, fps = int(rng.integers(60, 100)), int(rng.choice(RATES))
    background = _texture(rng, h * 2, w * 2)
    pan = rng.uniform(-1.5, 1.5, 2)
    objects = []
    for _ in range(int(rng.integers(1, 4))):
        r = int(rng.integers(8, max(10, min(w, h) // 3)))
        yy, xx = np.mgrid[-r:r, -r:r]
        mask = (xx ** 2 + yy ** 2 < r * r) if rng.random() < 0.5 else np.ones((2 * r, 2 * r), bool)
        objects.append({"tex": _texture(rng, 2 * r, 2 * r), "mask": mask, "r": r,
                        "pos": rng.uniform([r, r], [h - r, w - r]),
                        "vel": rng.uniform(-3, 3, 2)})
    frames = np.empty((n_frames, h, w, 3), np.uint8)
    for t in range(n_frames):
        oy, ox = (np.array([h, w]) // 2 + pan * t).astype(int) % np.array([h, w])
        frame = background[oy:oy + h, ox:ox + w].copy()
        for ob in objects:
            r = ob["r"]
            ob["pos"] += ob["vel"]
            for axis, limit in enumerate((h, w)):
                if not r <= ob["pos"][axis] <= limit - r:
                    ob["vel"][axis] *= -1
                    ob["pos"][axis] = np.clip(ob["pos"][axis], r, limit - r)
            y, x = ob["pos"].astype(int) - r
            region = frame[y:y + 2 * r, x:x + 2 * r]
            m = ob["mask"][:region.shape[0], :region.shape[1]]
            region[m] = ob["tex"][:region.shape[0], :region.shape[1]][m]
        frames[t] = frame
    return frames, fps


def encode(path: Path, frames: np.ndarray, fps: int) -> None:
    """Write frames [T, H, W, 3] uint8 to `path` (.mp4: H.264, .webm: VP8), atomically."""
    webm = path.suffix == ".webm"
    with atomic_path(path) as tmp:
        with av.open(str(tmp), mode="w", format="webm" if webm else "mp4") as container:
            stream = container.add_stream("libvpx" if webm else "libx264", rate=Fraction(fps))
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = ({"deadline": "realtime", "cpu-used": "8", "b": "400k"} if webm
                              else {"preset": "ultrafast", "crf": "23"})
            for img in frames:
                for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def video_name(seed: int, index: int) -> str:
    return f"synth-{seed}-{index:04d}.{'webm' if index % 3 == 2 else 'mp4'}"


def generate(root: Path, videos: int = 24, seed: int = 0) -> None:
    """Make sure `root` holds synthetic videos 0..videos-1 of `seed`; existing ones are kept."""
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(root)      # left by a generation that was killed
    for i in range(videos):
        path = root / video_name(seed, i)
        if not path.is_file():
            encode(path, *render(seed, i))


def list_videos(root: Path, videos: int = 24, seed: int = 0) -> list[VideoInput]:
    """Exactly the videos `generate(root, videos, seed)` makes, whatever else `root` holds."""
    names = [video_name(seed, i) for i in range(videos)]
    return [VideoInput(video_id=name.rsplit(".", 1)[0], path=name) for name in names]
