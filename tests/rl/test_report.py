import json
from pathlib import Path

import numpy as np
import pytest

from cwm.errors import UserError
from cwm.rl.report import bootstrap_interval, interquartile_mean, reference_curves, write_report
from cwm.rl.window import difference_interval, parse_window, permutation_test


def _fake_run(root, seed, values, env="metaworld", task="reach", agent="contextwm",
              pretrained=None):
    run = root / f"{agent}-{seed}{'-pre' if pretrained else ''}"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"env": env, "task": task, "agent": agent,
                                                 "seed": seed, "pretrained": pretrained}))
    lines = [json.dumps({"step": 1000 * (i + 1), "eval_success": v}) for i, v in enumerate(values)]
    lines.insert(1, json.dumps({"step": 1500, "loss": 3.0}))  # training rows are ignored
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n{\"step\": 9")  # cut-off last line
    return run


def test_iqm_ignores_outer_quartiles():
    assert interquartile_mean(np.array([0.0, 1.0, 1.0, 100.0])) == pytest.approx(1.0)
    lo, hi = bootstrap_interval(np.array([0.2, 0.4, 0.6, 0.8]))
    assert 0.2 <= lo <= hi <= 0.8


def test_report_aggregates_seeds(tmp_path):
    runs = [_fake_run(tmp_path, s, [0.1 * s, 0.2 * s]) for s in range(4)]
    paths = write_report(runs, tmp_path / "report")
    text = paths["md"].read_text()
    assert "| metaworld | reach | contextwm | 2000 | 4 |" in text
    assert paths["png"].stat().st_size > 1000
    rows = paths["csv"].read_text().splitlines()
    assert len(rows) == 3  # header + two evaluation steps shared by all seeds


def test_reference_curves_are_shipped():
    ref = reference_curves("metaworld", "drawer-open-v3")
    assert {"APV", "DreamerV2"} <= set(ref)
    steps, mean = ref["APV"]
    assert steps[0] == 5000 and 0 <= mean.max() <= 1


def test_not_a_run_dir(tmp_path):
    with pytest.raises(UserError, match="not a cwm-rl run"):
        write_report([tmp_path], tmp_path / "r")


def test_report_measures_reference_policies(tmp_path):
    """`--baselines`: the random and zero-action scores are measured on the real env and shown.
    On cartpole-balance doing nothing keeps the pole up far longer than random actions do."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(
        {"env": "dmc", "task": "cartpole-balance", "agent": "contextwm", "seed": 0}))
    (run / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval_return": 300.0}) + "\n")
    paths = write_report([run], tmp_path / "report", baseline_episodes=1)
    scores = _reference_line(paths["md"], "- dmc/cartpole-balance `eval_return`:")
    assert 100 < scores["random"] < 500
    assert scores["zero"] > 600
    assert "eval_success" not in paths["md"].read_text()


def _reference_line(md: Path, prefix: str) -> dict[str, float]:
    line = next(x for x in md.read_text().splitlines() if x.startswith(prefix))
    return {p: float(v) for p, v in (part.split() for part in line[len(prefix):].split(", "))}


def test_metaworld_reference_policies_have_a_success_rate_and_a_return(tmp_path):
    """On Meta-world the reference policies are scored under both evaluation keys: the success
    rate for the report's curve and the return for `--train-metric eval_return`'s plot."""
    runs = [_fake_run(tmp_path, s, [0.0, 0.1]) for s in range(2)]
    for run in runs:
        (run / "metrics.jsonl").write_text("".join(
            json.dumps({"step": step, "eval_success": ok, "eval_return": ret}) + "\n"
            for step, ok, ret in ((1000, 0.0, 150.0), (2000, 0.1, 400.0))))
    paths = write_report(runs, tmp_path / "report", baseline_episodes=1,
                         train_metrics=("eval_return",))
    success = _reference_line(paths["md"], "- metaworld/reach `eval_success`:")
    returns = _reference_line(paths["md"], "- metaworld/reach `eval_return`:")
    assert set(success) == set(returns) == {"random", "zero"}
    assert all(0.0 <= v <= 1.0 for v in success.values())
    # reach pays a dense shaped reward every step of a 500-step episode: far above one success
    assert all(v > 10 for v in returns.values())
    assert paths["eval_return.png"].stat().st_size > 0


def test_pretrained_and_scratch_runs_are_separate_arms_with_frames_to_half_success(tmp_path):
    scratch = [_fake_run(tmp_path, s, [0.0, 0.2, 0.4]) for s in range(3)]
    pre = [_fake_run(tmp_path, s, [0.1, 0.6, 0.9], pretrained="ckpt.pt") for s in range(3)]
    text = write_report(scratch + pre, tmp_path / "report")["md"].read_text()
    assert "| metaworld | reach | contextwm | 3000 | 3 |" in text
    assert "| metaworld | reach | contextwm+pretrained | 3000 | 3 |" in text
    assert "reach contextwm+pretrained: IQM 0.900" in text
    assert "IQM success first >= 0.5 at step 2000, and stays there from step 2000" in text
    assert "IQM success not >= 0.5 by step 3000" in text
    # One lucky evaluation crosses the level without holding it.
    spike = [_fake_run(tmp_path, s, [0.0, 0.5, 0.0], agent="plain") for s in range(3)]
    text = write_report(spike, tmp_path / "spike")["md"].read_text()
    assert ("IQM success first >= 0.5 at step 2000, but does not stay there (below at step "
            "3000)") in text


def test_training_metric_is_aggregated_per_arm(tmp_path):
    """`--train-metric model_loss`: the logged training rows become a curve per arm, with the
    pre-trained arm's lower early loss visible in report.md."""
    runs = []
    for seed in range(3):
        for pretrained, start in ((None, 5.0), ("ckpt.pt", 2.0)):
            run = _fake_run(tmp_path, seed, [0.1, 0.2], pretrained=pretrained)
            rows = [json.dumps({"step": 250 * i, "model_loss": start / i + 0.01 * seed})
                    for i in range(1, 6)]
            with open(run / "metrics.jsonl", "a") as f:
                f.write("\n" + "\n".join(rows) + "\n")
            runs.append(run)
    paths = write_report(runs, tmp_path / "report", train_metrics=("model_loss",))
    csv_rows = paths["model_loss.csv"].read_text().splitlines()
    assert len(csv_rows) == 1 + 2 * 5                # two arms x five logged steps
    assert paths["model_loss.png"].stat().st_size > 1000
    text = paths["md"].read_text().split("Metric `model_loss`")[1]
    scratch = next(x for x in text.splitlines() if x.startswith("| metaworld | reach | contextwm |"))
    pre = next(x for x in text.splitlines() if x.startswith("| metaworld | reach | contextwm+pretrained |"))
    assert scratch.split("|")[4].strip().startswith("5.01 ")   # log 1 at step 250
    assert pre.split("|")[4].strip().startswith("2.01 ")
    with pytest.raises(UserError, match="metric 'nope'"):
        write_report(runs, tmp_path / "r2", train_metrics=("nope",))
    # An evaluation key works too: Meta-world's return beside its success rate.
    paths = write_report(runs, tmp_path / "r3", train_metrics=("eval_success",))
    assert "Metric `eval_success`" in paths["md"].read_text()
    assert len(paths["eval_success.csv"].read_text().splitlines()) == 1 + 2 * 2


