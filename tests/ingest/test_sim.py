"""`cwm-ingest sim`: real MuJoCo episodes (a few steps each) rendered into ordinary shards.

The frames must be what `cwm-rl` observes: the pixel-identity tests replay each episode, take
the full physics state at every frame, set it in an env built the way `cwm-rl` builds its envs
and compare that env's observation image with the frame read back from the shard.
"""

from __future__ import annotations

import json
import os

import mujoco
import numpy as np
import pytest

from cwm.cli.common import run_cli
from cwm.cli.ingest import cli
from cwm.errors import UserError
from cwm.ingest.config import FrameOptions, IngestConfig
from cwm.ingest.run import ingest
from cwm.ingest.sources import ADAPTERS, sim
from cwm.ingest.sources.base import VideoInput
from cwm.shards.format import decode_frames, decode_meta
from cwm.shards.verify import verify

from tests.ingest.test_run import cli_error, read_all

# Probing a backend costs a subprocess per process (the workers inherit the choice).
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS


def config(out, scheduler="inline", workers=None, timeout=300.0, **source) -> IngestConfig:
    """A short fast-rendered Meta-world run; one segment per episode."""
    options = {"env": "metaworld", "tasks": ["reach"], "episodes": 1, "render": "fast",
               "max_steps": 6, **source}
    frames = FrameOptions(segment_frames=options["max_steps"] + 1, min_frames=3, timeout=timeout)
    return IngestConfig(dataset="sim", src="", out=str(out), frames=frames, shard_samples=2,
                        source_options=options, scheduler=scheduler, workers=workers,
                        progress=False)


def physics(env):
    """(MjModel, MjData) under a cwm PixelEnv of either family."""
    if hasattr(env, "physics"):
        return env.physics.model.ptr, env.physics.data.ptr
    return env._env.model, env._env.data


def get_state(env) -> np.ndarray:
    model, data = physics(env)
    state = np.empty(mujoco.mj_stateSize(model, STATE))
    mujoco.mj_getState(model, data, state, STATE)
    return state


def replay(episode: sim.Episode, size: int = 64) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The episode's frames and the full physics state at each, played as a worker plays it."""
    from cwm.ingest.simulate import close_env, episode_env, play

    env = episode_env(episode, size)
    frames, states = [], []
    for image, _, _ in play(env, episode):
        frames.append(image)
        states.append(get_state(env))
    close_env()
    return frames, states


@pytest.mark.parametrize("env_name, task, render, steps", [
    ("metaworld", "reach", "default", 3),         # cwm-rl's default render mode
    ("metaworld", "drawer-open", "fast", 8),
    ("dmc", "cartpole-balance", "fast", 6),       # action repeat 2, camera 0, no flip
])
def test_frames_are_what_cwm_rl_observes_in_the_same_state(tmp_path, env_name, task, render,
                                                           steps):
    from cwm.rl.envs.registry import EnvConfig

    out = tmp_path / "out"
    summary = ingest(config(out, env=env_name, tasks=[task], render=render, max_steps=steps,
                            random_share=None), log=lambda _: None)
    assert summary.ok and summary.totals["ok"] == 1
    (sample,) = read_all(out).values()
    shard_frames, meta = decode_frames(sample), decode_meta(sample)
    assert shard_frames.shape == (steps + 1, 64, 64, 3)
    assert len({f.tobytes() for f in shard_frames}) > 1          # something moves

    episode = sim.Episode(env=env_name, task=task, episode=0, seed=meta["seed"],
                          policy=meta["policy"], noise=meta["noise"], max_steps=steps,
                          render=render)
    frames, states = replay(episode)
    np.testing.assert_array_equal(np.stack(frames), shard_frames)

    # cwm-rl builds each env as EnvConfig(env, task, seed=..., render=...) (cwm.rl.loop). Its
    # reset observation for the episode's seed is frame 0: Meta-world's reset leaves positions
    # one physics sub-step behind its state (they come from the forward pass inside its last
    # internal mj_step) and writes goal sites after it, so that frame is not a function of the
    # physics state alone. Every later frame is set from the state alone.
    rl_env = EnvConfig(env_name, task, seed=episode.seed, render=render).make()
    obs, _ = rl_env.reset(seed=episode.seed)   # also the episode's model-side draws (goal, ...)
    np.testing.assert_array_equal(obs["image"], shard_frames[0])
    model, data = physics(rl_env)
    for t in range(1, len(states)):
        mujoco.mj_setState(model, data, states[t], STATE)
        mujoco.mj_forward(model, data)
        np.testing.assert_array_equal(rl_env._render(), shard_frames[t], err_msg=f"frame {t}")
    assert meta["action_repeat"] == rl_env.action_repeat == (1 if env_name == "metaworld" else 2)
    assert meta["source_fps"] == pytest.approx(rl_env.metadata["render_fps"], rel=1e-4)
    rl_env.close()


