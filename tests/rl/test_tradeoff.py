"""experiments/cpu_preset/tradeoff.py: the frames/s-against-return table of issue 12's screen."""

import json
from pathlib import Path

import pytest


def _run(root: Path, variant: str, seed: int, returns: list[float], fps: list[float]) -> None:
    run = root / variant / f"seed{seed}"
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"env": "dmc", "task": "cartpole-balance", "agent": "contextwm", "seed": seed}))
    rows = [{"step": 500, "fps": 900.0, "updates": 0}]                 # prefill: no training yet
    rows += [{"step": 1000 * (i + 1), "fps": f, "updates": 10 * (i + 1), "model_loss": 1.0}
             for i, f in enumerate(fps)]
    rows += [{"step": 2000 * i, "eval_return": r} for i, r in enumerate(returns)]
    (run / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + "\n{\"step\": 1")


def test_rate_leaves_out_prefill_and_first_training_log(tmp_path, tradeoff):
    # The first training log (300) still averages in prefill steps; the others are steady.
    _run(tmp_path, "fast", 0, [100, 200], [300.0, 10.0, 10.0, 12.0])
    assert tradeoff.steady_fps(tmp_path / "fast" / "seed0") == pytest.approx(10.0)


def test_table_has_each_variant_with_cost_and_return(tmp_path, tradeoff, capsys):
    for seed in range(3):
        _run(tmp_path, "slow", seed, [300, 140, 500 + seed], [50.0, 5.0, 5.0])
        _run(tmp_path, "fast", seed, [300, 136, 136], [50.0, 20.0, 20.0])
    out = tmp_path / "tradeoff.md"
    picture = tmp_path / "tradeoff.png"
    per_hour = tmp_path / "per_hour.png"
    assert tradeoff.main([str(tmp_path), "--at", "2000", "--target", "72000", "--out", str(out),
                          "--plot", str(picture), "--hours", "0.15", "--hours-plot", str(per_hour),
                          "--reference", "zero=756"]) == 0
    for png in (picture, per_hour):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = out.read_text()
    assert table == capsys.readouterr().out
    slow = next(x for x in table.splitlines() if x.startswith("| slow |"))
    fast = next(x for x in table.splitlines() if x.startswith("| fast |"))
    # 72,000 frames at 5 frames/s = 4 h; at 20 = 1 h. The slow variant's best is its last
    # evaluation (IQM of 500-502), the fast one's the untrained policy at frame 0. Within 0.15 h
    # (540 s) the slow runs reach 2,700 frames, so their 2,000-frame evaluation; the fast runs
    # stopped at 4,000 frames = 200 s, before 0.15 h, so what they would score then is not known.
    assert slow == ("| slow | 3 | 5.0 | 140 [140, 140] | 501 [500, 502] (4,000) | 4,000 | 4.0 "
                    "| 140 [140, 140] (2,000) |")
    assert fast == "| fast | 3 | 20.0 | 136 [136, 136] | 300 [300, 300] (0) | 4,000 | 1.0 |  |"


def test_equal_compute_needs_positive_hours(tmp_path, tradeoff, capsys):
    _run(tmp_path, "v", 0, [1, 2], [5.0, 5.0])
    with pytest.raises(SystemExit) as exit_:
        tradeoff.main([str(tmp_path), "--hours", "0"])
    assert exit_.value.code == 2 and "--hours must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["empty", "missing"])
def test_no_variants_is_a_usage_error(tmp_path, tradeoff, where, capsys):
    path = tmp_path if where == "empty" else tmp_path / "nowhere"
    with pytest.raises(SystemExit) as exit_:
        tradeoff.main([str(path)])
    assert exit_.value.code == 2
    assert str(path) in capsys.readouterr().err


def test_bad_reference_is_a_usage_error(tmp_path, tradeoff, capsys):
    _run(tmp_path, "v", 0, [1, 2], [5.0, 5.0])
    with pytest.raises(SystemExit) as exit_:
        tradeoff.main([str(tmp_path), "--reference", "zero"])
    assert exit_.value.code == 2 and "NAME=RETURN" in capsys.readouterr().err


def test_runs_not_yet_evaluated_are_left_out_with_a_note(tmp_path, tradeoff, capsys):
    for seed in range(3):
        _run(tmp_path, "done", seed, [300, 140], [50.0, 5.0])
    started = tmp_path / "started"
    (started / "seed0").mkdir(parents=True)              # the loop has not written a line yet
    (started / "seed1").mkdir()
    (started / "seed1" / "config.json").write_text(json.dumps(
        {"env": "dmc", "task": "cartpole-balance", "agent": "contextwm", "seed": 1}))
    (started / "seed1" / "metrics.jsonl").write_text(json.dumps({"step": 500, "fps": 9.0}) + "\n")
    _run(tmp_path, "partial", 0, [300, 150], [50.0, 4.0])
    (tmp_path / "partial" / "seed1").mkdir()              # a seed not started yet: seed 0 alone counts
    assert tradeoff.main([str(tmp_path), "--at", "2000"]) == 0
    captured = capsys.readouterr()
    assert "note: started left out: none of its runs has been evaluated yet" in captured.err
    table = captured.out.splitlines()
    assert [line.split(" | ")[0] for line in table[2:]] == ["| done", "| partial"]
    assert table[3].startswith("| partial | 1 | 4.0 | 150 [150, 150] |")


def test_a_damaged_run_is_a_one_line_usage_error(tmp_path, tradeoff, capsys):
    _run(tmp_path, "broken", 0, [300, 140], [50.0, 5.0])
    (tmp_path / "broken" / "seed0" / "config.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_:
        tradeoff.main([str(tmp_path)])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "config.json is damaged" in err and "Traceback" not in err


def test_a_run_evaluated_before_its_first_training_log_has_no_equal_compute_cell(tmp_path, tradeoff,
                                                                                   capsys):
    # The loop evaluates the untrained policy at frame 0, before any training log gives a rate.
    _run(tmp_path, "done", 0, [300, 140], [50.0, 5.0])
    fresh = tmp_path / "fresh" / "seed0"
    fresh.mkdir(parents=True)
    (fresh / "config.json").write_text(json.dumps(
        {"env": "dmc", "task": "cartpole-balance", "agent": "contextwm", "seed": 0}))
    (fresh / "metrics.jsonl").write_text(json.dumps({"step": 0, "eval_return": 250.0}) + "\n")
    assert tradeoff.main([str(tmp_path), "--at", "0", "--hours", "0.01",
                          "--hours-plot", str(tmp_path / "h.png")]) == 0
    fresh_row = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("| fresh |"))
    assert fresh_row == "| fresh | 1 | nan | 250 [250, 250] | 250 [250, 250] (0) | 0 | nan |  |"
