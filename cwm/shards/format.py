"""The shard sample format: the contract between ingest and everything that reads shards.

One sample is one *segment* (consecutive frames of one source video):

    __key__     "<video-id>_<segment-index:04d>", characters [A-Za-z0-9_-] only
    frames.npy  uint8 [T, 64, 64, 3] RGB, HWC (default storage)
    frames.mp4  the same frames as H.264 (optional storage, ~27x smaller, ~40x slower to decode)
    meta.json   dataset, video id, source path, label, fps, frame indices, resolution, crop policy

Both storages decode to the same array. Nothing here ever unpickles: `.npy` members are loaded
with `allow_pickle=False`, so a shard stays data.
"""

from __future__ import annotations

import io
import json
import re
from fractions import Fraction

import av
import numpy as np

FRAME_SIZE = 64
FRAME_MEMBERS = ("frames.npy", "frames.mp4")
STORAGES = ("npy", "mp4")

_BAD_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize_id(raw: str) -> str:
    """Make a video id safe as a WebDataset key (webdataset splits keys at the first dot).

    `S1/Videos/Directions 1.54138969` -> `S1_Videos_Directions_1_54138969`.
    """
    clean = _BAD_KEY_CHARS.sub("_", raw).strip("_")
    return clean or "video"


def sample_key(video_id: str, segment_index: int) -> str:
    return f"{video_id}_{segment_index:04d}"


def encode_npy(frames: np.ndarray) -> bytes:
    """`np.save`'s bytes of uint8 `frames` (tests/shards/test_format.py checks they are)."""
    return b"".join(npy_buffers(frames))


def npy_buffers(frames: np.ndarray) -> tuple[bytes, memoryview]:
    """`encode_npy(frames)` as two buffers, its header and the array's own memory: the same
    bytes for a writer that writes them one after the other (`cwm.ingest.tarout`), without the
    four copies of every frame that building one bytes object and a tar member from it take."""
    frames = np.ascontiguousarray(frames, dtype=np.uint8)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(frames))
    return header.getvalue(), memoryview(frames.reshape(-1))


def encode_mp4(frames: np.ndarray, fps: float = 10.0, crf: int = 18) -> bytes:
    """H.264 (yuv420p) in an mp4 container, one thread so it is reproducible per process."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        rate = Fraction(fps).limit_denominator(1000) if fps > 0 else Fraction(10)
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for img in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def decode_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def decode_mp4(data: bytes) -> np.ndarray:
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        stream.codec_context.thread_count = 1
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


def make_sample(key: str, frames: np.ndarray, meta: dict, storage: str = "npy",
                fps: float = 10.0, buffers: bool = False) -> dict:
    """A dict ready for `webdataset.TarWriter.write` (or any tar writer: member = key + '.' + field).

    buffers: `frames.npy` as `npy_buffers(frames)`, for `cwm.ingest.tarout` only."""
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {frames.dtype} {frames.shape}")
    sample = {"__key__": key, "meta.json": json.dumps(meta, sort_keys=True).encode()}
    if storage == "npy":
        sample["frames.npy"] = npy_buffers(frames) if buffers else encode_npy(frames)
    else:
        sample["frames.mp4"] = encode_mp4(frames, fps=fps)
    return sample


def decode_frames(sample: dict) -> np.ndarray:
    """uint8 [T, H, W, 3] from a raw sample dict holding `frames.npy` or `frames.mp4` bytes."""
    if "frames.npy" in sample:
        frames = decode_npy(sample["frames.npy"])
    elif "frames.mp4" in sample:
        frames = decode_mp4(sample["frames.mp4"])
    else:
        raise KeyError(f"sample {sample.get('__key__')!r} has no frames.npy or frames.mp4")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"sample {sample.get('__key__')!r}: bad frames {frames.dtype} {frames.shape}")
    return frames


def decode_meta(sample: dict) -> dict:
    raw = sample.get("meta.json")
    try:
        return json.loads(raw) if raw else {}
    except RecursionError:
        # json recurses once per nesting level: a hostile meta.json must not crash the reader
        raise ValueError("meta.json is nested too deeply") from None