def test_meta_json_policies_and_readable_shards(tmp_path):
    out = tmp_path / "out"
    summary = ingest(config(out, tasks=["reach", "drawer-open-v3"], episodes=2,
                            random_share=0.5, noise=0.2, seed=7), log=lambda _: None)
    assert summary.ok and summary.totals["ok"] == 4
    samples = read_all(out)
    metas = {decode_meta(s)["video_id"]: decode_meta(s) for s in samples.values()}
    assert sorted(metas) == [f"metaworld-{t}-{i:05d}" for t in ("drawer-open", "reach")
                             for i in range(2)]
    for video_id, meta in metas.items():
        assert meta["dataset"] == "sim" and meta["env"] == "metaworld"
        assert meta["policy"] == ("random" if meta["episode"] == 1 else "scripted")
        assert meta["noise"] == (0.0 if meta["policy"] == "random" else 0.2)
        assert meta["seed"] == sim.episode_seed(7, "metaworld", meta["task"], meta["episode"])
        assert meta["render"] == "fast" and meta["camera"] == "corner2"
        assert meta["crop"] == "none" and meta["source_resolution"] == [64, 64]
        assert meta["source"] == f"metaworld/{meta['task']}/{meta['episode']:05d}"
        assert meta["num_frames"] == 7 and meta["steps"] == 6
        assert isinstance(meta["episode_success"], bool) and "episode_return" in meta
    assert len({m["seed"] for m in metas.values()}) == 4
    report = verify(str(out))
    assert report.ok and report.samples == 4 and report.frames == 4 * 7, report.problems


def test_shards_are_a_pure_function_of_the_plan_on_dask_and_resume(tmp_path, monkeypatch):
    """One inline task renders all 4 episodes with one env per task in turn; a dask worker
    process gets 4 tasks: the same bytes. A shard lost to a kill is redone identically."""
    a, b = tmp_path / "inline", tmp_path / "dask"
    opts = dict(tasks=["reach", "window-open"], episodes=2, random_share=0.5, max_steps=4)
    lines = []
    monkeypatch.setattr("cwm.ingest.plan.TASKS_PER_SLOT", 1)
    assert ingest(config(a, **opts), log=lines.append).ok
    assert "4 episodes to render -> 1 decode tasks" in lines[0]
    monkeypatch.undo()
    lines = []
    assert ingest(config(b, scheduler=None, workers=1, **opts), log=lines.append).ok
    assert "-> 4 decode tasks" in lines[0] and "on 1 worker(s)" in lines[0]
    content = {p.name: p.read_bytes() for p in sorted(a.glob("*.tar"))}
    assert len(content) == 2 and {p.name: p.read_bytes() for p in b.glob("*.tar")} == content

    (b / "sim-000001.stats.json").unlink()              # as if killed before it finished
    (b / "sim-000001.tar").unlink()
    summary = ingest(config(b, **opts), log=lambda _: None)
    assert summary.ok and summary.shards_resumed == 1
    assert {p.name: p.read_bytes() for p in b.glob("*.tar")} == content
    with pytest.raises(UserError, match="--overwrite"):
        ingest(config(b, **{**opts, "noise": 0.3}), log=lambda _: None)


