"""Parity table: cwm-rl's DreamerV2 against upstream's own DreamerV2, seeds side by side.

    python experiments/rl_parity/compare.py --ours RUNS/ours/seed* --upstream RUNS/upstream/seed* \
        [--out experiments/rl_parity/cartpole-balance]

Both sides log evaluation returns per environment frame (`eval_return` rows of metrics.jsonl;
upstream writes two rows at its prefill step, the second one its policy's, which is the one
kept). At every frame count both sides evaluated, the IQM of the seeds and its 95% bootstrap
interval (`cwm.rl.report`); the target is ours inside or above upstream's interval at each.
Writes parity.md, parity.csv and parity.png to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from cwm.rl.report import bootstrap_interval, interquartile_mean


def eval_curve(run: Path) -> dict[int, float]:
    """{frames: eval_return} of one run directory (either side); the last row of a step wins."""
    points: dict[int, float] = {}
    for line in (run / "metrics.jsonl").read_text(errors="replace").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill
        if "eval_return" in row and "step" in row:
            points[int(row["step"])] = float(row["eval_return"])
    return points


def summarise(curves: list[dict[int, float]], step: int) -> tuple[float, float, float]:
    vals = np.array([c[step] for c in curves])
    low, high = bootstrap_interval(vals)
    return float(interquartile_mean(vals)), low, high


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", nargs="+", type=Path, required=True)
    ap.add_argument("--upstream", nargs="+", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("experiments/rl_parity/cartpole-balance"))
    ap.add_argument("--baselines", type=int, default=5,
                    help="episodes of the random and zero-action policies drawn beside the curves")
    args = ap.parse_args()
    ours = [eval_curve(p) for p in args.ours]
    theirs = [eval_curve(p) for p in args.upstream]
    common = set.intersection(*(set(c) for c in ours + theirs))
    if not common:
        raise SystemExit("error: no frame count at which every run of both sides evaluated")
    rows = []
    for step in sorted(common):
        o, u = summarise(ours, step), summarise(theirs, step)
        rows.append({"frames": step, "upstream_iqm": u[0], "upstream_low": u[1],
                     "upstream_high": u[2], "ours_iqm": o[0], "ours_low": o[1], "ours_high": o[2],
                     "ours_in_or_above": o[0] >= u[1]})
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "parity.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"Seeds: ours {len(ours)}, upstream {len(theirs)}; IQM [95% bootstrap interval].", "",
             "| frames | upstream | ours | ours inside or above upstream's interval |",
             "|---:|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['frames']} | {r['upstream_iqm']:.0f} [{r['upstream_low']:.0f}, "
                     f"{r['upstream_high']:.0f}] | {r['ours_iqm']:.0f} [{r['ours_low']:.0f}, "
                     f"{r['ours_high']:.0f}] | {'yes' if r['ours_in_or_above'] else 'NO'} |")
    baselines = {}
    if args.baselines > 0:
        from cwm.rl.baselines import reference_scores

        baselines = reference_scores("dmc", "cartpole-balance", args.baselines)
        lines += ["", "Reference policies (" + f"{args.baselines} episodes each): " +
                  ", ".join(f"{p} {v:.0f}" for p, v in baselines.items())]
    (args.out / "parity.md").write_text("\n".join(lines) + "\n")
    _plot(rows, ours, theirs, baselines, args.out / "parity.png")
    print("\n".join(lines))


def _plot(rows, ours, theirs, baselines: dict[str, float], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = [r["frames"] for r in rows]
    for side, curves in (("upstream", theirs), ("ours", ours)):
        line, = ax.plot(x, [r[f"{side}_iqm"] for r in rows], "o-", label=f"{side} (IQM)")
        ax.fill_between(x, [r[f"{side}_low"] for r in rows], [r[f"{side}_high"] for r in rows],
                        color=line.get_color(), alpha=0.2)
        for c in curves:
            steps = sorted(c)
            ax.plot(steps, [c[s] for s in steps], color=line.get_color(), lw=0.6, alpha=0.4)
    for (policy, score), style in zip(baselines.items(), (":", "--")):
        ax.axhline(score, color="grey", ls=style, lw=1, label=f"{policy} policy")
    ax.set_xlabel("environment frames (agent steps x action repeat)")
    ax.set_ylabel("evaluation return")
    ax.set_title("DreamerV2, cartpole-balance, small settings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
