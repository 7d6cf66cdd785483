"""Human3.6M person crops from pose annotations in upstream's layout (generated here): the crop
follows a moving person; videos with missing or malformed annotations fail alone."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import webdataset as wds

from cwm.errors import UserError
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.geometry import person_square
from cwm.ingest.run import ingest
from cwm.ingest.sources import human36m
from cwm.shards.format import decode_frames
from tests.ingest.conftest import encode

W, H, N = 640, 360, 50          # source frames; the person walks left to right
PERSON_W, PERSON_H = 30, 60


def person_x(t: int) -> int:
    return 150 + t * 6           # centre x: 150 .. 444


def walking_video(n: int = N) -> np.ndarray:
    frames = np.zeros((n, H, W, 3), np.uint8)
    frames[..., 2] = np.linspace(0, 200, W, dtype=np.uint8)[None, None, :]   # blue gradient
    for t in range(n):
        x, y = person_x(t) - PERSON_W // 2, 180 - PERSON_H // 2
        frames[t, y : y + PERSON_H, x : x + PERSON_W] = 255
    return frames


def joints(t: int) -> np.ndarray:
    """16 2D joints on the person's outline at source frame t (0-based)."""
    x0, y0 = person_x(t) - PERSON_W / 2, 180 - PERSON_H / 2
    u = np.linspace(0, 1, 8)
    left = np.stack([np.full(8, x0), y0 + u * PERSON_H], 1)
    right = np.stack([np.full(8, x0 + PERSON_W), y0 + u * PERSON_H], 1)
    return np.concatenate([left, right])


def write_annotations(folder, entries: dict[str, list[tuple[int, np.ndarray]]], split="train"):
    """Upstream's layout: <split>.h5 ('part' [N, 16, 2]) + <split>_images.txt, same order."""
    folder.mkdir(parents=True, exist_ok=True)
    names, parts = [], []
    for title, frames in entries.items():
        for frame, part in frames:
            names.append(f"{title}_{frame:06d}.jpg")
            parts.append(part)
    with h5py.File(folder / f"{split}.h5", "w") as f:
        f["part"] = np.asarray(parts, np.float32)
    (folder / f"{split}_images.txt").write_text("\n".join(names) + "\n")


@pytest.fixture(scope="module")
def h36m_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("h36m")
    videos = root / "S1" / "Videos"
    videos.mkdir(parents=True)
    frames = walking_video()
    for name in ("Walking 1.54138969.mp4", "Walking 2.54138969.mp4", "Walking.55011271.mp4"):
        encode(videos / name, frames, fps=50)
    # every 5th frame annotated (1-based numbers 1, 6, 11, ...), as in the pose release
    good = [(t + 1, joints(t)) for t in range(0, N, 5)]
    broken = [(t + 1, joints(t)) for t in range(0, N, 5)]
    broken[3] = (broken[3][0], np.full((16, 2), np.nan))
    # Walking 2 has no annotation at all
    write_annotations(root / "annot", {"S1_Walking_1.54138969": good,
                                       "S1_Walking.55011271": broken})
    return root


def _ingest(root, out, person_crop="auto"):
    cfg = IngestConfig(dataset="human36m", src=str(root), out=str(out),
                       frames=FrameOptions(every=5, min_frames=5, segment_frames=10),
                       source_options={"person_crop": person_crop},
                       scheduler="inline", progress=False)
    return ingest(cfg, log=lambda _: None)


def _person_centres(frames: np.ndarray) -> np.ndarray:
    """x of the white person's centroid in each [64, 64, 3] frame."""
    white = frames.min(axis=-1) > 200
    xs = np.arange(frames.shape[2])[None, None, :]
    return (white * xs).sum(axis=(1, 2)) / np.maximum(white.sum(axis=(1, 2)), 1)


def _samples(out):
    samples = {}
    for tar in sorted(out.glob("*.tar")):
        for s in wds.WebDataset(str(tar), shardshuffle=False):
            samples[s["__key__"]] = s
    return samples


