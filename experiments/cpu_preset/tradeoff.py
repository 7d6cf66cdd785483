"""Issue 12's trade-off table: what each screened variant costs per frame against what it returns.

    python experiments/cpu_preset/tradeoff.py RUNS/TASK [--at FRAMES] [--target N] [--hours H]
                                              [--out FILE] [--plot PNG] [--hours-plot PNG]
                                              [--reference NAME=RETURN ...]

RUNS/TASK holds one directory per variant (`experiments/cpu_preset/run.sh` writes
RUNS/TASK/VARIANT/seedK). For every variant: the frames/s of one run at the steady state (the
median over the logs once training has started, so the prefill's fast random steps are left
out), the IQM [95% bootstrap interval] over seeds at `--at` frames and at its best evaluation,
how far its runs got, and the hours one run needs for `--target` frames at that rate (the seeds
ran side by side, so that is also the wall-clock time of the variant). The rates are those of
the runs as they ran: three runs on two cores, with whatever else the machine did then.
`--hours` compares at equal compute instead of equal frames: the IQM at the last evaluation a
run reaches within H hours at its steady rate (blank where the runs stopped before H hours).
`--hours-plot` draws every variant's IQM curve against those hours per run.
`--plot` draws the same as a picture (frames/s across, IQM at `--at` up, with its interval),
with horizontal lines for `--reference` returns such as the random and zero-action policies'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cwm.errors import UserError
from cwm.model.metrics import read_metrics
from cwm.rl.report import RunCurve, aggregate, load_run


def steady_fps(run_dir: Path) -> float:
    """Median frames/s over a run's training logs after its first update."""
    rates = [row["fps"] for row in read_metrics(run_dir / "metrics.jsonl")   # skips cut-off lines
             if "fps" in row and row.get("updates", 0) > 0 and "model_loss" in row]
    # The first training log still averages in the prefill's fast steps.
    return float(np.median(rates[1:] if len(rates) > 1 else rates)) if rates else float("nan")


def evaluated_curves(variant_dir: Path) -> list[RunCurve]:
    """The curves of the variant's seed runs that have an evaluation: a run that has just
    started (no metrics, or none evaluated yet) is left out rather than read as a failure."""
    runs = sorted(p for p in variant_dir.glob("seed*") if (p / "metrics.jsonl").is_file())
    return [c for c in map(load_run, runs) if c.steps.size]


def hours_of(step: int, rate: float) -> float:
    """Hours one run needs for `step` frames at its steady rate (NaN without a rate)."""
    return step / rate / 3600 if rate > 0 else float("nan")


def within_hours(rows: list, rate: float, hours: float):
    """The last evaluation row a run reaches within `hours` at `rate`, or None when the runs
    stopped before that much time (what they would have scored then is not known) or have no
    steady rate yet (evaluated before their first training log)."""
    if not rows or not rate > 0 or hours_of(rows[-1].step, rate) < hours:
        return None
    return [r for r in rows if hours_of(r.step, rate) <= hours][-1]


def variant_row(variant_dir: Path, at: int, target: int, hours: float) -> dict | None:
    """The table row of one variant, or None when none of its runs has been evaluated yet."""
    curves = evaluated_curves(variant_dir)
    if not curves:
        return None
    rows = aggregate(curves)
    fps = [steady_fps(c.path) for c in curves]
    best = max(rows, key=lambda r: r.iqm)
    at_row = next((r for r in rows if r.step == at), None)
    rate = float(np.median(fps))
    return {"variant": variant_dir.name, "seeds": len(curves), "fps": rate,
            "at": at_row, "best": best, "reached": rows[-1].step,
            "hours": hours_of(target, rate), "within": within_hours(rows, rate, hours),
            "curve": rows}


def cell(row) -> str:
    return "" if row is None else f"{row.iqm:.0f} [{row.iqm_low:.0f}, {row.iqm_high:.0f}]"


def within_cell(row) -> str:
    return "" if row is None else f"{cell(row)} ({row.step:,})"


