"""Deterministic work plans: sanitized unique ids, long inputs split, tasks of equal work."""

from cwm.ingest.config import FrameOptions
from cwm.ingest.decode import SegmentRange
from cwm.ingest.plan import make_plan
from cwm.ingest.probe import Probe
from cwm.ingest.sources.base import VideoInput

OPTS = FrameOptions()


def inputs(*paths):
    return [VideoInput(video_id=p.rsplit(".", 1)[0], path=p) for p in paths]


def plan(items, probes=None, slots=1):
    return make_plan(items, probes, "/r", OPTS, slots)


def test_deterministic_and_digest_ignores_the_task_cut():
    items = inputs(*(f"v{i}.mp4" for i in (5, 3, 1, 4, 2)))
    a, b = plan(items), plan(list(reversed(items)))
    assert [v.key_id for v in a.videos] == ["v1", "v2", "v3", "v4", "v5"]
    assert [t.name for t in a.tasks] == [t.name for t in b.tasks]
    assert a.digest() == b.digest() == plan(items, slots=3).digest()
    assert a.digest() != plan(items[:4]).digest()
    assert sorted(u.video.key_id for t in a.tasks for u in t.units) == ["v1", "v2", "v3", "v4", "v5"]


def test_long_input_split_into_segment_ranges_and_work_balanced():
    items = inputs("long.mp4", *(f"s{i}.mp4" for i in range(8)))
    probes = {"long": Probe(frames=2700, fps=30, width=320, height=240),
              **{f"s{i}": Probe(frames=120, fps=30, width=320, height=240) for i in range(8)}}
    p = plan(items, probes, slots=2)
    ranges = sorted((u.segments for t in p.tasks for u in t.units if u.video.key_id == "long"),
                    key=lambda r: r.first)
    assert len(ranges) >= 2 and ranges[0].first == 0 and ranges[-1].end is None
    assert all(a.end == b.first for a, b in zip(ranges, ranges[1:]))   # contiguous, no overlap
    assert len(ranges) == 2                # two workers: one worker's share each, no more
    # the tasks, heaviest first, onto whichever of the 2 workers is free: both end near even
    ends = [0.0, 0.0]
    for t in p.tasks:
        ends[ends.index(min(ends))] += t.work
    assert max(ends) <= 1.1 * sum(ends) / 2
    # one worker: fewer, bigger ranges; short inputs are never split
    assert all(u.segments == SegmentRange() for t in plan(items, probes).tasks for u in t.units
               if u.video.key_id.startswith("s"))


def test_failed_probe_marks_the_input_failed_not_the_run():
    p = plan(inputs("a.mp4", "b.mp4"), {"a": Probe(error="cannot open as a video: x"),
                                        "b": Probe(frames=30, fps=10, width=64, height=48)})
    assert p.unprobed == {"a": "cannot open as a video: x"}
    assert [u.video.key_id for t in p.tasks for u in t.units] == ["b"]


def test_keys_sanitized_like_webdataset_needs():
    p = plan([VideoInput("S1/Videos/Directions 1.54138969", "S1/Videos/Directions 1.54138969.mp4")])
    assert p.videos[0].key_id == "S1_Videos_Directions_1_54138969"


def test_colliding_ids_made_unique_and_recorded():
    p = plan(inputs("a b.mp4", "a_b.mp4", "a b.webm", "a_b-2.mp4"))
    ids = {v.item.path: v.key_id for v in p.videos}
    assert len(set(ids.values())) == 4
    assert ids["a b.mp4"] == "a_b" and ids["a_b-2.mp4"] == "a_b-2"
    assert {r["source"] for r in p.renamed} == {"a b.webm", "a_b.mp4"}


def test_same_source_listed_twice_is_ingested_once():
    items = inputs("x.webm") + [VideoInput("x", "x.webm", meta={"split": "validation"})]
    p = plan(items)
    assert p.n_videos == 1 and p.duplicates == ["x.webm"]


def _units(p, key):
    return sorted((u.segments for t in p.tasks for u in t.units if u.video.key_id == key),
                  key=lambda r: r.first)


