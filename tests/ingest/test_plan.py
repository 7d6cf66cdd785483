"""Deterministic shard specs, sanitized unique ids."""

from cwm.ingest.plan import make_plan
from cwm.ingest.sources.base import VideoInput


def inputs(*paths):
    return [VideoInput(video_id=p.rsplit(".", 1)[0], path=p) for p in paths]


def test_sorted_and_cut_into_shards_deterministically():
    items = inputs(*(f"v{i}.mp4" for i in (5, 3, 1, 4, 2)))
    a = make_plan(items, "/r", "ds", 2)
    b = make_plan(list(reversed(items)), "/r", "ds", 2)
    assert [s.name for s in a.shards] == ["ds-000000", "ds-000001", "ds-000002"]
    assert [[v.key_id for v in s.videos] for s in a.shards] == [["v1", "v2"], ["v3", "v4"], ["v5"]]
    assert a.digest() == b.digest()
    assert a.digest() != make_plan(items, "/r", "ds", 3).digest()


def test_keys_sanitized_like_webdataset_needs():
    plan = make_plan([VideoInput("S1/Videos/Directions 1.54138969",
                                 "S1/Videos/Directions 1.54138969.mp4")], "/r", "h", 10)
    assert plan.shards[0].videos[0].key_id == "S1_Videos_Directions_1_54138969"


def test_colliding_ids_made_unique_and_recorded():
    plan = make_plan(inputs("a b.mp4", "a_b.mp4", "a b.webm", "a_b-2.mp4"), "/r", "x", 10)
    ids = {v.item.path: v.key_id for v in plan.shards[0].videos}
    assert len(set(ids.values())) == 4
    assert ids["a b.mp4"] == "a_b" and ids["a_b-2.mp4"] == "a_b-2"
    assert {r["source"] for r in plan.renamed} == {"a b.webm", "a_b.mp4"}


def test_same_source_listed_twice_is_ingested_once():
    items = inputs("x.webm") + [VideoInput("x", "x.webm", meta={"split": "validation"})]
    plan = make_plan(items, "/r", "s", 10)
    assert plan.n_videos == 1 and plan.duplicates == ["x.webm"]
