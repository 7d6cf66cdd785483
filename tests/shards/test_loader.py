from collections import Counter
from itertools import islice

import numpy as np
import pytest
import torch

from cwm.errors import UserError
from cwm.shards.format import decode_frames
from cwm.shards.loader import SLOTS_PER_WORKER, make_clip_loader
from tests.shards.conftest import write_shards


def take(loader, n):
    return list(islice(iter(loader), n))


def test_batch_contract_and_windows_come_from_the_segment(shard_dir):
    loader = make_clip_loader(str(shard_dir), batch_size=4, seq_len=10, num_workers=0, seed=3)
    for batch in take(loader, 5):
        assert batch["frames"].dtype == torch.uint8 and batch["frames"].shape == (4, 10, 64, 64, 3)
        assert batch["context"].dtype == torch.uint8 and batch["context"].shape == (4, 64, 64, 3)
        assert batch["context_index"].dtype == torch.long and batch["context_index"].shape == (4,)
        assert len(batch["key"]) == 4 and all(m["dataset"] == "syn" for m in batch["meta"])
        for b in range(4):
            t = batch["frames"][b, :, 0, 0, 0].numpy().astype(int)
            start = int(batch["start"][b])
            # the fixture writes frame index t into channel 0 (mp4 samples are lossy: +-3)
            assert np.abs(t - np.arange(start, start + 10)).max() <= 3
            ci = int(batch["context_index"][b])
            assert 0 <= ci < 10
            assert torch.equal(batch["context"][b], batch["frames"][b, ci])


def test_reads_both_npy_and_mp4_samples(shard_dir):
    # every 8th fixture sample is mp4: in an evaluation pass of 24 samples, 3 are
    loader = make_clip_loader(str(shard_dir), batch_size=5, seq_len=25, train=False, num_workers=0)
    batches = list(loader)
    assert sum(len(b["key"]) for b in batches) == 24
    assert [len(b["key"]) for b in batches] == [5, 5, 5, 5, 4]
    mp4_keys = {"d0v0_0000", "d1v2_0000", "d2v4_0000"}
    seen = {k for b in batches for k in b["key"]}
    assert mp4_keys <= seen


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_eval_every_sample_exactly_once_with_more_workers_than_shards(shard_dir):
    loader = make_clip_loader(str(shard_dir), batch_size=4, train=False, num_workers=5, seed=1)
    keys = [k for b in loader for k in b["key"]]
    assert len(keys) == 24 and len(set(keys)) == 24


def test_eval_windows_depend_on_seed_and_key_only(shard_dir):
    def windows(workers, seed):
        loader = make_clip_loader(str(shard_dir), batch_size=3, seq_len=25, train=False,
                                  num_workers=workers, seed=seed)
        return {k: (int(s), int(c)) for b in loader
                for k, s, c in zip(b["key"], b["start"], b["context_index"])}
    a = windows(0, seed=7)
    assert a == windows(2, seed=7)
    assert a != windows(0, seed=8)


def test_training_is_reproducible_per_seed_and_differs_across_seeds_and_epochs(shard_dir):
    def stream(seed, workers=2):
        loader = make_clip_loader(str(shard_dir), batch_size=4, num_workers=workers, seed=seed,
                                  clips_per_epoch=24, shuffle_buffer=8)
        epochs = [[(k, int(s)) for b in loader for k, s in zip(b["key"], b["start"])]
                  for _ in range(2)]
        return epochs
    first, again, other = stream(0), stream(0), stream(1)
    assert first == again
    assert first[0] != other[0]
    assert first[0] != first[1]


def test_clips_per_epoch_gives_exactly_that_many_batches(shard_dir):
    loader = make_clip_loader(str(shard_dir), batch_size=4, num_workers=2, clips_per_epoch=18)
    assert len(loader) == 5
    batches = list(loader)
    assert len(batches) == 5 and all(len(b["key"]) == 4 for b in batches)


def test_training_without_epoch_is_endless(shard_dir):
    loader = make_clip_loader(str(shard_dir), batch_size=8, num_workers=0, shuffle_buffer=4)
    # 24 samples exist; 10 batches of 8 means the stream resampled its shards
    assert len(take(loader, 10)) == 10