def test_a_failing_episode_is_recorded_and_the_rest_ingested(tmp_path, monkeypatch):
    # An episode whose env cannot be built on the worker (as with another Meta-world there).
    broken = sim.Episode(env="metaworld", task="no-such-task", episode=0, seed=1,
                         policy="random", noise=0.0, max_steps=6, render="fast")
    extra = VideoInput(video_id="metaworld-no-such-task-00000",
                       path="metaworld/no-such-task/00000", episode=broken)
    monkeypatch.setitem(ADAPTERS, "sim", lambda root, **kw: sim.list_videos(root, **kw) + [extra])
    out = tmp_path / "out"
    summary = ingest(config(out), log=lambda _: None)
    assert summary.ok and (summary.totals["ok"], summary.totals["failed"]) == (1, 1)
    errors = [json.loads(line) for f in out.glob("*.errors.jsonl")
              for line in f.read_text().splitlines()]
    (entry,) = errors
    assert entry["source"] == "metaworld/no-such-task/00000" and entry["status"] == "failed"
    assert entry["error"].startswith("render failed after 0 frames: UserError: unknown metaworld")
    assert "\n" not in entry["error"]

    out = tmp_path / "slow"
    monkeypatch.setitem(ADAPTERS, "sim", sim.list_videos)
    summary = ingest(config(out, timeout=1e-6), log=lambda _: None)
    (entry,) = [json.loads(line) for f in out.glob("*.errors.jsonl")
                for line in f.read_text().splitlines()]
    assert summary.totals["failed"] == 1 and entry["error"].startswith("render timeout")


def test_bad_input_is_one_line_and_nothing_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    sim_args = ["sim", "--out", str(out), "--max-steps", "3"]
    err = cli_error(capsys, sim_args + ["--tasks", "reach,no-such-task"])
    assert err.startswith("error: unknown metaworld task 'no-such-task'; valid: assembly")
    assert len(err.splitlines()) == 1
    err = cli_error(capsys, sim_args + ["--exclude", "reach,dor-lock"])
    assert err.startswith("error: unknown metaworld task 'dor-lock'")
    err = cli_error(capsys, sim_args + ["--tasks", "reach", "--exclude", "reach-v3"])
    assert err == "error: no task left after --exclude"
    err = cli_error(capsys, sim_args + ["--episodes", "0"])
    assert err == "error: --episodes must be >= 1, got 0"
    err = cli_error(capsys, sim_args + ["--env", "dmc", "--tasks", "walker-walk",
                                        "--random-share", "0.5"])
    assert err.startswith("error: dmc task 'walker-walk' has no scripted policy (DMC ships none)")
    assert "--random-share 1" in err and len(err.splitlines()) == 1
    err = cli_error(capsys, sim_args + ["--random-share", "1.5"])
    assert err.startswith("error: --random-share must be in [0, 1]")
    err = cli_error(capsys, ["sim", "--tasks", "reach"])
    assert "Missing option '--out'" in err
    assert not out.exists()


def test_list_tasks_and_exclusions(capsys):
    scripted = sim.scripted_tasks("metaworld")
    assert len(scripted) == 50 and {"reach", "door-lock", "dial-turn"} <= set(scripted)
    targets = "reach,door-lock,drawer-open,button-press-topdown"
    left = sim.resolve_tasks("metaworld", "all", targets)
    assert len(left) == 46 and not set(left) & set(targets.split(","))
    run_cli(cli, ["sim", "--list-tasks", "--exclude", targets])
    assert capsys.readouterr().out.split() == left
    assert sim.resolve_tasks("dmc", "walker,cartpole-swingup", "walker-run") == [
        "cartpole-swingup", "walker-stand", "walker-walk"]
    # Random shares are exact and spread: 0.25 of 8 -> 2, at indices 3 and 7.
    assert [i for i in range(8) if sim.is_random(i, 0.25)] == [3, 7]
    assert [sim.is_random(i, 1.0) for i in range(3)] == [True] * 3
    assert not any(sim.is_random(i, 0.0) for i in range(3))
