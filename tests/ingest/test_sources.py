"""Dataset adapters on their on-disk layouts (SPEC §2), and where `--src` is looked for."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from cwm.errors import UserError
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.decode import decode_file
from cwm.ingest.run import ingest
from cwm.ingest.sources import folder, human36m, ssv2, synthetic, ytb_driving
from cwm.ingest.sources.base import resolve_src
from tests.ingest.conftest import encode, moving


def test_ssv2_layout_labels_and_splits(tmp_path):
    videos = tmp_path / "20bn-something-something-v2"
    videos.mkdir()
    for vid in ("1", "2", "3"):
        encode(videos / f"{vid}.webm", moving(6), codec="libvpx", fmt="webm")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "labels.json").write_text(json.dumps({"Putting something on a surface": "7"}))
    (labels / "train.json").write_text(json.dumps([
        {"id": "1", "label": "putting a cup on a table",
         "template": "Putting [something] on a surface", "placeholders": ["a cup"]},
        {"id": "4", "label": "x", "template": "Putting [something] on a surface"}]))
    (labels / "test.json").write_text(json.dumps([{"id": "3"}]))

    everything = ssv2.list_videos(tmp_path, split="all")
    assert [v.video_id for v in everything] == ["1", "2", "3"]
    first = everything[0]
    assert first.path == "20bn-something-something-v2/1.webm"
    assert first.meta["class_id"] == 7 and first.meta["template"] == "Putting something on a surface"
    assert everything[2].meta == {"split": "test"}

    train = ssv2.list_videos(tmp_path, split="train")
    assert [v.video_id for v in train] == ["1", "4"]      # 4 is listed but missing: it will fail
    assert ssv2.list_videos(tmp_path) == train            # upstream's default split
    with pytest.raises(UserError, match="validation.json"):
        ssv2.list_videos(tmp_path, split="validation")


def test_ssv2_cli_defaults_are_upstreams():
    from cwm.cli.ingest import cli
    defaults = {name: {p.name: p.default for p in cmd.params} for name, cmd in cli.commands.items()
                if name in ("ssv2", "human36m", "folder")}
    assert defaults["ssv2"]["split"] == "train" and defaults["ssv2"]["aspect"] == "squash"
    assert defaults["folder"]["aspect"] == defaults["human36m"]["aspect"] == "center-crop"


def test_human36m_names_with_spaces_and_dots(tmp_path, media):
    for subject, name in (("S1", "Directions 1.54138969.mp4"), ("S1", "Walking.60457274.mp4"),
                          ("S11", "Sitting Down 2.58860488.mp4"), ("S1", "_ALL.54138969.mp4")):
        (tmp_path / subject / "Videos").mkdir(parents=True, exist_ok=True)
        shutil.copy(media["short"], tmp_path / subject / "Videos" / name)
    found = human36m.list_videos(tmp_path)
    assert [v.video_id for v in found] == ["S1/Directions 1.54138969", "S1/Walking.60457274",
                                           "S11/Sitting Down 2.58860488"]
    assert found[0].meta == {"subject": "S1", "action": "Directions", "take": 1,
                             "camera": "54138969"}


def _jpeg_folder(folder_path, numbers):
    folder_path.mkdir(parents=True)
    frames = moving(len(numbers), 72, 96)
    for img, n in zip(frames, numbers):
        Image.fromarray(img).save(folder_path / f"{n}.jpg", quality=90)


def test_ytb_driving_runs_split_at_gaps_and_ingested(tmp_path):
    root = tmp_path / "ytb"
    _jpeg_folder(root / "dir-0", list(range(0, 40)) + list(range(500, 530)))
    runs = ytb_driving.list_videos(root)
    assert [(v.video_id, len(v.frames)) for v in runs] == [("dir-0/000000", 40),
                                                           ("dir-0/000500", 30)]
    cfg = IngestConfig(dataset="ytb-driving", src=str(root), out=str(tmp_path / "out"),
                       frames=FrameOptions(every=2, skip_start=4, min_frames=10,
                                           segment_frames=10),
                       scheduler="inline", progress=False)
    summary = ingest(cfg, log=lambda _: None)
    assert summary.ok and summary.totals["ok"] == 2
    # Kept frames (n - 4) / 2: 18 -> one segment of 18 (the tail of 8 < 10 joins it); 13 -> one.
    assert summary.totals["samples"] == 2
    # Still numbering is carried into the sample metadata.
    import webdataset as wds
    metas = [json.loads(s["meta.json"]) for s in
             wds.WebDataset(str(tmp_path / "out" / "ytb_driving-000000.tar"), shardshuffle=False)]
    assert metas[0]["first_frame_number"] == 4 and metas[-1]["first_frame_number"] == 504
    assert [m["num_frames"] for m in metas] == [18, 13]


def test_folder_walks_any_tree(tmp_path, media):
    (tmp_path / "a" / "b").mkdir(parents=True)
    shutil.copy(media["short"], tmp_path / "a" / "b" / "Clip one.MP4")
    shutil.copy(media["short"], tmp_path / "top.mkv")
    (tmp_path / "readme.txt").write_text("not a video")
    assert [v.video_id for v in folder.list_videos(tmp_path)] == ["a/b/Clip one", "top"]


def test_src_falls_back_to_cwm_data(tmp_path, monkeypatch):
    (tmp_path / "ssv2").mkdir()
    monkeypatch.setenv("CWM_DATA", str(tmp_path))
    assert resolve_src("ssv2", None) == (tmp_path / "ssv2").resolve()
    with pytest.raises(UserError, match=f"{tmp_path / 'human36m'}.*CWM_DATA"):
        resolve_src("human36m", None)
    monkeypatch.delenv("CWM_DATA")
    with pytest.raises(UserError, match="CWM_DATA is not set"):
        resolve_src("ssv2", None)
    with pytest.raises(UserError, match="does not exist"):
        resolve_src("ssv2", str(tmp_path / "nope"))


def test_empty_src_says_where_it_looked(tmp_path):
    cfg = IngestConfig(dataset="ssv2", src=str(tmp_path), out=str(tmp_path / "out"),
                       source_options={"split": "all"}, scheduler="inline", progress=False)
    with pytest.raises(UserError, match=f"no ssv2 inputs found under {tmp_path}.*webm"):
        ingest(cfg, log=lambda _: None)


def test_synthetic_videos_are_real_varied_files(tmp_path):
    frames, fps = synthetic.render(seed=3, index=2)
    again, _ = synthetic.render(seed=3, index=2)
    assert (frames == again).all() and fps in synthetic.RATES
    assert frames.shape[1:] == (128, 96, 3)                      # portrait
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 5  # things move
    synthetic.generate(tmp_path, videos=3, seed=3)
    items = synthetic.list_videos(tmp_path, videos=3, seed=3)
    assert [v.path for v in items] == ["synth-3-0000.mp4", "synth-3-0001.mp4", "synth-3-0002.webm"]
    video = decode_file(tmp_path / items[2].path, FrameOptions())
    assert video.codec == "vp8" and len(video.frames) == len(frames)
