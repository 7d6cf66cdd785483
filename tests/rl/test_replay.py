"""HDF5 replay: chunk files, sequence sampling across chunks, eviction, resume, one owner."""

from pathlib import Path

import h5py
import numpy as np
import pytest

from cwm.errors import UserError
from cwm.rl.replay import Replay


def make_step(counter: int, first: bool, last: bool, worker: int = 0, size: int = 8) -> dict:
    """A step whose `reward` is its global counter, so order and duplicates are visible."""
    return {
        "image": np.full((size, size, 3), counter % 256, np.uint8),
        "action": np.full(2, counter, np.float32),
        "reward": float(counter),
        "is_first": first,
        "is_last": last,
        "is_terminal": False,
        "success": False,
        "worker": worker,
    }


def add_episodes(replay, episodes: int, length: int, start: int = 0, worker: int = 0) -> int:
    c = start
    for _ in range(episodes):
        for t in range(length):
            replay.add(make_step(c, t == 0, t == length - 1, worker), worker=worker)
            c += 1
    return c


def test_chunks_are_complete_hdf5_files(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        add_episodes(r, 2, 10)
        assert len(r) == 20
        # Each 10-step episode: chunks of 4, 4 and the 2 that end it.
        files = sorted(tmp_path.glob("*.h5"))
        assert len(files) == 6
        for f in files:
            with h5py.File(f, "r") as h:
                assert h["image"].dtype == np.uint8 and h["action"].dtype == np.float32
                assert set(h) >= {"image", "action", "reward", "is_first", "is_last", "is_terminal", "success"}
        assert not list(tmp_path.glob("*.tmp"))


def test_sequences_are_consecutive_across_chunks_and_episodes(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=3, seed=1) as r:
        add_episodes(r, 3, 7)
        batch = r.sample(64, 9)
        assert batch["image"].shape == (64, 9, 8, 8, 3) and batch["action"].shape == (64, 9, 2)
        rewards = batch["reward"]
        assert np.all(np.diff(rewards, axis=1) == 1)
        # is_first where an episode starts (counter multiple of 7) and at every sequence's start.
        assert np.array_equal(batch["is_first"][:, 1:], rewards[:, 1:] % 7 == 0)
        # Windows crossing episode boundaries are drawn too.
        assert batch["is_first"][:, 1:].any()


def test_every_sampled_sequence_starts_with_is_first(tmp_path):
    # Upstream's replay marks the first step of each sampled sequence, mid-episode or not.
    with Replay(tmp_path, capacity=1000, chunk_len=5, seed=3) as r:
        add_episodes(r, 2, 40)
        batch = r.sample(64, 6)
        assert batch["is_first"][:, 0].all()
        starts_mid_episode = batch["reward"][:, 0] % 40 != 0
        assert starts_mid_episode.any()
        # The stored data keeps its own flags: only episode starts are marked on disk.
        stored = np.concatenate([c.data["is_first"] for c in r.chunks()])
        assert stored.sum() == 2


def test_workers_streams_never_mix(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        for t in range(24):
            for w in (0, 1):
                r.add(make_step(1000 * w + t, t % 12 == 0, t % 12 == 11, w), worker=w)
        batch = r.sample(200, 6)
        assert np.all(batch["worker"] == batch["worker"][:, :1])
        assert np.all(np.diff(batch["reward"], axis=1) == 1)
        assert set(np.unique(batch["worker"])) == {0, 1}


def test_reopen_loads_every_step_once_and_continues(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        end = add_episodes(r, 2, 6)
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        assert len(r) == 12 and r.stats()["loaded_steps"] == 12
        add_episodes(r, 1, 6, start=end)
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        seen = np.concatenate([c.data["reward"] for c in r.chunks()])
        assert sorted(seen) == list(range(18))


def test_capacity_evicts_oldest_chunks_from_memory_and_disk(tmp_path):
    with Replay(tmp_path, capacity=12, chunk_len=4) as r:
        add_episodes(r, 1, 30)
        assert len(r) <= 12 and r.stats()["evicted_steps"] == 30 - len(r)
        kept = np.concatenate([c.data["reward"] for c in r.chunks()])
        assert kept.min() == 30 - len(r) and kept.max() == 29
        assert sum(1 for _ in tmp_path.glob("*.h5")) == len(r.chunks())
        batch = r.sample(16, 5)
        assert np.all(np.diff(batch["reward"], axis=1) == 1)


def test_prioritize_ends_samples_episode_ends_more(tmp_path):
    def last_rate(prioritize: bool, directory: Path) -> float:
        with Replay(directory, capacity=1000, chunk_len=16, seed=0, prioritize_ends=prioritize) as r:
            add_episodes(r, 1, 50)
            return float(r.sample(4000, 5)["is_last"].any(axis=1).mean())

    uniform, ends = last_rate(False, tmp_path / "u"), last_rate(True, tmp_path / "p")
    # Uniform: only the one start of 46 that ends at step 49; prioritised: 6 of 50 starts.
    assert abs(uniform - 1 / 46) < 0.015
    assert abs(ends - 6 / 50) < 0.03


def test_sampling_state_resumes_exactly(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4, seed=3) as r:
        add_episodes(r, 2, 8)
        state = r.state_dict()
        expected = r.sample(4, 3)["reward"]
    with Replay(tmp_path, capacity=1000, chunk_len=4, seed=99) as r:
        r.load_state_dict(state)
        assert np.array_equal(r.sample(4, 3)["reward"], expected)


def test_too_short_for_a_sequence_and_inconsistent_keys(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        add_episodes(r, 1, 3)
        with pytest.raises(ValueError, match="no sequence"):
            r.sample(2, 5)
        step = make_step(9, True, False)
        del step["success"]
        with pytest.raises(ValueError, match="keys"):
            r.add(step)


def test_one_process_owns_a_directory(tmp_path):
    with Replay(tmp_path, capacity=10):
        with pytest.raises(UserError, match="in use"):
            Replay(tmp_path, capacity=10)
    Replay(tmp_path, capacity=10).close()


def test_unreadable_file_is_skipped_with_a_warning(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        add_episodes(r, 1, 8)
    (tmp_path / "0000000099.h5").write_bytes(b"not hdf5")
    with pytest.warns(UserWarning, match="0000000099.h5"):
        r = Replay(tmp_path, capacity=1000, chunk_len=4)
    assert len(r) == 8 and r.stats()["skipped_files"] == 1
    r.close()


def test_discard_after_drops_chunks_newer_than_a_checkpoint(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=4) as r:
        add_episodes(r, 2, 8)  # 4 chunks: seq 0..3
        assert len(list(tmp_path.glob("*.h5"))) == 4
    with Replay(tmp_path, capacity=1000, chunk_len=4, discard_after=1) as r:
        assert len(r) == 8 and r.stats()["discarded_files"] == 2
        assert sorted(p.name for p in tmp_path.glob("*.h5")) == ["0000000000.h5", "0000000001.h5"]
        add_episodes(r, 1, 4, start=8)  # continues with the next free seq
        assert sorted(p.stem for p in tmp_path.glob("*.h5"))[-1] == "0000000002"
