"""Pre-training summary of issue 13's experiment: loss curves and held-out scores per model.

    python experiments/pretrain_benefit/pretrain_summary.py RUNS/pretrain --out experiments/pretrain_benefit/pretrain

Reads each `RUNS/pretrain/<model>/metrics.jsonl` (cwm-train's log) and the newest
`<model>/heldout/eval-*.json` (`cwm-train predict` on the target tasks' held-out videos) and
writes `losses.png` (training loss, image NLL and KL per step, one line per model), `summary.md`
(the last logged values and the held-out open-loop scores) and copies of the held-out prediction
strips (`predict_<model>.png`).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cwm.model.metrics import read_metrics  # noqa: E402

CURVES = ("loss", "image_nll", "kl")
SCORES = ("mse_observed", "mse_imagined", "psnr_observed", "psnr_imagined", "ssim_imagined")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("pretrain", type=Path, help="RUNS/pretrain (one run directory per model)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    models = sorted(p.name for p in args.pretrain.iterdir() if (p / "metrics.jsonl").is_file())
    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.5 * len(CURVES), 3.4))
    lines = ["| model | steps | " + " | ".join(f"last {c}" for c in CURVES) + " | "
             + " | ".join(f"held-out {s}" for s in SCORES) + " |",
             "|---|---:|" + "---:|" * (len(CURVES) + len(SCORES))]
    for model in models:
        rows = [r for r in read_metrics(args.pretrain / model / "metrics.jsonl") if "loss" in r]
        steps = [r["step"] for r in rows]
        for ax, key in zip(axes, CURVES):
            ax.plot(steps, [r[key] for r in rows], label=model)
            ax.set_title(key)
            ax.set_xlabel("pre-training step")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        evals = sorted((args.pretrain / model / "heldout").glob("eval-*.json"))
        held = json.loads(evals[-1].read_text()) if evals else {}
        for name in ("predict", "compose"):
            found = sorted((args.pretrain / model / "heldout").glob(f"{name}-eval-*.png"))
            if found:
                shutil.copy(found[-1], args.out / f"{name}_{model}.png")
        last = rows[-1] if rows else {}
        lines.append(f"| {model} | {last.get('step', 0)} | "
                     + " | ".join(f"{last.get(c, float('nan')):.4g}" for c in CURVES) + " | "
                     + " | ".join(f"{held.get(s, float('nan')):.4g}" for s in SCORES) + " |")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(args.out / "losses.png", dpi=100)
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
