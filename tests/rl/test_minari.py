"""Replay <-> Minari: a real local dataset, read back by minari itself and imported again."""

import numpy as np
import pytest

from cwm.errors import UserError
from cwm.rl.envs.registry import EnvConfig
from cwm.rl.minari_io import export_minari, load_minari
from cwm.rl.replay import Replay


@pytest.fixture(autouse=True)
def local_minari(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))


def fill(directory, episodes=2, length=6, partial=3):
    """`episodes` complete episodes, then `partial` steps of an unfinished one (left pending)."""
    rng = np.random.default_rng(0)
    steps = []
    with Replay(directory, capacity=1000, chunk_len=4) as r:
        for e in range(episodes):
            for t in range(length):
                step = {
                    "image": rng.integers(0, 256, (8, 8, 3), np.uint8),
                    "action": rng.uniform(-1, 1, 2).astype(np.float32) if t else np.zeros(2, np.float32),
                    "reward": float(t and rng.uniform()),
                    "is_first": t == 0,
                    "is_last": t == length - 1,
                    "is_terminal": e == 1 and t == length - 1,
                    "success": t == 4,
                }
                r.add(step)
                steps.append(step)
        for t in range(partial):
            r.add({**steps[t], "is_first": t == 0})
        r._pending.clear()  # the unfinished episode never reaches disk, as after a crash
    return steps


def test_export_is_a_minari_dataset_and_round_trips(tmp_path):
    import minari

    steps = fill(tmp_path / "replay")
    info = export_minari(tmp_path / "replay", "cwm/test-v0")
    assert info == {"episodes": 2, "steps": 12}
    ds = minari.load_dataset("cwm/test-v0")
    assert ds.total_episodes == 2 and ds.total_steps == 10
    ep = list(ds.iterate_episodes())[1]
    assert ep.observations["image"].shape == (6, 8, 8, 3) and ep.actions.shape == (5, 2)
    assert ep.terminations[-1] and not ep.truncations[-1]
    assert ep.infos["success"][3]

    with Replay(tmp_path / "back", capacity=1000, chunk_len=4) as r:
        assert load_minari("cwm/test-v0", r) == {"episodes": 2, "steps": 12}
        r.flush()
        got = list(r.episodes())
    for key in steps[0]:
        want = np.stack([np.asarray(s[key]) for s in steps])
        have = np.concatenate([e[key] for e in got])
        assert np.array_equal(have, want.astype(have.dtype)), key


def test_export_with_env_config_recovers_the_environment(tmp_path, monkeypatch):
    import minari

    fill(tmp_path / "replay", episodes=1)
    cfg = EnvConfig("dmc", "cartpole-balance", render="fast", size=8)
    export_minari(tmp_path / "replay", "cwm/env-v0", env=cfg, datasets_path=tmp_path / "elsewhere")
    assert not minari.list_local_datasets()  # written to datasets_path, not the default
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "elsewhere"))
    ds = minari.load_dataset("cwm/env-v0")
    env = ds.recover_environment()
    obs, _ = env.reset()
    assert obs["image"].shape == (8, 8, 3)
    env.close()


def test_clear_errors(tmp_path):
    with pytest.raises(UserError, match="no replay directory"):
        export_minari(tmp_path / "missing", "cwm/x-v0")
    fill(tmp_path / "replay", episodes=1)
    export_minari(tmp_path / "replay", "cwm/x-v0")
    with pytest.raises(UserError, match="cwm/x-v0"):
        export_minari(tmp_path / "replay", "cwm/x-v0")
    with Replay(tmp_path / "r2", capacity=10) as r:
        with pytest.raises(UserError, match="cwm/nope-v0"):
            load_minari("cwm/nope-v0", r)
