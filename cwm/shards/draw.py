"""Independent random clips from a `Catalog`: upstream's sampling, whatever the shard layout.

Every clip is drawn on its own (no shuffle buffer), so a batch is as varied as i.i.d. draws:

    sample_by="video"    (default, upstream) a uniformly random video, then a uniformly random
                         start among its L - seq_len + 1 windows: every video counts the same,
                         a 2-minute drive as much as a 4-second SSv2 clip
    sample_by="segment"  a uniformly random window among all windows of the dataset: a video
                         counts in proportion to its length, as drawing a segment then a window in
                         it did before (segments are of equal length)

Either way every window of a video, including those that cross a segment boundary, is equally
likely once its video is chosen. The context frame is uniform inside the window.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_right
from typing import Iterator

from cwm.errors import UserError
from cwm.shards.catalog import Catalog
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
        context_index = rng.randrange(seq_len)
        try:
            first, local, pieces = video.window(start, seq_len)
        except Exception as e:  # noqa: BLE001 -- an mp4 segment that does not decode
            failures += 1
            stats.problem(video.segments[0].url, "bad_samples",
                          f"skipped a window of {video.segments[0].key!r}: {e}")
            if failures > 100 * len(videos) + 100:
                raise UserError(f"no usable clip in {label or 'the shards'!r}: windows keep failing "
                                f"to decode (see warnings)") from None
            continue
        failures = 0
        segment = video.segments[first]
        yield Clip(key=segment.key, pieces=pieces, start=local, context_index=context_index,
                   meta=json.loads(segment.meta))
