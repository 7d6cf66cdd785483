"""`cwm-rl` user mistakes (one line, non-zero exit), `report` and `export-minari`."""

import subprocess

import h5py
import pytest
import torch

from tests.rl.test_loop import ENV, REPO, TINY, rl_cmd, run_rl


def fails(*args) -> str:
    proc = subprocess.run(rl_cmd(*args), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("args, message", [
    (("--env", "atari"), "unknown env family 'atari'"),
    (("--env", "metaworld", "--task", "juggle"), "unknown metaworld task 'juggle'"),
    (("--env", "dmc", "--task", "walker-fly"), "unknown dmc task 'walker-fly'"),
    (("--env", "dmc", "--preset", "metaworld"), "use --preset dmc"),
    (("--env", "dmc", "--set", "behavior.actor_bound=2"), "behavior has no setting 'actor_bound'"),
])
def test_bad_env_task_or_preset_is_one_line(tmp_path, args, message):
    assert message in fails(*args, "--out", str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_checkpoint_of_the_wrong_kind_is_one_line(tmp_path):
    other = tmp_path / "rl.pt"
    torch.save({"kind": "cwm-rl", "format": 1}, other)
    assert "not a cwm-train checkpoint" in fails("--env", "dmc", "--pretrained", str(other),
                                                 "--out", str(tmp_path / "run"))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert "unreadable" in fails("--env", "dmc", "--pretrained", str(junk),
                                 "--out", str(tmp_path / "run"))
    assert "does not exist" in fails("--env", "dmc", "--pretrained", str(tmp_path / "none.pt"),
                                     "--out", str(tmp_path / "run"))


def test_report_of_a_run(tmp_path):
    run = tmp_path / "run"
    run_rl("--env", "dmc", "--out", str(run), "--steps", "150", *TINY)   # 300 frames
    out = subprocess.run(rl_cmd("report", str(run), "--out", str(tmp_path / "report"),
                                "--baselines", "1"), cwd=REPO,
                         env=ENV, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "report" / "curves.png").stat().st_size > 0
    table = (tmp_path / "report" / "report.md").read_text()
    assert "| dmc | cartpole-balance | contextwm | 300 | 1 |" in table
    assert "- dmc/cartpole-balance `eval_return`: random " in table
    assert "not a cwm-rl run" in fails("report", str(tmp_path))
    assert "give START:END in frames" in fails("report", str(run), "--window", "300")
    windowed = subprocess.run(rl_cmd("report", str(run), "--out", str(tmp_path / "w"),
                                     "--window", "0:300"), cwd=REPO, env=ENV,
                              capture_output=True, text=True, timeout=120)
    assert windowed.returncode == 0, windowed.stderr
    assert "Window of `eval_return`" in (tmp_path / "w" / "report.md").read_text()
    bad = subprocess.run(rl_cmd("report", str(run), "--baselines", "-1"), cwd=REPO, env=ENV,
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Invalid value for '--baselines'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_export_minari_then_replay_from_it(tmp_path):
    # One complete cartpole episode (500 agent steps, 1,000 frames) of random actions, no updates.
    run = tmp_path / "run"
    run_rl("--env", "dmc", "--out", str(run), "--steps", "500", "--prefill", "500", *TINY)
    datasets = tmp_path / "minari"
    proc = subprocess.run(rl_cmd("export-minari", str(run), "--datasets-path", str(datasets)),
                          cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "exported 1 episode(s), 501 steps as cwm/dmc-cartpole-balance-v0" in proc.stdout

    seeded = tmp_path / "seeded"
    out = run_rl("--env", "dmc", "--out", str(seeded), "--steps", "100",
                 "--replay-from", "cwm/dmc-cartpole-balance-v0", *TINY,
                 env_extra={"MINARI_DATASETS_PATH": str(datasets)})
    assert "replay: 1 episode(s), 501 steps from Minari dataset" in out
    # The imported episode is its own stream (worker 1, after the single env's worker 0).
    workers = {}
    for p in (seeded / "replay").glob("*.h5"):
        with h5py.File(p) as f:
            workers[int(f.attrs["worker"])] = workers.get(int(f.attrs["worker"]), 0) + len(f["reward"])
    assert workers[1] == 501


def test_model_like_takes_a_checkpoints_sizes_with_fresh_weights(tmp_path):
    # The from-scratch arm of a pre-training comparison: the pre-trained arm's model sizes
    # (here not the tiny preset's own), no weights loaded.
    import dataclasses
    import json

    from cwm.model.checkpoint import latest_checkpoint
    from cwm.model.config import make_config
    from cwm.model.train import train as pretrain
    from tests.model.shards import write_clip_shards

    spec = write_clip_shards(tmp_path / "shards", n_clips=4, length=10)
    cfg = make_config("tiny", "contextwm", steps=2, ckpt_every=2, picture_every=1000, log_every=1)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, deter=24, hidden=24))
    pretrain(cfg, spec, tmp_path / "pre", device="cpu", progress=False, echo=lambda s: None)
    ckpt = str(latest_checkpoint(tmp_path / "pre"))
    assert "pass one of them" in fails("--env", "dmc", "--pretrained", ckpt, "--model-like", ckpt,
                                       "--out", str(tmp_path / "both"))
    assert "not dreamerv2" in fails("--env", "dmc", "--agent", "dreamerv2", "--model-like", ckpt,
                                    "--out", str(tmp_path / "kind"))
    run = tmp_path / "run"
    run_rl("--env", "dmc", "--out", str(run), "--steps", "110", "--model-like", ckpt, *TINY)
    saved = json.loads((run / "config.json").read_text())
    assert saved["model"]["deter"] == 24 and saved["model"]["hidden"] == 24
    assert saved["pretrained"] is None