def test_mixture_weights_set_each_datasets_share(tmp_path):
    write_shards(tmp_path / "a", prefix="a", shards=2, dataset="a")
    write_shards(tmp_path / "b", prefix="b", shards=1, dataset="b")
    spec = f"big={tmp_path}/a:1.0,small={tmp_path}/b:3.0"
    loader = make_clip_loader(spec, batch_size=50, num_workers=0, shuffle_buffer=10)
    counts = Counter(m["dataset"] for b in take(loader, 8) for m in b["meta"])
    # despite having half the shards, "small" is drawn ~3x as often as "big"
    assert 0.65 < counts["b"] / 400 < 0.85
    only_a = make_clip_loader(f"a={tmp_path}/a:1,b={tmp_path}/b:0", batch_size=20,
                              num_workers=0)
    assert {m["dataset"] for m in take(only_a, 1)[0]["meta"]} == {"a"}


def test_short_segments_are_skipped_and_counted(tmp_path):
    write_shards(tmp_path, shards=1, per_shard=8, lengths=(10, 30))
    loader = make_clip_loader(str(tmp_path), batch_size=2, seq_len=20, train=False,
                              num_workers=0)
    keys = [k for b in loader for k in b["key"]]
    assert loader.stats.short_samples > 0
    assert len(keys) + loader.stats.short_samples == 8


def test_stream_with_no_usable_segment_fails_instead_of_hanging(tmp_path):
    write_shards(tmp_path, shards=1, per_shard=2, lengths=(5, 6))
    loader = make_clip_loader(str(tmp_path), batch_size=2, seq_len=25, num_workers=1)
    with pytest.raises(UserError, match="no usable clip"):
        next(iter(loader))


def test_bad_arguments_are_user_errors(shard_dir):
    with pytest.raises(UserError, match="matches no files"):
        make_clip_loader(f"{shard_dir}/zzz*.tar", batch_size=2)
    with pytest.raises(UserError):
        make_clip_loader(str(shard_dir), batch_size=0)


def test_loader_frames_match_the_format_decoder(shard_dir):
    import webdataset as wds
    path = f"{shard_dir}/d-000001.tar"
    reference = {s["__key__"]: decode_frames(s) for s in wds.WebDataset(path, shardshuffle=False)}
    loader = make_clip_loader(path, batch_size=6, seq_len=25, train=False, num_workers=0)
    (batch,) = list(loader)
    for b, key in enumerate(batch["key"]):
        start = int(batch["start"][b])
        assert np.array_equal(batch["frames"][b].numpy(), reference[key][start:start + 25])


def test_batches_kept_by_the_caller_are_never_overwritten_by_workers(shard_dir):
    """Workers reuse a ring of shared-memory slots; the caller's batches must stay intact."""
    loader = make_clip_loader(str(shard_dir), batch_size=2, seq_len=4, num_workers=2, seed=1)
    kept, snapshots = [], []
    for batch in islice(iter(loader), 60):  # far more batches than the ring has slots
        kept.append(batch)
        snapshots.append(batch["frames"].clone())  # its content on arrival
    assert all(torch.equal(b["frames"], s) for b, s in zip(kept, snapshots))
    # the batches differ, so a slot rewritten under a kept batch would have shown
    assert len({s.sum().item() for s in snapshots}) > 10


def test_views_kept_after_the_batch_is_dropped_stay_intact(shard_dir):
    """A slot is reused only when no tensor, view or numpy array of its batch is alive."""
    loader = make_clip_loader(str(shard_dir), batch_size=2, seq_len=4, num_workers=2, seed=2)
    kept, snapshots = [], []
    for i, batch in enumerate(islice(iter(loader), 60)):
        if i % 3 == 0:
            kept.append(batch["frames"][1, 2:])          # a view; the dict is dropped
            snapshots.append(kept[-1].clone())
        elif i % 3 == 1:
            kept.append(batch["context"].numpy())      # a numpy array on the slot
            snapshots.append(torch.from_numpy(kept[-1].copy()))
    assert all(torch.equal(torch.as_tensor(k), s) for k, s in zip(kept, snapshots))


def test_workers_reuse_their_slots_when_the_caller_lets_batches_go(shard_dir):
    loader = make_clip_loader(str(shard_dir), batch_size=2, seq_len=4, num_workers=2, seed=3)
    buffers = set()
    for batch in islice(iter(loader), 80):
        buffers.add(batch["frames"].untyped_storage().data_ptr())
    # Reused slots: the same few buffers over and over, never a fresh segment per batch.
    assert 2 <= len(buffers) <= 2 * SLOTS_PER_WORKER
