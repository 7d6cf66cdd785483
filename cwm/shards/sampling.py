"""Choosing a clip inside a segment: a window of `seq_len` frames and a context frame in it.

This is the streaming path (evaluation, and training on shards that cannot be indexed: URLs,
compressed tars); indexed training draws windows over whole videos instead (`cwm.shards.draw`).
The window start is uniform over the segment and the context frame uniform inside the window
(upstream: `c = o_t~`, t~ ~ U{1..T}). Training draws both from the worker's seeded stream;
evaluation derives them from (seed, key) alone, so a given sample gets the same clip whichever
rank or worker reads it and in whatever order.

Segments shorter than `seq_len` are skipped and counted rather than padded: padding would teach
the model frozen frames that never occur in video. Ingest's default `--min-frames` equals the
default `seq_len` (25), so with default settings nothing is skipped.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

from cwm.shards.format import FRAME_SIZE, decode_meta
from cwm.shards.frames import sample_frames
from cwm.shards.tarstream import ReadStats


@dataclass
class Clip:
    """One training example before batching; its pieces may be views into the shards' bytes."""

    key: str  # the segment the window starts in
    pieces: list[np.ndarray]  # uint8 [n_i, 64, 64, 3], concatenated: the window (seq_len frames)
    start: int  # window start within segment `key`
    context_index: int  # within the window
    meta: dict  # of segment `key`


def eval_rng(seed: int, key: str) -> random.Random:
    """A generator that depends only on the seed and the sample key (order-independent)."""
    digest = hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "little"))


def to_clip(sample: dict, seq_len: int, rng: random.Random | None, seed: int,
            stats: ReadStats) -> Clip | None:
    """A clip from a raw sample, or None (warned and counted) when the sample is unusable.

    `rng=None` means evaluation: windows derived from (seed, key).
    """
    key = sample["__key__"]
    try:
        frames = sample_frames(sample)
        meta = decode_meta(sample)
        if frames.shape[1:] != (FRAME_SIZE, FRAME_SIZE, 3):
            raise ValueError(f"frames are {frames.shape}, want [T, {FRAME_SIZE}, {FRAME_SIZE}, 3]")
        if not isinstance(meta, dict):
            raise ValueError("meta.json is not an object")
    # A sample is data: whatever its decoders raise (npy header, json, ffmpeg) means "bad sample",
    # never a crashed training run.
    except Exception as e:  # noqa: BLE001
        stats.problem(str(sample.get("__url__")), "bad_samples", f"skipped sample {key!r}: {e}")
        return None
    length = frames.shape[0]
    if length < seq_len:
        stats.short_samples += 1
        return None
    r = rng if rng is not None else eval_rng(seed, key)
    start = r.randint(0, length - seq_len)
    context_index = r.randint(0, seq_len - 1)
    return Clip(key=key, pieces=[frames[start : start + seq_len]], start=start,
                context_index=context_index, meta=meta)
