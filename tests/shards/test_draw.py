"""Indexed training draws: i.i.d.-varied batches whatever the shard layout, windows over whole
videos (crossing segment boundaries), video vs segment weighting, streaming still available."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from cwm.errors import UserError
from cwm.model.config import TrainConfig
from cwm.shards.catalog import Catalog
from cwm.shards.format import make_sample
from cwm.shards.loader import make_clip_loader
from cwm.shards.tarstream import ReadStats


def video_frames(video: int, first: int, length: int) -> np.ndarray:
    """Frames first..first+length-1 of `video`: channel 0 = frame index (mod 256), 1 = video."""
    frames = np.zeros((length, 64, 64, 3), np.uint8)
    frames[..., 0] = (np.arange(first, first + length) % 256).astype(np.uint8)[:, None, None]
    frames[..., 1] = video
    return frames


def write_videos(directory: Path, lengths: dict[int, list[int]], per_shard: int,
                 storage: str = "npy", mixed: bool = False) -> str:
    """Videos cut into segments of the given lengths, `per_shard` segments per tar: in sorted
    order (a shard holds neighbouring segments of one or two videos) or, `mixed`, in a random
    order (a video's segments scattered over the shards, as mixed-source ingest writes them)."""
    directory.mkdir(parents=True, exist_ok=True)
    samples = []
    for video, seg_lengths in sorted(lengths.items()):
        first = 0
        for number, n in enumerate(seg_lengths):
            meta = {"dataset": "syn", "video_id": f"v{video:03d}", "segment": number,
                    "num_frames": n, "first_frame": first * 5, "last_frame": (first + n - 1) * 5}
            samples.append(make_sample(f"v{video:03d}_{number:04d}",
                                       video_frames(video, first, n), meta, storage))
            first += n
    if mixed:
        order = np.random.default_rng(0).permutation(len(samples))
        samples = [samples[i] for i in order]
    for s in range(0, len(samples), per_shard):
        with wds.TarWriter(str(directory / f"t-{s // per_shard:06d}.tar")) as w:
            for sample in samples[s : s + per_shard]:
                w.write(sample)
    return str(directory / "*.tar")


@pytest.mark.parametrize("mixed", [False, True], ids=["sorted", "mixed"])
def test_batches_are_as_varied_as_iid_draws_whatever_the_layout(tmp_path, mixed):
    # 20 sources x 100 segments, 100 segments per shard: sorted, each shard is one source
    spec = write_videos(tmp_path, {v: [2] * 100 for v in range(20)}, per_shard=100, mixed=mixed)
    t = TrainConfig()   # the trainer's loader settings: 16 clips, 2 workers, buffer 500
    assert (t.batch_size, t.num_workers, t.shuffle_buffer) == (16, 2, 500)
    expected = 20 * (1 - (19 / 20) ** 16)
    for sample_by in ("video", "segment"):
        loader = make_clip_loader(spec, batch_size=t.batch_size, seq_len=2,
                                  num_workers=t.num_workers, seed=0,
                                  shuffle_buffer=t.shuffle_buffer, clips_per_epoch=16 * 60,
                                  sample_by=sample_by)
        distinct = []
        for batch in loader:
            distinct.append(len(set(batch["frames"][:, 0, 0, 0, 1].tolist())))
            # windows of 2 cross a segment boundary half the time: still consecutive frames
            index = batch["frames"][:, :, 0, 0, 0].int()
            assert ((index[:, 1] - index[:, 0]) % 256 == 1).all()
        assert len(distinct) == 60
        assert np.mean(distinct) >= 0.9 * expected, (sample_by, np.mean(distinct))
    if mixed:
        return
    # streaming by segment (the old sampling) on the same shards is what the index fixes
    loader = make_clip_loader(spec, batch_size=16, seq_len=2, num_workers=2, seed=0,
                              shuffle_buffer=500, clips_per_epoch=16 * 60, access="stream",
                              sample_by="segment")
    streamed = np.mean([len(set(b["frames"][:, 0, 0, 0, 1].tolist())) for b in loader])
    assert streamed < 0.9 * expected


@pytest.mark.parametrize("access", ["auto", "stream"])
def test_every_window_of_a_video_is_drawn_uniformly_across_segment_boundaries(tmp_path, access):
    # one video of 50 + 50 + 12 frames: 88 windows of 25, 62 of them cross a boundary
    # (indexed: the video spans two shards; streaming joins within a shard)
    spec = write_videos(tmp_path, {7: [50, 50, 12]}, per_shard=2 if access == "auto" else 3)
    loader = make_clip_loader(spec, batch_size=50, seq_len=25, num_workers=0, seed=3,
                              clips_per_epoch=50 * 176, access=access, sample_by="segment")
    starts = Counter()
    for batch in loader:
        frames = batch["frames"][..., 0, 0, 0].numpy()          # [B, 25] frame indices
        assert (np.diff(frames.astype(int), axis=1) == 1).all()  # consecutive frames of the video
        assert (batch["frames"][:, :, 0, 0, 1] == 7).all()
        for b, key in enumerate(batch["key"]):
            number = int(key.rsplit("_", 1)[1])
            # `start` is within segment `key`, and the window's first frame is that frame
            assert frames[b, 0] == number * 50 + int(batch["start"][b])
            ctx = int(batch["context_index"][b])
            assert (batch["context"][b] == batch["frames"][b, ctx]).all()
        starts.update(frames[:, 0].tolist())
    assert set(starts) == set(range(112 - 25 + 1))               # every window, none outside
    counts = np.array([starts[s] for s in range(88)])
    chi2 = ((counts - counts.mean()) ** 2 / counts.mean()).sum()
    assert chi2 < 150, chi2                                      # df 87: p ~ 1e-4 at 150


def test_sample_by_video_weighs_videos_equally_segment_by_length(tmp_path):
    # video 1: 25 frames (1 window); video 2: 5 x 25 frames (101 windows)
    spec = write_videos(tmp_path, {1: [25], 2: [25] * 5}, per_shard=3)
    shares = {}
    for sample_by in ("video", "segment"):
        loader = make_clip_loader(spec, batch_size=100, seq_len=25, num_workers=0, seed=1,
                                  clips_per_epoch=3000, sample_by=sample_by)
        videos = np.concatenate([b["frames"][:, 0, 0, 0, 1].numpy() for b in loader])
        shares[sample_by] = float((videos == 1).mean())
    assert abs(shares["video"] - 0.5) < 0.04
    assert abs(shares["segment"] - 1 / 102) < 0.01


def test_catalog_joins_segments_across_shards_and_splits_at_gaps(tmp_path):
    spec = write_videos(tmp_path, {1: [30, 30, 30], 2: [10, 10], 3: [40]}, per_shard=2)
    shards = sorted(str(p) for p in tmp_path.glob("*.tar"))
    stats = ReadStats()
    cat = Catalog.build(shards, seq_len=25, stats=stats)
    assert sorted(v.length for v in cat.videos) == [40, 90]      # video 2 (20 frames) too short
    assert stats.short_samples == 2
    assert cat.windows == (90 - 24) + (40 - 24)
    # drop the middle segment of video 1: its two ends are no longer one video
    with wds.TarWriter(str(tmp_path / "t-000000.tar")) as w:
        meta = {"dataset": "syn", "video_id": "v001", "segment": 0, "first_frame": 0}
        w.write(make_sample("v001_0000", video_frames(1, 0, 30), meta))
    cat = Catalog.build(shards, seq_len=25)
    assert sorted(v.length for v in cat.videos) == [30, 30, 40]


def test_mp4_segments_join_too(tmp_path):
    spec = write_videos(tmp_path, {4: [20, 20]}, per_shard=1, storage="mp4")
    loader = make_clip_loader(spec, batch_size=8, seq_len=25, num_workers=0, seed=0,
                              clips_per_epoch=16)
    for batch in loader:
        assert batch["frames"].shape == (8, 25, 64, 64, 3)
        assert (batch["frames"][:, :, 0, 0, 1].int() - 4).abs().max() <= 3   # lossy H.264


def test_same_seed_same_stream_and_workers_differ(tmp_path):
    spec = write_videos(tmp_path, {v: [30] * 4 for v in range(6)}, per_shard=5)

    def firsts(seed, workers):
        loader = make_clip_loader(spec, batch_size=4, seq_len=25, num_workers=workers,
                                  seed=seed, clips_per_epoch=16)
        return [tuple(b["frames"][:, 0, 0, 0, :2].flatten().tolist()) for b in loader]

    assert firsts(0, 2) == firsts(0, 2)
    assert firsts(0, 2) != firsts(1, 2)
    a = firsts(0, 2)
    assert a[0] != a[1]                      # batch 0 from worker 0, batch 1 from worker 1


def test_non_local_or_compressed_shards_stream(tmp_path):
    spec = write_videos(tmp_path / "plain", {1: [30], 2: [30]}, per_shard=1)
    gz = tmp_path / "gz"
    gz.mkdir()
    for p in sorted((tmp_path / "plain").glob("*.tar")):
        with open(p, "rb") as f, gzip.open(gz / (p.name + ".gz"), "wb") as g:
            shutil.copyfileobj(f, g)
    loader = make_clip_loader(str(gz / "*.tar.gz"), batch_size=2, seq_len=25, num_workers=0,
                              clips_per_epoch=4)
    assert not loader.dataset.indexed
    assert sum(b["frames"].shape[0] for b in loader) == 4
    assert make_clip_loader(spec, batch_size=2, num_workers=0).dataset.indexed
    with pytest.raises(UserError, match="access='index' needs local"):
        make_clip_loader("http://example.invalid/s-{000000..000001}.tar", batch_size=2,
                         access="index").dataset.indexed
    with pytest.raises(UserError, match="sample_by"):
        make_clip_loader(spec, batch_size=2, sample_by="frame")
    with pytest.raises(UserError, match="access"):
        make_clip_loader(spec, batch_size=2, access="random")


def test_damaged_sample_is_skipped_and_counted_in_the_catalog(tmp_path):
    write_videos(tmp_path, {1: [30]}, per_shard=1)
    with wds.TarWriter(str(tmp_path / "t-000001.tar")) as w:
        w.write({"__key__": "bad_0000", "frames.npy": b"\x93NUMPYjunk",
                 "meta.json": json.dumps({"video_id": "bad"}).encode()})
    stats = ReadStats()
    with pytest.warns(UserWarning, match="skipped sample 'bad_0000'"):
        cat = Catalog.build(sorted(str(p) for p in tmp_path.glob("*.tar")), 25, stats)
    assert stats.bad_samples == 1 and len(cat.videos) == 1
