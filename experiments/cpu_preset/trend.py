"""Issue 12's question for runs that stop short of 100k frames: on their present trend, do they
reach the target?

    python experiments/cpu_preset/trend.py REPORT.csv [REPORT.csv ...] --target R
                                           [--from FRAMES] [--to FRAMES] [--out FILE]

Each REPORT.csv is a `cwm-rl report` table (one IQM over seeds per evaluation). Over the
evaluations from `--from` frames on it fits a straight line to the IQM (least squares) and
gives its slope per 10k frames and its value at `--to` frames, each with a 95% bootstrap
interval (evaluations resampled with replacement, the line refitted, 10,000 times, seed 0),
beside the slope the runs would need from their last evaluation to reach `--target` by `--to`.

A trend reading, not a forecast: neighbouring evaluations share most of their training, so the
interval is narrower than the runs' real uncertainty, and a learning curve that bends (a plateau,
a late rise) is not a line. It answers one thing: whether the target lies on the curve's
present course or needs a change of course.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from cwm.rl.report import percentile_interval

RESAMPLES = 10_000


def read_iqm(path: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """A `cwm-rl report` CSV -> (frames, IQM, "task"), one row per evaluation."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"step", "iqm", "task"} <= set(rows[0]):
        raise ValueError(f"{path} is not a cwm-rl report table (needs step, iqm, task columns)")
    tasks = {r["task"] for r in rows}
    if len(tasks) != 1:
        raise ValueError(f"{path} holds {len(tasks)} tasks; give one report per task")
    try:
        steps = np.array([float(r["step"]) for r in rows])
        iqm = np.array([float(r["iqm"]) for r in rows])
    except (TypeError, ValueError):                # a cut-off row reads as None, text as text
        raise ValueError(f"{path} has a damaged row (step or iqm missing or not a number)") from None
    order = np.argsort(steps)
    return steps[order], iqm[order], tasks.pop()


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares lines through the rows of (x, y) [..., N] -> (slopes, intercepts) [...]."""
    dx = x - x.mean(-1, keepdims=True)
    slope = (dx * (y - y.mean(-1, keepdims=True))).sum(-1) / (dx * dx).sum(-1)
    return slope, y.mean(-1) - slope * x.mean(-1)


def trend(steps: np.ndarray, iqm: np.ndarray, start: float, to: float, target: float) -> dict:
    """The line over the evaluations at or after `start`, its bootstrap intervals, and the slope
    needed from the last evaluation to `target` at `to` frames (slopes per 10k frames)."""
    keep = steps >= start
    x, y = steps[keep] / 1e4, iqm[keep]
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"needs 3 or more evaluations at different frames from {start:,.0f} on, "
                         f"found {len(x)}")
    if to <= steps[-1]:
        raise ValueError(f"--to ({to:,.0f}) must lie after the last evaluation ({steps[-1]:,.0f})")
    slope, intercept = map(float, fit(x, y))
    picks = np.random.default_rng(0).integers(0, len(x), size=(RESAMPLES, len(x)))
    picks = picks[np.ptp(x[picks], axis=1) > 0]    # a resample of one frame count has no line
    slopes, intercepts = fit(x[picks], y[picks])
    return {"from": float(steps[keep][0]), "last": float(steps[-1]), "n": int(keep.sum()),
            "last_iqm": float(iqm[-1]), "slope": slope,
            "slope_ci": percentile_interval(slopes),
            "at_to": slope * (to / 1e4) + intercept,
            "at_to_ci": percentile_interval(slopes * (to / 1e4) + intercepts),
            "needed": (target - iqm[-1]) / ((to - steps[-1]) / 1e4)}


def table(items: list[tuple[str, dict]], to: float, target: str) -> str:
    """Markdown rows of `trend` results; `target` names the target in the header."""
    lines = [f"| run | evaluations | last IQM | slope per 10k frames [95%] | line at {to:,.0f} "
             f"[95%] | slope needed for {target} by {to:,.0f} |",
             "|---|---:|---:|---|---|---:|"]
    for name, t in items:
        lo, hi = t["slope_ci"]
        a, b = t["at_to_ci"]
        lines.append(f"| {name} | {t['n']} ({t['from']:,.0f}-{t['last']:,.0f}) | "
                     f"{t['last_iqm']:.0f} | {t['slope']:+.1f} [{lo:+.1f}, {hi:+.1f}] | "
                     f"{t['at_to']:.0f} [{a:.0f}, {b:.0f}] | {t['needed']:+.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reports", type=Path, nargs="+", help="cwm-rl report CSVs, one per task")
    ap.add_argument("--target", type=float, action="append", required=True,
                    help="the return to reach (once, or once per report in the same order)")
    ap.add_argument("--from", dest="start", type=int, default=0,
                    help="fit the evaluations from this many frames on")
    ap.add_argument("--to", type=int, default=100_000, help="frames the target is due by")
    ap.add_argument("--out", type=Path, help="write the table here too (markdown)")
    args = ap.parse_args(argv)
    targets = args.target * len(args.reports) if len(args.target) == 1 else args.target
    if len(targets) != len(args.reports):
        ap.error(f"give one --target, or one per report ({len(args.reports)}), "
                 f"not {len(args.target)}")
    items = []
    for path, target in zip(args.reports, targets):
        if not path.is_file():
            ap.error(f"{path}: no such report")
        try:
            steps, iqm, task = read_iqm(path)
            items.append((f"{task} ({path.parent.name}, target {target:g})",
                          trend(steps, iqm, args.start, args.to, target)))
        except ValueError as e:
            ap.error(f"{path}: {e}")
    # one target for all goes in the header; several are named in each row's run column
    text = table(items, args.to, f"{targets[0]:g}" if len(set(targets)) == 1 else "its target")
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
