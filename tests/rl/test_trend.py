"""experiments/cpu_preset/trend.py: does a curve that stops short of 100k frames reach the target
on its present course?"""

from pathlib import Path

import pytest


def _report(path: Path, points: list[tuple[int, float]], task: str = "cartpole-balance") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["env,task,agent,step,seeds,mean,iqm,iqm_low,iqm_high"]
    # written out of order: the script sorts by frames
    for step, iqm in reversed(points):
        lines.append(f"dmc,{task},contextwm,{step},3,{iqm},{iqm},{iqm - 10},{iqm + 10}")
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_straight_line_is_read_exactly(tmp_path, trend):
    # IQM = 100 + 50 per 10k frames: the line, its bootstrap and the projection are exact.
    report = _report(tmp_path / "v" / "report.csv", [(s, 100 + 50 * s / 1e4)
                                                      for s in range(0, 40001, 2000)])
    steps, iqm, task = trend.read_iqm(report)
    assert task == "cartpole-balance" and steps[0] == 0 and steps[-1] == 40000
    t = trend.trend(steps, iqm, start=10000, to=100000, target=800)
    assert t["n"] == 16 and t["from"] == 10000 and t["last_iqm"] == pytest.approx(300)
    assert t["slope"] == pytest.approx(50) and t["at_to"] == pytest.approx(600)
    assert t["slope_ci"] == pytest.approx((50, 50)) and t["at_to_ci"] == pytest.approx((600, 600))
    # from 300 at 40k to 800 at 100k: 500 over 6 x 10k frames
    assert t["needed"] == pytest.approx(500 / 6)


def test_a_plateau_has_an_interval_around_zero_and_misses_the_target(tmp_path, trend, capsys):
    points = [(s, 300 + (40 if (s // 2000) % 2 else -40)) for s in range(10000, 40001, 2000)]
    report = _report(tmp_path / "flat" / "report.csv", points)
    assert trend.main([str(report), "--target", "800", "--from", "10000",
                       "--out", str(tmp_path / "t.md")]) == 0
    out = capsys.readouterr().out
    assert out == (tmp_path / "t.md").read_text()
    row = out.splitlines()[2]
    assert row.startswith("| cartpole-balance (flat, target 800) | 16 (10,000-40,000) |")
    steps, iqm, _ = trend.read_iqm(report)
    t = trend.trend(steps, iqm, 10000, 100000, 800)
    lo, hi = t["slope_ci"]
    assert lo < 0 < hi and t["at_to_ci"][1] < 800


def test_one_target_per_report(tmp_path, trend, capsys):
    a = _report(tmp_path / "a" / "report.csv", [(s, 100 + s / 100) for s in range(0, 20001, 2000)])
    b = _report(tmp_path / "b" / "report.csv", [(s, 50 + s / 200) for s in range(0, 20001, 2000)],
                task="walker-stand")
    assert trend.main([str(a), str(b), "--target", "800", "--target", "600"]) == 0
    out = capsys.readouterr().out
    assert "cartpole-balance (a, target 800)" in out and "walker-stand (b, target 600)" in out
    assert "slope needed for its target by 100,000" in out
    with pytest.raises(SystemExit) as e:
        trend.main([str(a), str(b), "--target", "800", "--target", "600", "--target", "1"])
    assert e.value.code == 2
    assert "one per report (2), not 3" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("missing", "no such report"),
    ("not_a_report", "is not a cwm-rl report table"),
    ("damaged_row", "has a damaged row"),
    ("too_few", "needs 3 or more evaluations"),
    ("past_target_frames", "must lie after the last evaluation"),
])
def test_bad_input_is_a_one_line_usage_error(tmp_path, trend, capsys, case, message):
    path = tmp_path / case / "report.csv"
    args = ["--target", "800", "--from", "30000"]
    if case == "not_a_report":
        path.parent.mkdir()
        path.write_text("a,b\n1,2\n")
    elif case == "damaged_row":
        _report(path, [(s, 300) for s in range(0, 40001, 2000)])
        path.write_text(path.read_text() + "dmc,cartpole-balance,contextwm,42000\n")   # cut off
    elif case == "too_few":
        _report(path, [(s, 300) for s in range(0, 32001, 2000)])    # 30k and 32k only
    elif case == "past_target_frames":
        _report(path, [(s, 300) for s in range(0, 40001, 2000)])
        args += ["--to", "40000"]
    with pytest.raises(SystemExit) as e:
        trend.main([str(path)] + args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "\n".join(err)
