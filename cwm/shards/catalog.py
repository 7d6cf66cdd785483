"""An in-memory index of local shards: every video as the chain of its segments, for random draws.

Streaming shards front to back cannot give upstream's sampling: shards hold sorted neighbouring
videos, so a shuffle buffer mixes a few of them at a time (20 sources: 7.0 distinct per batch of
16 against 11.2 for independent draws). Local uncompressed tars are memory-mapped anyway
(`cwm.shards.tarstream`), so the catalog reads every shard's headers once, keeps each segment's
`frames.npy` as a zero-copy view of the map, and joins the segments of one video back into the
video:

    videos[i] = Video(segments=[s0, s1, ...], offsets=[0, len(s0), len(s0)+len(s1), ...])

Segments are joined by `(dataset, video_id, segment)` from `meta.json` (else from the key
`<video-id>_<segment:04d>`), wherever they sit in the shard list: consecutive segment numbers
whose source frame indices increase form one video; a missing number or a repeat starts a new
chain. A window may then start at any frame of a video and cross segment boundaries, so every
window of every video can be drawn.

Memory: the pixels stay in the page cache (views); per segment the catalog holds its meta.json
bytes and a few integers (~1 KB). `frames.mp4` segments keep their encoded bytes and are decoded
when drawn. A catalog pickles as its shard list and is rebuilt on the other side (spawned
workers); forked workers share the parent's.
"""

from __future__ import annotations

import os
import re
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np

from cwm.shards.format import FRAME_SIZE, decode_frames, decode_meta
from cwm.shards.frames import npy_view
from cwm.shards.tarstream import _COMPRESSED, ReadStats, iter_samples

_KEY = re.compile(r"^(.*)_(\d+)$")


@dataclass(slots=True)
class Segment:
    key: str
    url: str
    meta: bytes
    length: int
    frames: np.ndarray | None = None   # uint8 [length, 64, 64, 3] view (npy storage)
    encoded: dict | None = None       # the raw sample (mp4 storage), decoded when drawn

    def pixels(self) -> np.ndarray:
        if self.frames is not None:
            return self.frames
        frames = decode_frames(self.encoded)
        if frames.shape[0] < self.length:   # meta.json promised more frames than the mp4 holds
            raise ValueError(f"{self.key}: frames.mp4 holds {frames.shape[0]} frames, "
                             f"meta.json says {self.length}")
        return frames[: self.length]   # the offsets of the video count `length` frames


@dataclass(slots=True)
class Video:
    """The chain of one video's consecutive segments; frame f is in segments[bisect(offsets, f) - 1]."""

    segments: list[Segment]
    offsets: list[int]

    @property
    def length(self) -> int:
        return self.offsets[-1]

    def window(self, start: int, length: int) -> tuple[int, int, list[np.ndarray]]:
        """(index of the first segment, start within it, the pieces that make the window)."""
        first = bisect_right(self.offsets, start) - 1
        i, local, need, pieces = first, start - self.offsets[first], length, []
        while need > 0:
            frames = self.segments[i].pixels()
            piece = frames[local : local + need]
            pieces.append(piece)
            need -= piece.shape[0]
            i, local = i + 1, 0
        return first, start - self.offsets[first], pieces


def is_local_tar(url: str) -> bool:
    """True for a local uncompressed tar file (the ones the catalog can map)."""
    if not os.path.isfile(url):
        return False
    with open(url, "rb") as f:
        magic = f.read(6)
    return bool(magic) and not magic.startswith(_COMPRESSED)


