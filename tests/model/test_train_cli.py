"""End-to-end `cwm-train` in real subprocesses: Ctrl-C, kill -9, resume, torchrun, predict."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from cwm.model.checkpoint import list_checkpoints, load_checkpoint
from cwm.model.metrics import read_metrics

from tests.model.shards import write_clip_shards

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _cmd(spec, run, *extra):
    return [sys.executable, "-m", "cwm.cli.train", "--shards", spec, "--out", str(run),
            "--preset", "tiny", "--no-progress", *extra]


def _default_sigint():
    # A test run launched as a background job inherits an ignored SIGINT, and Python keeps an
    # ignored SIGINT ignored: give the child the default back so Ctrl-C reaches it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(args):
    return subprocess.Popen(args, cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint)


def _wait_for_checkpoint(proc, run, min_step, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [s for s, _ in list_checkpoints(run)]
        if steps and steps[-1] >= min_step:
            return steps[-1]
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    raise AssertionError("no checkpoint in time")


def test_interrupt_kill_and_resume_continue_the_run(tmp_path):
    spec = write_clip_shards(tmp_path / "shards")
    run = tmp_path / "run"
    args = _cmd(spec, run, "--steps", "40", "--ckpt-every", "5", "--log-every", "2",
                "--picture-every", "1000")

    # Ctrl-C: a checkpoint at the step reached, exit status 130.
    proc = _start(args)
    _wait_for_checkpoint(proc, run, 5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    interrupted_at = list_checkpoints(run)[-1][0]
    assert f"interrupted at step {interrupted_at}" in out

    # kill -9 after a later checkpoint: nothing saved on the way out.
    proc = _start(args)
    killed_after = _wait_for_checkpoint(proc, run, interrupted_at + 10)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    last = list_checkpoints(run)[-1][0]
    assert last >= killed_after

    # The same command resumes from the last checkpoint and finishes.
    done = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"from step {last}" in done.stdout
    assert list_checkpoints(run)[-1][0] == 40
    ckpt = load_checkpoint(list_checkpoints(run)[-1][1])
    assert ckpt["step"] == 40 and ckpt["data"]["clips_seen"] == 40 * 4

    # The loss curve is one curve: every log step once, in order, up to the end.
    steps = [row["step"] for row in read_metrics(run / "metrics.jsonl")]
    assert steps == list(range(2, 41, 2))
    rows = read_metrics(run / "metrics.jsonl")
    assert all(k in rows[-1] for k in ("loss", "image_nll", "kl", "grad_norm", "steps_per_s",
                                      "clips_per_s", "data_wait_frac"))
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert json.loads((run / "config.json").read_text())["preset"] == "tiny"

    # Finished: rerunning does nothing; predict draws pictures on demand.
    again = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    pred = subprocess.run([sys.executable, "-m", "cwm.cli.train", "predict", str(run),
                           "--shards", spec, "--clips", "2"], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=120)
    assert pred.returncode == 0, pred.stderr
    for name in ("predict-eval-00000040.png", "predict-eval-00000040.gif",
                 "compose-eval-00000040.png", "compose-eval-00000040.gif"):
        assert (run / "pictures" / name).stat().st_size > 0


def test_user_errors_are_one_line(tmp_path):
    spec = write_clip_shards(tmp_path / "shards", n_clips=2, n_shards=1)
    run = tmp_path / "run"
    first = subprocess.run(_cmd(spec, run, "--steps", "1"), cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    cases = [
        (_cmd(spec, run, "--steps", "2", "--model", "plain"), "holds a contextwm model"),
        (_cmd(str(tmp_path / "none-{0..3}.tar"), tmp_path / "r2"), "does not exist"),
        (_cmd(spec, tmp_path / "r3", "--steps", "0"), "--steps must be >= 1, got 0"),
        (_cmd(spec, tmp_path / "r3", "--set", "model.widht=8"), "no settable 'widht'"),
        (_cmd(spec, tmp_path / "r3", "--set", "model.cnn_depth=7"), "multiple of model.attn_heads"),
        (_cmd(spec, run, "--steps", "2", "--set", "model.deter=48"), "different model settings"),
    ]
    for args, message in cases:
        out = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
        assert out.returncode == 2
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], out.stderr
    assert not (tmp_path / "r2").exists()
    bad = subprocess.run(_cmd(spec, tmp_path / "r4", "--speed", "turbo"), cwd=REPO, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Invalid value for '--speed'" in bad.stderr
    # A run started on one speed path (tiny's default: eager, channels-last, fused AdamW)
    # resumes on another: the checkpoints are the same.
    again = subprocess.run(_cmd(spec, run, "--steps", "2", "--speed", "reference"), cwd=REPO,
                           env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "speed = eager" in first.stdout and "speed = reference" in again.stdout
    assert "resuming" in again.stdout and [s for s, _ in list_checkpoints(run)][-1] == 2


def test_torchrun_two_cpu_processes(tmp_path):
    spec = write_clip_shards(tmp_path / "shards")
    run = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
            "-m", "cwm.cli.train", "--shards", spec, "--out", str(run), "--preset", "tiny",
            "--steps", "4", "--log-every", "2", "--no-progress", "--device", "cpu"]
    out = subprocess.run(args, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((run / "config.json").read_text())["world_size"] == 2
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [2, 4]
    assert list_checkpoints(run)[-1][0] == 4
    assert out.stdout.count("summary:") == 1  # rank 0 alone reports
    assert "synchronised across 2 ranks (all-reduce on gloo)" in out.stdout