def test_window_compares_arms_over_the_same_evaluations(tmp_path):
    """`--window 2000:4000`: each seed averaged over the steps every run of the task has in the
    window (a run that stopped early limits them to 2000-3000), and the pair's difference with
    its bootstrap interval and exact permutation p-value."""
    runs = []
    for seed in range(3):
        runs.append(_fake_run(tmp_path, seed, [0.0, 0.1 * seed, 0.2, 0.9]))               # scratch
        runs.append(_fake_run(tmp_path, seed, [0.0, 0.6 + 0.1 * seed, 0.8, 0.0][:3 + (seed > 0)],
                              pretrained="ckpt.pt"))                                    # seed 0: 3 evals
    paths = write_report(runs, tmp_path / "report", window=(2000, 4000))
    text = paths["md"].read_text().split("Window of `eval_success`")[1]
    scratch = next(x for x in text.splitlines() if x.startswith("| metaworld | reach | contextwm |"))
    # steps 2000 and 3000 only: the pre-trained seed 0 has no evaluation at 4000
    assert "| 2000-3000 (2) |" in scratch
    assert "s0 0.1, s1 0.15, s2 0.2 |" in scratch
    diff = next(x for x in text.splitlines() if "contextwm - contextwm+pretrained" in x)
    assert diff.split("|")[4].strip().startswith("-0.6 [")       # 0.15 - 0.75
    assert diff.split("|")[5].strip() == "0.1 (0.1)"     # 3 vs 3 seeds, fully separated
    rows = paths["window"].read_text().splitlines()
    assert rows[0].startswith("metric,env,task,agent") and len(rows) == 1 + 6
    with pytest.raises(UserError, match="no evaluation step in 5000:6000"):
        write_report(runs, tmp_path / "r2", window=(5000, 6000))


def test_difference_interval_and_window_parsing():
    lo, hi = difference_interval(np.array([1.0, 1.1, 0.9]), np.array([1.0, 0.95, 1.05]))
    assert lo < 0 < hi                                   # overlapping arms: no claim
    lo, hi = difference_interval(np.array([5.0, 5.5, 6.0]), np.array([1.0, 1.5, 2.0]))
    assert 3.0 <= lo <= hi <= 5.0
    # Exact permutation test: 3 vs 3 fully separated is the best 3 seeds can do (2 / 20).
    assert permutation_test(np.array([5.0, 5.5, 6.0]), np.array([1.0, 1.5, 2.0])) == (0.1, 0.1)
    assert permutation_test(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0]))[0] == 1.0
    p, floor = permutation_test(np.array([1.0, 4.0, 2.0, 6.0]), np.array([3.0, 5.0]))
    assert floor == 1 / 15 and 0.1 < p < 1        # 4 vs 2 seeds: C(6, 2) = 15 splits
    p, floor = permutation_test(np.arange(10.0) + 10, np.arange(10.0))   # C(20, 10) > 20,000
    assert floor == 1 / 20_001 and p <= 0.001   # random splits: (count + 1) / (n + 1)
    assert parse_window("6000:12000") == (6000, 12000)
    for bad in ("6000", "a:b", "12000:6000", "-1:5", "1:2:3"):
        with pytest.raises(UserError, match="--window"):
            parse_window(bad)