@dataclass
class Catalog:
    """The videos of one dataset's shards (local, uncompressed), usable clips only."""

    shards: list[str]
    seq_len: int
    videos: list[Video] = field(default_factory=list)
    # cumulative count of windows of length seq_len over the videos (for sample_by="segment")
    window_ends: list[int] = field(default_factory=list)
    stats: ReadStats = field(default_factory=ReadStats)
    segments: int = 0

    @classmethod
    def build(cls, shards: list[str], seq_len: int, stats: ReadStats | None = None) -> "Catalog":
        cat = cls(shards=list(shards), seq_len=seq_len, stats=stats or ReadStats())
        cat._scan()
        return cat

    def _scan(self) -> None:
        by_video: dict[tuple[str, str], list[tuple[int, int, int, Segment]]] = {}
        order = 0
        for url in self.shards:
            for sample in iter_samples(url, self.stats):
                parsed = parse_segment(sample, self.stats)
                if parsed is None:
                    continue
                video_id, number, first_frame, segment = parsed
                by_video.setdefault(video_id, []).append((number, first_frame, order, segment))
                order += 1
        self.segments = order
        total = 0
        for video_id in sorted(by_video):
            for video in videos_of(by_video[video_id], self.seq_len, self.stats):
                self.videos.append(video)
                total += video.length - self.seq_len + 1
                self.window_ends.append(total)

    @property
    def windows(self) -> int:
        return self.window_ends[-1] if self.window_ends else 0

    def __getstate__(self):
        return {"shards": self.shards, "seq_len": self.seq_len}

    def __setstate__(self, state):
        self.__init__(shards=state["shards"], seq_len=state["seq_len"])
        self._scan()


def videos_of(parts, seq_len: int, stats: ReadStats) -> list[Video]:
    """The videos (chains of consecutive segments) among one video id's parsed segments, those of
    at least seq_len frames; the segments of shorter ones are counted in `stats.short_samples`."""
    videos = []
    for run in chains(sorted(parts, key=lambda p: (p[0], p[2]))):
        offsets = [0]
        for seg in run:
            offsets.append(offsets[-1] + seg.length)
        if offsets[-1] < seq_len:
            stats.short_samples += len(run)
            continue
        videos.append(Video(segments=run, offsets=offsets))
    return videos


def chains(parts):
    """Split sorted (number, first_frame, order, segment) into chains of consecutive segments."""
    run, last = [], None
    for number, first_frame, _, segment in parts:
        if last is not None and (number != last[0] + 1 or first_frame <= last[1]):
            yield run
            run = []
        run.append(segment)
        last = (number, first_frame)
    if run:
        yield run


def parse_segment(sample: dict, stats: ReadStats):
    """(video id, segment number, first source frame, Segment) of a raw sample, or None (counted)."""
    key, url = sample["__key__"], str(sample.get("__url__"))
    try:
        meta_bytes = bytes(sample.get("meta.json", b"{}"))
        meta = decode_meta({"meta.json": meta_bytes})
        if not isinstance(meta, dict):
            raise ValueError("meta.json is not an object")
        match = _KEY.match(key)
        video_id = (str(meta.get("dataset", "")),
                    str(meta.get("video_id", match[1] if match else key)))
        number = int(meta.get("segment", match[2] if match else 0))
        first_frame = int(meta.get("first_frame", -1)) if "first_frame" in meta else -1
        if "frames.npy" in sample:
            frames = npy_view(sample["frames.npy"])
            if frames.shape[1:] != (FRAME_SIZE, FRAME_SIZE, 3):
                raise ValueError(f"frames are {frames.shape}, want [T, {FRAME_SIZE}, {FRAME_SIZE}, 3]")
            segment = Segment(key=key, url=url, meta=meta_bytes, length=frames.shape[0],
                              frames=frames)
        elif "frames.mp4" in sample:
            encoded = {"__key__": key, "frames.mp4": bytes(sample["frames.mp4"])}
            length = meta.get("num_frames")
            if not isinstance(length, int) or length < 1:
                length = decode_frames(encoded).shape[0]
            segment = Segment(key=key, url=url, meta=meta_bytes, length=length, encoded=encoded)
        else:
            raise ValueError("no frames.npy or frames.mp4")
    except Exception as e:  # noqa: BLE001 -- a sample is data: anything it raises means "bad sample"
        stats.problem(url, "bad_samples", f"skipped sample {key!r}: {e}")
        return None
    # A repeated first frame (the same shard listed twice) must not chain with itself.
    return video_id, number, first_frame if first_frame >= 0 else number, segment
