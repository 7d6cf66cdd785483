"""Windows over whole videos (segments joined): independent draws from a `Catalog`, or from a
stream of shards.

Indexed (`draw_clips`): every clip is drawn on its own (no shuffle buffer), so a batch is as
varied as i.i.d. draws, whatever the shard layout:

    sample_by="video"    (default, upstream) a uniformly random video, then a uniformly random
                         start among its L - seq_len + 1 windows: every video counts the same,
                         a 2-minute drive as much as a 4-second SSv2 clip
    sample_by="segment"  a uniformly random window among all windows of the dataset: a video
                         counts in proportion to its length, as drawing a segment then a window in
                         it did before (segments are of equal length)

Streaming (`stream_clips`, for shards that cannot be indexed): the consecutive segments of one
video in a shard are joined the same way (ingest keeps a video's segments together), then "video" gives one clip per video and
"segment" one per segment, each a uniformly random window of the whole video; the shuffle buffer
downstream mixes them. (With "video", a long video is read whole for one clip: on Human3.6M a
stream yields ~4-20x fewer clips per byte read than with "segment".)

Either way every window of a video, including those that cross a segment boundary, is equally
likely once its video is chosen. The context frame is uniform inside the window.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from typing import Iterator

from cwm.errors import UserError
from cwm.shards.catalog import Catalog, Video, parse_segment, videos_of
from cwm.shards.sampling import Clip
from cwm.shards.tarstream import ReadStats

SAMPLE_BY = ("video", "segment")


def check_sample_by(sample_by: str) -> None:
    if sample_by not in SAMPLE_BY:
        raise UserError(f"sample_by must be one of {', '.join(SAMPLE_BY)}, got {sample_by!r}")


def draw_clips(catalog: Catalog, seq_len: int, rng: random.Random, sample_by: str,
               stats: ReadStats, label: str = "") -> Iterator[Clip]:
    """An endless stream of independent clips (a damaged mp4 segment is warned about and redrawn)."""
    check_sample_by(sample_by)
    if not catalog.videos:
        raise UserError(f"no usable clip in {label or 'the shards'!r}: every video is shorter than "
                        f"seq_len={seq_len} or damaged (see warnings)")
    videos, ends = catalog.videos, catalog.window_ends
    failures = 0
    while True:
        if sample_by == "video":
            video = videos[rng.randrange(len(videos))]
            start = rng.randrange(video.length - seq_len + 1)
        else:
            w = rng.randrange(ends[-1])
            v = bisect_right(ends, w)
            video = videos[v]
            start = w - (ends[v - 1] if v else 0)
        clip = _clip(video, start, seq_len, rng, stats)
        if clip is None:
            failures += 1
            if failures > 100 * len(videos) + 100:
                raise UserError(f"no usable clip in {label or 'the shards'!r}: windows keep failing "
                                f"to decode (see warnings)")
            continue
        failures = 0
        yield clip


def stream_clips(shards: Iterator[Iterator[dict]], seq_len: int, rng: random.Random,
                 sample_by: str, stats: ReadStats) -> Iterator[Clip]:
    """Clips from the raw samples of a stream of shards (one sample iterator per shard), each
    video's consecutive segments within a shard joined."""
    check_sample_by(sample_by)
    for samples in shards:
        parts: list = []
        current = None
        for sample in samples:
            parsed = parse_segment(sample, stats)
            if parsed is None:
                continue
            video_id, number, first_frame, segment = parsed
            if parts and video_id != current:
                yield from _stream_video(parts, seq_len, rng, sample_by, stats)
                parts = []
            current = video_id
            parts.append((number, first_frame, len(parts), segment))
        if parts:
            yield from _stream_video(parts, seq_len, rng, sample_by, stats)


def _stream_video(parts, seq_len, rng, sample_by, stats) -> Iterator[Clip]:
    for video in videos_of(parts, seq_len, stats):
        for _ in range(1 if sample_by == "video" else len(video.segments)):
            clip = _clip(video, rng.randrange(video.length - seq_len + 1), seq_len, rng, stats)
            if clip is not None:
                yield clip


def _clip(video: Video, start: int, seq_len: int, rng: random.Random,
          stats: ReadStats) -> Clip | None:
    """The clip of `video` starting at frame `start`; None (counted) if a segment fails to decode."""
    context_index = rng.randrange(seq_len)
    try:
        first, local, pieces = video.window(start, seq_len)
    except Exception as e:  # noqa: BLE001 -- an mp4 segment that does not decode
        stats.problem(video.segments[0].url, "bad_samples",
                      f"skipped a window of {video.segments[0].key!r}: {e}")
        return None
    segment = video.segments[first]
    return Clip(key=segment.key, pieces=pieces, start=local, context_index=context_index,
                meta=json.loads(segment.meta))