def test_person_square_is_upstreams_rule():
    # box 50 x 200: side 200 + 200 = 400, centred on (125, 300), shifted right to fit
    assert person_square((100, 200, 150, 400), 1000, 1000) == (0, 100, 400, 500)
    # at most 1000 px (and the frame)
    assert person_square((0, 0, 900, 950), 1000, 1000) == (0, 0, 1000, 1000)
    assert person_square((400, 400, 420, 440), 1000, 1002) == (290, 300, 530, 540)  # 40 + 200
    assert person_square((10, 10, 20, 20), 300, 200) == (0, 0, 200, 200)


def test_unannotated_frames_use_the_nearest_annotation():
    from cwm.ingest.decode import _nearest_crop
    crops = ((0, 1, 1, 2, 2), (5, 5, 5, 6, 6), (10, 9, 9, 10, 10))
    got = [_nearest_crop(crops, i)[0] for i in (0, 2, 3, 7, 8, 12, 99)]
    assert got == [1, 1, 5, 5, 9, 9, 9]


def test_crop_follows_the_moving_person_and_bad_annotations_fail_alone(h36m_root, tmp_path):
    listed = {v.video_id: v for v in human36m.list_videos(h36m_root)}
    assert len(listed["S1/Walking 1.54138969"].crops) == N // 5
    assert "no pose annotation for S1_Walking_2.54138969" in listed["S1/Walking 2.54138969"].invalid
    assert "malformed pose annotation for S1_Walking.55011271 frame 16" in \
        listed["S1/Walking.55011271"].invalid

    out = tmp_path / "out"
    summary = _ingest(h36m_root, out)
    assert summary.ok and summary.totals["ok"] == 1 and summary.totals["failed"] == 2
    errors = {e["video_id"]: e for f in out.glob("*.errors.jsonl")
              for e in map(json.loads, f.read_text().splitlines())}
    assert "no pose annotation" in errors["S1_Walking_2_54138969"]["error"]
    assert "malformed pose annotation" in errors["S1_Walking_55011271"]["error"]
    assert all(e["status"] == "failed" for e in errors.values())

    samples = _samples(out)
    frames = np.concatenate([decode_frames(samples[k]) for k in sorted(samples)])
    assert frames.shape == (N // 5, 64, 64, 3)
    assert json.loads(samples[sorted(samples)[0]]["meta.json"])["person_crop"] is True
    centres = _person_centres(frames)
    # the person stays in the middle of every cropped frame...
    assert np.abs(centres - 31.5).max() < 2.5, centres
    # ...and fills 30/260 of its width (the crop is 60 + 200 = 260 px square)
    width = (frames[0].min(axis=-1) > 200).any(axis=0).sum()
    assert abs(width - 64 * 30 / 260) <= 2

    # without crops the same person walks across the frame
    plain = _samples(_run_off(h36m_root, tmp_path / "plain"))
    whole = np.concatenate([decode_frames(plain[k]) for k in sorted(plain)
                            if k.startswith("S1_Walking_1")])
    assert np.ptp(_person_centres(whole)) > 20


def _run_off(root, out):
    summary = _ingest(root, out, person_crop="off")
    assert summary.ok and summary.totals["ok"] == 3
    return out


def test_person_crop_on_needs_readable_annotations(tmp_path, h36m_root):
    bare = tmp_path / "bare"
    (bare / "S1" / "Videos").mkdir(parents=True)
    with pytest.raises(UserError, match="--person-crop on needs the pose annotations"):
        human36m.list_videos(bare, person_crop="on")
    assert all(not v.crops and not v.invalid for v in human36m.list_videos(bare))
    with pytest.raises(UserError, match="--person-crop must be one of"):
        human36m.list_videos(bare, person_crop="yes")
    bad = tmp_path / "bad"
    (bad / "S1" / "Videos").mkdir(parents=True)
    with h5py.File(bad / "train.h5", "w") as f:
        f["center"] = np.zeros((1, 2))
    (bad / "train_images.txt").write_text("S1_Walking.54138969_000001.jpg\n")
    with pytest.raises(UserError, match="no 'part' dataset"):
        human36m.list_videos(bad)
