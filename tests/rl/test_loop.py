"""`cwm-rl` end to end in real subprocesses: a tiny run on every env family, kill -9 and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import torch

from cwm.allocator import find_tcmalloc
from cwm.model.metrics import read_metrics
from cwm.rl.loop import list_checkpoints

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
       "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
TINY = ("--preset", "tiny", "--render", "fast", "--no-progress")


def rl_cmd(*args):
    return [sys.executable, "-m", "cwm.cli.rl", *args]


def run_rl(*args, timeout=240, env_extra=None):
    proc = subprocess.run(rl_cmd(*args), cwd=REPO, env={**ENV, **(env_extra or {})},
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def summary(stdout: str) -> dict:
    line = [l for l in stdout.splitlines() if l.startswith("summary: ")][-1]
    return json.loads(line.removeprefix("summary: "))


def check_run(run: Path, env: str, task: str, steps: int) -> list[dict]:
    cfg = json.loads((run / "config.json").read_text())
    assert (cfg["env"], cfg["task"], cfg["agent"], cfg["seed"]) == (env, task, "contextwm", 0)
    rows = read_metrics(run / "metrics.jsonl")
    evals = [r for r in rows if "eval_return" in r]
    assert [r["step"] for r in evals] == [0, steps]
    assert ("eval_success" in evals[-1]) == (env == "metaworld")
    assert any("model_loss" in r for r in rows)
    assert (run / "curve.png").stat().st_size > 0
    assert len(list((run / "eval").glob("eval-*.gif"))) == 2
    assert list((run / "tb").glob("events.*"))
    assert list_checkpoints(run)[-1][0] == steps
    with h5py.File(sorted((run / "replay").glob("*.h5"))[0]) as f:
        assert f["image"].shape[1:] == (64, 64, 3)
    return rows


def test_tiny_run_dmc(tmp_path):
    run = tmp_path / "dmc"
    setting = ("--set", "behavior.actor_raw_bound=2")
    stdout = run_rl("--env", "dmc", "--out", str(run), *setting, *TINY)
    out = summary(stdout)
    # The command line re-executes itself under tcmalloc where it is installed (cwm.allocator).
    expected = "tcmalloc" if find_tcmalloc() and "CWM_ALLOCATOR" not in os.environ else "system"
    assert f"allocator = {expected}" in stdout
    # tiny counts agent steps (cartpole repeats each action twice): prefill 100 steps = 200
    # frames, then 2 pre-train updates and one per 25 steps = 50 frames up to 200 = 400 frames.
    assert out["env_steps"] == 400 and out["updates"] == 2 + 200 // 50
    check_run(run, "dmc", "cartpole-balance", 400)
    assert json.loads((run / "config.json").read_text())["behavior"]["actor_raw_bound"] == 2.0
    # Rerunning a finished run resumes it and has nothing to do; without its --set it is refused.
    again = run_rl("--env", "dmc", "--out", str(run), *setting, *TINY)
    assert "nothing to do" in again
    other = subprocess.run(rl_cmd("--env", "dmc", "--out", str(run), *TINY), cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "behavior.actor_raw_bound = 2.0, not 0.0" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_every_checkpoint_holds_every_counted_frame(tmp_path):
    """A periodic checkpoint's replay holds the observation of the step it counted last: one
    per agent step plus the reset observation. (It used to be recorded at the top of the next
    step, so a periodic checkpoint, or Ctrl-C right after one, lacked it.)"""
    run = tmp_path / "ckpts"
    run_rl("--env", "dmc", "--out", str(run), "--steps", "200", "--ckpt-every", "50", *TINY)
    kept = list_checkpoints(run)
    assert [step for step, _ in kept] == [300, 400]      # frames; the newest 2 are kept
    for step, path in kept:
        ckpt = torch.load(path, weights_only=True)
        # 400 frames is within cartpole's first episode (1,000 frames): one reset observation.
        assert ckpt["replay_steps"] == step // 2 + 1, (step, ckpt["replay_steps"])


def test_tiny_run_metaworld(tmp_path):
    run = tmp_path / "mw"
    out = summary(run_rl("--env", "metaworld", "--task", "reach-v3", "--out", str(run), *TINY))
    assert out["env_steps"] == 200   # action repeat 1: frames = agent steps
    rows = check_run(run, "metaworld", "reach", 200)
    # The Meta-world protocol freezes encoder and z-RSSM for the first updates; all of these.
    assert json.loads((run / "config.json").read_text())["loop"]["freeze_updates"] == 100
    assert all(0.0 <= r["eval_success"] <= 1.0 for r in rows if "eval_success" in r)


def test_tiny_run_dmcr_with_two_parallel_envs(tmp_path):
    run = tmp_path / "dmcr"
    out = summary(run_rl("--env", "dmcr", "--task", "walker-walk", "--envs", "2",
                         "--out", str(run), *TINY))
    assert out["env_steps"] == 400
    check_run(run, "dmcr", "walker-walk", 400)
    with h5py.File(sorted((run / "replay").glob("*.h5"))[0]) as f:
        assert f["action"].shape[1] == 6
    workers = set()
    for p in (run / "replay").glob("*.h5"):
        with h5py.File(p) as f:
            workers.add(int(f.attrs["worker"]))
    assert workers == {0, 1}


def _wait_for_checkpoint(proc, run, min_step, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = list_checkpoints(run)
        if found and found[-1][0] >= min_step:
            return found[-1]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.1)
    raise AssertionError("no checkpoint in time")


def test_kill9_then_resume_continues_counters_without_catch_up(tmp_path):
    run = tmp_path / "resume"
    # In agent steps: 700, 100 and 50 frames.
    args = rl_cmd("--env", "dmc", "--out", str(run), "--steps", "350", "--ckpt-every", "50",
                  "--log-every", "25", *TINY)
    proc = subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    step, path = _wait_for_checkpoint(proc, run, 300)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    # The newest checkpoint after the kill is the one the rerun resumes from.
    step, path = list_checkpoints(run)[-1]
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["counters"]["env_steps"] == step

    out = run_rl(*args[3:])
    assert f"resuming {run} at {step} frames, {ckpt['counters']['updates']} updates" in out
    # Nothing loaded twice: the replay holds exactly what the checkpoint counted.
    assert f"replay: {ckpt['replay_steps']} steps loaded" in out
    final = summary(out)
    # No catch-up burst: the update count is what an uninterrupted run reaches (2 + 500 / 50).
    assert final["env_steps"] == 700 and final["updates"] == 12
    rows = read_metrics(run / "metrics.jsonl")
    logged = [(r["step"], r["updates"]) for r in rows if "updates" in r]
    assert [s for s, _ in logged] == sorted({s for s, _ in logged})   # no step logged twice
    for s, u in logged:
        assert u == (0 if s <= 200 else 2 + (s - 200) // 50), (s, u)
    assert [r["step"] for r in rows if "eval_return" in r] == [0, 700]
