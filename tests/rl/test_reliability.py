"""cwm-rl and cwm-train against careless input and interruptions: numbers that are not usable,
foreign replay chunks, hostile checkpoints, two trainers in one directory, Ctrl-C to the whole
process group."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import time
import warnings

import h5py
import numpy as np
import pytest
import torch

from cwm.cli import rl as rl_cli
from cwm.cli import train as train_cli
from cwm.errors import UserError
from cwm.locks import locked_dir
from cwm.model.checkpoint import load_checkpoint
from cwm.model.config import make_config
from cwm.model.train import train
from cwm.rl.loop import list_checkpoints
from cwm.rl.replay import FORMAT, Replay
from tests.model.shards import write_clip_shards
from tests.rl.test_loop import ENV, REPO, TINY, rl_cmd


def _one_line(main, argv, capsys) -> str:
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--lr", "inf"], "--lr must be a finite number, got inf"),
    (["--lr", "-0.1"], "--lr must be > 0"),
    (["--workers", "10000"], "--workers must be in [0, "),
    (["--seed", str(2 ** 64)], "--seed must be in [0, 9223372036854775807]"),
    (["--steps", "0"], "--steps must be >= 1"),
])
def test_train_numbers_are_checked(tmp_path, capsys, args, message):
    line = _one_line(train_cli.main, ["--shards", str(tmp_path), "--out", str(tmp_path / "run"),
                                      *args], capsys)
    assert line.startswith(f"error: {message}"), line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "learn.lr=nan"], "--set learn.lr must be a finite number, got nan"),
    (["--set", "behavior.actor_lr=inf"], "--set behavior.actor_lr must be a finite number"),
    (["--set", "learn.lr=-3e-4"], "lr must be > 0, got -0.0003"),
    (["--set", "learn.context_erase_prob=2"], "learn.context_erase_prob in [0, 1]"),
    (["--seed", str(2 ** 64)], "--seed must be in [0, 9223372036854775807]"),
    (["--envs", "0"], "--envs must be in [1, 256]"),
])
def test_rl_numbers_are_checked(tmp_path, capsys, args, message):
    line = _one_line(rl_cli.main, ["--env", "dmc", "--preset", "tiny", "--out",
                                   str(tmp_path / "run"), *args], capsys)
    assert message in line, line
    assert not (tmp_path / "run").exists()


def test_two_trainers_in_one_run_directory(tmp_path):
    spec = write_clip_shards(tmp_path / "shards")
    run = tmp_path / "run"
    cfg = make_config("tiny", "plain", steps=1)
    with locked_dir(run, "cwm-train"):
        with pytest.raises(UserError, match="in use by another cwm-train"):
            train(cfg, spec, run, progress=False, echo=lambda _: None)
    assert not (run / "checkpoints").exists()


class _Marker:
    def __reduce__(self):
        return (print, ("unpickled!",))


def test_hostile_and_damaged_checkpoints_never_advise_unsafe_loading(tmp_path):
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"kind": "cwm-train", "x": _Marker()}))
    torch.save({"kind": "cwm-train", "obj": _Marker()}, tmp_path / "evil2.pt")
    for path in (evil, tmp_path / "evil2.pt"):
        with pytest.raises(UserError) as e:
            load_checkpoint(path)                       # e.g. --pretrained
        message = str(e.value)
        assert "weights_only" not in message and "delete it" not in message, message
    with pytest.raises(UserError, match="refused: loading them could run code"):
        load_checkpoint(tmp_path / "evil2.pt")
    junk = tmp_path / "step-00000001.pt"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(UserError, match="delete it to resume from an earlier one"):
        load_checkpoint(junk, resuming=True)


def _step(t: int, size: int = 64) -> dict:
    return {"image": np.full((size, size, 3), t % 255, np.uint8), "action": np.zeros(2, np.float32),
            "reward": float(t), "is_first": t == 0, "is_last": t == 9, "is_terminal": False,
            "success": False}


def test_a_chunk_with_other_image_shapes_is_skipped_not_sampled(tmp_path):
    with Replay(tmp_path, capacity=1000, chunk_len=10) as replay:
        for episode in range(3):
            for t in range(10):
                replay.add(_step(t))
    # a valid chunk file of another run: 32x32 images
    with h5py.File(tmp_path / "0000000099.h5", "w") as f:
        f.attrs.update(format=FORMAT, seq=99, worker=0, prev=-1)
        for key, value in _step(0, size=32).items():
            f.create_dataset(key, data=np.stack([np.asarray(value)] * 10))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replay = Replay(tmp_path, capacity=1000, chunk_len=10)
    assert any("0000000099.h5" in str(w.message) and "shapes" in str(w.message) for w in caught)
    assert len(replay) == 30 and replay.stats()["skipped_files"] == 1
    assert replay.sample(4, 5)["image"].shape == (4, 5, 64, 64, 3)
    with pytest.raises(ValueError, match="keys, shapes or dtypes"):
        replay.add(_step(0, size=32))
    replay.close()


def test_ctrl_c_to_the_process_group_saves_every_counted_frame(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(rl_cmd("--env", "dmc", "--out", str(run), "--steps", "4000",
                                   "--ckpt-every", "100", *TINY),
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while not list_checkpoints(run) and time.time() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)                  # a terminal's Ctrl-C: the whole group
    stdout, stderr = proc.communicate(timeout=180)
    assert proc.returncode == 130, stdout[-2000:] + stderr[-3000:]
    assert "interrupted at " in stdout and "rerun the same command to resume" in stdout
    assert "Traceback" not in stderr, stderr[-3000:]
    _, path = list_checkpoints(run)[-1]
    ckpt = torch.load(path, weights_only=True)
    frames = ckpt["counters"]["env_steps"]
    with Replay(run / "replay", capacity=10 ** 6) as replay:
        firsts = sum(int(c.data["is_first"].sum()) for c in replay.chunks())
        # every agent step (2 frames on DMC) plus each episode's reset observation
        assert len(replay) == ckpt["replay_steps"] == frames // 2 + firsts


def test_a_run_that_fails_to_start_closes_its_early_evaluation_env(tmp_path):
    """The evaluation env starts on a thread while the run is built; when building fails (here
    the agent), its process and the training envs' are shut down, not left behind."""
    from cwm.rl.config import make_rl_config
    from cwm.rl.loop import Factories, Run, default_envs, default_eval_env

    made = []

    def eval_env(cfg):
        made.append(default_eval_env(cfg))
        return made[-1]

    def envs(cfg, seed):
        made.append(default_envs(cfg, seed))
        return made[-1]

    def no_agent(cfg, action_dim, device):
        raise UserError("no agent today")

    cfg = make_rl_config("dmc", "cartpole-balance", "tiny", "dreamerv2", 0, "fast", 1)
    with pytest.raises(UserError, match="no agent today"):
        Run(cfg, tmp_path / "run",
            Factories(make_envs=envs, make_eval_env=eval_env, make_agent=no_agent),
            torch.device("cpu"), echo=lambda line: None)
    assert len(made) == 2 and all(e.closed for e in made)
    assert not any(p.is_alive() for e in made for p in e.processes)
