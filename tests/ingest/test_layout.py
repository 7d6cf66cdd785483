"""Dealing segments to shards: seeded, balanced, every video accounted for exactly once."""

from __future__ import annotations

from cwm.ingest.layout import SampleRef, VideoOutcome, layout, shard_count


def outcomes(lengths: dict[str, int], size: int = 1000) -> list[VideoOutcome]:
    found = []
    for vid, n in lengths.items():
        refs = [SampleRef(f"{vid}_{k:04d}", "part-x", k * size, size, 50) for k in range(n)]
        found.append(VideoOutcome(vid, f"{vid}.mp4", samples=refs,
                                  status="ok" if n else "skipped"))
    return found


def test_seeded_balanced_and_mixed():
    videos = outcomes({"long": 60, **{f"s{i}": 3 for i in range(10)}, "short": 0})
    a = layout(videos, "d", 9, 1, seed=0)
    assert [s.name for s in a] == [f"d-{i:06d}" for i in range(10)]
    sizes = [len(s.samples) for s in a]
    assert sum(sizes) == 90 and max(sizes) - min(sizes) <= 1
    assert [s.samples for s in a] == [s.samples for s in layout(videos, "d", 9, 1, seed=0)]
    assert [s.samples for s in a] != [s.samples for s in layout(videos, "d", 9, 1, seed=1)]
    assert sum(any(r.key.startswith("long_") for r in s.samples) for s in a) >= 8
    assert sum(len({r.key.rsplit("_", 1)[0] for r in s.samples}) >= 2 for s in a) >= 8
    accounted = [o.video_id for s in a for o in s.videos]
    assert sorted(accounted) == sorted(o.video_id for o in videos)      # each once


def test_shard_count_by_bytes_keeps_a_floor_of_shards():
    refs = outcomes({"v": 200}, size=10)[0].samples
    assert shard_count(refs, None, 10**9) == 8            # tiny bytes: still 8 shards of 25
    assert shard_count(refs[:20], None, 10**9) == 1       # too few samples for more
    assert shard_count(refs, None, 100) == 20             # by bytes
    assert shard_count(refs, 7, 1) == 29                  # by samples, exactly