def test_inputs_stay_whole_when_whole_inputs_already_balance():
    """The 10-video folder of bench/ingest_scale.py: 2 x 720p + 8 x 320x240, 20 s each. Two
    workers each take one 720p file and four small ones; a split would only add pre-roll."""
    items = inputs("big0.mp4", "big1.mp4", *(f"s{i}.mp4" for i in range(8)))
    probes = {**{f"big{i}": Probe(frames=500, fps=25, width=1280, height=720) for i in range(2)},
              **{f"s{i}": Probe(frames=500, fps=25, width=320, height=240) for i in range(8)}}
    p = plan(items, probes, slots=2)
    assert p.n_units == 10 and all(u.segments == SegmentRange() for t in p.tasks for u in t.units)
    # 2 x 90 s + 8 x 4 s: each worker one long video and four short ones
    items = inputs("l0.mp4", "l1.mp4", *(f"s{i}.mp4" for i in range(8)))
    probes = {**{f"l{i}": Probe(frames=2250, fps=25, width=320, height=240) for i in range(2)},
              **{f"s{i}": Probe(frames=100, fps=25, width=320, height=240) for i in range(8)}}
    assert plan(items, probes, slots=2).n_units == 10


def test_inputs_are_split_when_whole_ones_leave_a_worker_idle():
    one = inputs("tenmin.mp4")
    probes = {"tenmin": Probe(frames=15_000, fps=25, width=320, height=240)}
    # as many ranges as workers: each range after the first costs a demux pass and a pre-roll
    assert len(_units(plan(one, probes, slots=2), "tenmin")) == 2
    assert len(_units(plan(one, probes, slots=3), "tenmin")) == 3
    # three equal videos on two workers: whole, one worker would do two of them; cut at one
    # worker's share (1.5 videos) nothing is split, at half of it each video is cut in two
    items = inputs("a.mp4", "b.mp4", "c.mp4")
    probes = {k: Probe(frames=1500, fps=25, width=320, height=240) for k in "abc"}
    assert plan(items, probes, slots=2).n_units == 6
    assert plan(items, probes, slots=3).n_units == 3


def test_a_very_long_input_is_split_even_on_one_worker():
    """No unit holds more than MAX_UNIT_SEGMENTS segments (~370 MB of frames in memory)."""
    items = inputs("day.mp4")
    probes = {"day": Probe(frames=25 * 3600, fps=25, width=320, height=240)}   # 1,800 segments
    ranges = _units(plan(items, probes, slots=1), "day")
    assert len(ranges) == 3 and ranges[0].first == 0 and ranges[-1].end is None
    assert all(b.first - a.first <= 600 for a, b in zip(ranges, ranges[1:]))


def test_ranges_after_the_first_hold_fewer_segments_for_their_demux_pass():
    """The second of two ranges also demuxes the whole file and decodes its keyframe pre-roll:
    it gets fewer segments so that both cost the same (`RANGE_OVERHEAD`)."""
    one = inputs("tenmin.mp4")
    probes = {"tenmin": Probe(frames=15_000, fps=25, width=320, height=240)}   # 300 segments
    units = sorted((u for t in plan(one, probes, slots=2).tasks for u in t.units),
                   key=lambda u: u.segments.first)
    assert [(u.segments.first, u.segments.end) for u in units] == [(0, 153), (153, None)]
    assert abs(units[0].work - units[1].work) < 1e-6 * units[0].work
    # the memory cap still holds: 1,800 segments in 3 ranges of at most 600 each
    day = _units(plan(inputs("day.mp4"), {"day": Probe(frames=90_000, fps=25, width=320,
                                                         height=240)}), "day")
    assert [r.first for r in day] == [0, 600, 1200]


def test_a_frame_run_is_cut_evenly():
    """Stills are read one by one: a later range pays no demux pass, so no shorter ranges."""
    frames = tuple(f"{i:05d}.jpg" for i in range(15_000))
    run = [VideoInput("drive", "drive", frames=frames, frame_rate=25.0)]
    probe = {"drive": Probe(frames=15_000, fps=25, width=320, height=240)}
    assert [r.first for r in _units(plan(run, probe, slots=2), "drive")] == [0, 150]
