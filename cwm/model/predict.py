"""`cwm-train predict`: a run's newest checkpoint scored and pictured on clips it should not know.

    <out>/eval-<step>.json       per-frame MSE / PSNR / SSIM (mean over clips) and their means over
                                 the observed and the imagined frames (`cwm.model.evaluation`)
    <out>/predict-eval-<step>.*  open-loop strip (PNG + GIF) of the first `n_clips` clips
    <out>/compose-eval-<step>.*  compositional grid of the same clips

Clips are the evaluation windows of the shard spec (deterministic for a seed); pass held-out
shards: nothing here knows which clips the run trained on.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cwm.atomic import write_json
from cwm.errors import UserError
from cwm.model.checkpoint import latest_checkpoint, load_world_model
from cwm.model.evaluation import evaluate_open_loop
from cwm.model.pictures import write_pictures
from cwm.model.runtime import resolve_device


def predict(run_dir: str | Path, shards: str, *, device: str = "auto", n_clips: int = 4,
            eval_clips: int = 64, out_dir: str | Path | None = None, seed: int = 0,
            sample: bool = True) -> list[Path]:
    """Score up to `eval_clips` clips of `shards`, picture the first `n_clips`; returns paths."""
    from cwm.shards.loader import make_clip_loader
    from cwm.shards.spec import resolve_spec

    if n_clips < 1 or eval_clips < 1:
        raise UserError(f"--clips and --eval-clips must be positive, got {n_clips}, {eval_clips}")
    resolve_spec(shards)
    path = latest_checkpoint(run_dir)
    if path is None:
        raise UserError(f"{run_dir} holds no checkpoint (expected {Path(run_dir) / 'checkpoints'}/"
                        f"step-*.pt)")
    dev = resolve_device(device)
    model, cfg, ckpt = load_world_model(path, dev)
    observe = cfg.train.observe_steps
    loader = make_clip_loader(shards, batch_size=min(64, max(n_clips, eval_clips)),
                              seq_len=cfg.train.seq_len, train=False, num_workers=0, seed=seed)
    clips = []
    for batch in loader:
        clips.append(batch["frames"])
        if sum(len(c) for c in clips) >= max(n_clips, eval_clips):
            break
    if not clips:
        raise UserError(f"shard spec {shards!r} yielded no clips of {cfg.train.seq_len} frames")
    frames = torch.cat(clips)[:max(n_clips, eval_clips)].to(dev)

    step = int(ckpt["step"])
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "pictures"
    out.mkdir(parents=True, exist_ok=True)
    result = evaluate_open_loop(model, frames[:eval_clips], observe, sample=sample, seed=seed)
    report = {"checkpoint": str(path), "step": step, "shards": shards, "seed": seed,
              "latents": "sampled" if sample else "mode", **result.summary()}
    json_path = out / f"eval-{step:08d}.json"
    write_json(json_path, report)
    pictures = write_pictures(model, frames, out, f"eval-{step:08d}", observe, n_clips,
                              sample=sample, seed=seed)
    return [json_path, *pictures]