def _figure():
    """pyplot (headless), and a figure with one axes of the size both pictures share."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    return plt, fig, ax


def _finish(fig, ax, references: dict[str, float], path: Path) -> None:
    """The reference policies as horizontal lines, a legend beside the axes, and the file."""
    import matplotlib.pyplot as plt

    for (name, value), style in zip(references.items(), (":", "-.", "--")):
        ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{name} policy")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(rows: list[dict], at: int, references: dict[str, float], path: Path) -> None:
    plt, fig, ax = _figure()
    # Variants sit close together in frames/s, so they are told apart by colour and marker in
    # a legend rather than by labels beside the points, which overlap.
    markers = "osD^vP*X<>"
    for i, r in enumerate(x for x in rows if x["at"] is not None):
        y = r["at"]
        ax.errorbar(r["fps"], y.iqm, yerr=[[y.iqm - y.iqm_low], [y.iqm_high - y.iqm]],
                    fmt=markers[i % len(markers)], color=plt.cm.tab10(i % 10), capsize=3,
                    label=r["variant"])
    ax.set_xlabel("frames/s per run (3 runs on 2 cores)")
    ax.set_ylabel(f"return at {at:,} frames (IQM, 95% CI)")
    _finish(fig, ax, references, path)


def plot_hours(rows: list[dict], references: dict[str, float], path: Path) -> None:
    """Each variant's IQM curve (with its interval) against hours of one run's compute."""
    plt, fig, ax = _figure()
    for i, r in enumerate(rows):
        h = [hours_of(x.step, r["fps"]) for x in r["curve"]]
        colour = plt.cm.tab10(i % 10)
        ax.plot(h, [x.iqm for x in r["curve"]], color=colour, label=r["variant"])
        ax.fill_between(h, [x.iqm_low for x in r["curve"]], [x.iqm_high for x in r["curve"]],
                        color=colour, alpha=0.12)
    ax.set_xlabel("hours of one run at its steady frames/s (3 runs on 2 cores)")
    ax.set_ylabel("return (IQM, 95% CI)")
    _finish(fig, ax, references, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("task_dir", type=Path, help="RUNS/TASK, one directory per variant")
    ap.add_argument("--at", type=int, default=12000, help="frames every variant is compared at")
    ap.add_argument("--target", type=int, default=100000, help="frames the issue's target names")
    ap.add_argument("--hours", type=float, default=2.0,
                    help="also compare at this many hours of one run's compute")
    ap.add_argument("--out", type=Path, help="write the table here too (markdown)")
    ap.add_argument("--plot", type=Path, help="draw frames/s against the return at --at here")
    ap.add_argument("--hours-plot", type=Path,
                    help="draw each variant's return against hours of one run here")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=RETURN",
                    help="a reference policy's return, drawn as a line (repeatable)")
    args = ap.parse_args(argv)
    if not args.hours > 0:
        ap.error(f"--hours must be positive, got {args.hours}")
    if not args.task_dir.is_dir():
        ap.error(f"{args.task_dir} is not a directory")
    variants = sorted(p for p in args.task_dir.iterdir() if p.is_dir() and any(p.glob("seed*/")))
    if not variants:
        ap.error(f"{args.task_dir} holds no variant directories with seed runs")
    references = {}
    for item in args.reference:
        name, _, value = item.partition("=")
        try:
            references[name] = float(value)
        except ValueError:
            ap.error(f"--reference takes NAME=RETURN, got {item!r}")
    lines = [f"| variant | seeds | frames/s per run | IQM at {args.at:,} frames | best IQM (frames) "
             f"| frames reached | hours per run for {args.target:,} frames "
             f"| IQM within {args.hours:g} h per run (frames) |",
             "|---|---:|---:|---|---|---:|---:|---|"]
    rows = []
    for v in variants:
        try:
            row = variant_row(v, args.at, args.target, args.hours)
        except UserError as e:                       # a damaged run directory
            ap.error(str(e))
        if row is None:
            print(f"note: {v.name} left out: none of its runs has been evaluated yet",
                  file=sys.stderr)
        else:
            rows.append(row)
    if not rows:
        ap.error(f"no variant in {args.task_dir} has an evaluated run yet")
    for r in rows:
        lines.append(f"| {r['variant']} | {r['seeds']} | {r['fps']:.1f} | {cell(r['at'])} | "
                     f"{cell(r['best'])} ({r['best'].step:,}) | {r['reached']:,} | "
                     f"{r['hours']:.1f} | {within_cell(r['within'])} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out:
        args.out.write_text(text)
    if args.plot:
        plot(rows, args.at, references, args.plot)
    if args.hours_plot:
        plot_hours(rows, references, args.hours_plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
