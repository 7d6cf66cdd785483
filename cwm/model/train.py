"""The pre-training loop, as a plain function: `train(cfg, shards, run_dir)`.

One call trains (or resumes) one run directory:

    <run>/config.json            the RunConfig, parameter counts, shard spec, world size
    <run>/metrics.jsonl          one object per log step: losses, KL, grad norm, speed, data wait
    <run>/tb/                    the same scalars as TensorBoard events
    <run>/checkpoints/*.pt       see `cwm.model.checkpoint`
    <run>/pictures/              open-loop predictions and compositional grids (PNG + GIF)

Rerunning with the same run directory resumes from its newest checkpoint: model, optimizer, RNG,
step, and a data stream reseeded from (seed, step). Ctrl-C and SIGTERM save a checkpoint first.
Under `torchrun` every rank runs this function; rank 0 alone writes files.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Callable

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from cwm.allocator import in_use as allocator_in_use
from cwm.atomic import write_json
from cwm.errors import UserError
from cwm.locks import DirLock
from cwm.model.batchnorm import sync_batchnorm
from cwm.model.checkpoint import (check_compatible, checkpoint_path, latest_checkpoint,
                                  load_checkpoint, prune_checkpoints, save_checkpoint,
                                  set_rng_state)
from cwm.model.config import RunConfig, format_config
from cwm.model.fast import prepare, resolve_speed, uses_fused_optimizer, wrap
from cwm.model.metrics import MetricsLogger
from cwm.model.pictures import write_pictures
from cwm.model.runtime import Runtime, setup_runtime, teardown_runtime
from cwm.model.world_model import WorldModel, parameter_breakdown
from cwm.signals import sigterm_as_interrupt


def data_seed(seed: int, step: int) -> int:
    """The loader seed for a (re)start at `step`: a resumed run draws a fresh, reproducible stream."""
    return (seed * 1_000_003 + step * 7_919) % (2 ** 31 - 1)


def make_optimizer(model: torch.nn.Module, cfg: RunConfig, fused: bool = False
                   ) -> torch.optim.Optimizer:
    """Adam(lr, eps) with DreamerV2's decoupled per-step weight decay p <- (1 - wd) p.

    AdamW decays by lr * weight_decay per step, so weight_decay = wd / lr gives exactly that.
    `fused`: one kernel over all parameters instead of ~10 small ops per parameter (the same
    update to float rounding; its state dict is interchangeable with the for-loop one's).
    """
    t = cfg.train
    return torch.optim.AdamW(model.parameters(), lr=t.lr, eps=t.adam_eps,
                             weight_decay=t.weight_decay / t.lr, fused=fused or None)


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0




def train_step(net: torch.nn.Module, model: WorldModel, optimizer: torch.optim.Optimizer,
               frames: torch.Tensor, context: torch.Tensor, rt: Runtime,
               grad_clip: float) -> dict:
    """One update: forward (autocast on CUDA), backward, clip, Adam. `net` may wrap `model`
    (DDP, torch.compile). Returns the detached metrics plus grad_norm and `applied`, False when
    the gradient was not finite and the update was skipped (it would poison the weights)."""
    with rt.autocast():
        loss, metrics = net(frames, context)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    applied = bool(torch.isfinite(grad_norm))
    if applied:
        optimizer.step()
    return {**metrics, "grad_norm": grad_norm, "applied": applied}


class _Window:
    """Sums of metrics and timings between two log steps."""

    def __init__(self):
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.wait = 0.0
        self.total = 0.0
        self.skipped = 0

    def add(self, metrics: dict[str, torch.Tensor], wait: float, total: float) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0) + v.detach().float()
        self.steps += 1
        self.wait += wait
        self.total += total


def train(cfg: RunConfig, shards: str, run_dir: str | Path, *, device: str = "auto",
          speed: str = "auto", progress: bool = True,
          echo: Callable[[str], None] = print) -> dict:
    """Train (or resume) the run in `run_dir` on the clips of `shards`; returns a summary dict.
    `speed`: how the step runs (`cwm.model.fast`); every choice trains the same model."""
    from cwm.shards.loader import make_clip_loader
    from cwm.shards.spec import resolve_spec

    resolve_spec(shards)  # a bad or empty spec fails here, before anything is written
    resolve_speed(speed, cfg.preset)  # an unknown name fails before a process group starts
    rt = setup_runtime(device)
    speed = resolve_speed(speed, cfg.preset, rt.device.type)
    lock = None
    try:
        # One job per run directory: its rank 0 owns it (other ranks write nothing there).
        lock = DirLock(run_dir, "cwm-train") if rt.is_main else None
        summary = _train(cfg, shards, Path(run_dir), rt, speed, progress, echo, make_clip_loader)
        # Every rank finishes before any tears the group down: a gloo rank whose peer destroys
        # the group while its own last collective is still in flight can abort at exit.
        # (Not in `finally`: after one rank's error the others would wait here forever.)
        rt.barrier()
        return summary
    finally:
        if lock is not None:
            lock.release()
        teardown_runtime(rt)


def _train(cfg: RunConfig, shards: str, run_dir: Path, rt: Runtime, speed: str,
           progress: bool, echo, make_clip_loader) -> dict:
    t = cfg.train
    if t.batch_size % rt.world_size:
        raise UserError(f"--batch-size {t.batch_size} is not divisible by the {rt.world_size} "
                        f"processes of this job")
    local_batch = t.batch_size // rt.world_size

    ckpt, ckpt_path = None, latest_checkpoint(run_dir)
    if ckpt_path is not None:
        ckpt = load_checkpoint(ckpt_path, resuming=True)
        check_compatible(ckpt, cfg, ckpt_path)

    torch.manual_seed(cfg.seed)
    model = WorldModel(cfg.model).to(rt.device)
    if rt.distributed:  # whole-batch BatchNorm statistics, as on upstream's single GPU
        _, bn_message = sync_batchnorm(model, rt.device)
        if rt.is_main:
            echo(bn_message)
    how = prepare(model, speed)
    optimizer = make_optimizer(model, cfg, fused=uses_fused_optimizer(speed))
    start_step, clips_seen = 0, 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_step = int(ckpt["step"])
        clips_seen = int(ckpt["data"].get("clips_seen", 0))
    if ckpt is not None and rt.is_main:
        set_rng_state(ckpt["rng"])
    else:
        torch.manual_seed(data_seed(cfg.seed, start_step) + rt.rank)
    del ckpt

    counts = parameter_breakdown(model)
    if rt.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "config.json", {**cfg.to_dict(), "shards": shards,
                                             "world_size": rt.world_size,
                                             "device": str(rt.device), "parameters": counts})
        echo(format_config(cfg, counts["total"]))
        echo(f"device = {rt.device}" + (f" x {rt.world_size} processes" if rt.distributed else "")
             + f"; allocator = {allocator_in_use()}")
        echo(how)
        echo(f"resuming {run_dir} from step {start_step} ({ckpt_path})" if ckpt_path
             else f"starting {run_dir}")

    if start_step >= t.steps:
        if rt.is_main:
            echo(f"already trained to step {start_step} (--steps {t.steps}): nothing to do")
        return {"run_dir": str(run_dir), "start_step": start_step, "step": start_step,
                "steps_run": 0, "interrupted": False, "checkpoint": str(ckpt_path)}

    loader = make_clip_loader(shards, batch_size=local_batch, seq_len=t.seq_len, train=True,
                              num_workers=t.num_workers, seed=data_seed(cfg.seed, start_step),
                              shuffle_buffer=t.shuffle_buffer, sample_by=t.sample_by)
    net: torch.nn.Module = model
    if rt.distributed:
        net = DistributedDataParallel(
            model, device_ids=[rt.device.index] if rt.device.type == "cuda" else None)
    net = wrap(net, speed)

    logger = MetricsLogger(run_dir, start_step, enabled=rt.is_main)
    bar = tqdm(total=t.steps, initial=start_step, unit="step", dynamic_ncols=True,
               disable=not (progress and rt.is_main), file=sys.stderr)
    step, last_saved, interrupted = start_step, start_step, False
    first_loss = last_loss = None
    window = _Window()
    session_start = time.perf_counter()

    def save() -> Path | None:
        nonlocal last_saved
        path = None
        if rt.is_main:
            path = save_checkpoint(checkpoint_path(run_dir, step), cfg=cfg, step=step,
                                   model=model, optimizer=optimizer,
                                   data={"seed": cfg.seed, "step": step, "clips_seen": clips_seen})
            prune_checkpoints(run_dir, t.keep_checkpoints)
        last_saved = step
        return path

    batches = iter(loader)
    net.train()
    try:
        with sigterm_as_interrupt():
            while step < t.steps:
                t0 = time.perf_counter()
                batch = next(batches)
                frames = batch["frames"].to(rt.device, non_blocking=True)
                context = batch["context"].to(rt.device, non_blocking=True)
                t1 = time.perf_counter()
                metrics = train_step(net, model, optimizer, frames, context, rt, t.grad_clip)
                if not metrics["applied"]:
                    window.skipped += 1
                del metrics["applied"]
                step += 1
                clips_seen += t.batch_size
                window.add(metrics, t1 - t0, time.perf_counter() - t0)
                bar.update(1)

                if step % t.log_every == 0 or step == t.steps:
                    row = _summarise(window, rt, t.batch_size)
                    row["clips_seen"] = clips_seen
                    row["rss_peak_mib"] = peak_rss_mib()
                    last_loss = row["loss"]
                    first_loss = row["loss"] if first_loss is None else first_loss
                    logger.log(step, row)
                    bar.set_postfix(loss=f"{row['loss']:.1f}", kl=f"{row['kl']:.2f}")
                    window = _Window()
                if rt.is_main and step % t.picture_every == 0:
                    write_pictures(model, frames, run_dir / "pictures", f"{step:08d}",
                                   t.observe_steps, seed=step)
                if step % t.ckpt_every == 0:
                    save()
    except KeyboardInterrupt:
        interrupted = True
        bar.close()
        if step > last_saved:
            save()
        if rt.is_main:
            echo(f"interrupted at step {step}: saved {checkpoint_path(run_dir, step)}; "
                 f"rerun the same command to resume")
        raise
    finally:
        bar.close()
        logger.close()
    if step > last_saved:
        save()
    if rt.is_main and step % t.picture_every:  # the end of a run always leaves its pictures
        write_pictures(model, frames, run_dir / "pictures", f"{step:08d}", t.observe_steps,
                       seed=step)

    elapsed = time.perf_counter() - session_start
    summary = {
        "run_dir": str(run_dir), "start_step": start_step, "step": step,
        "steps_run": step - start_step, "seconds": round(elapsed, 1),
        "steps_per_s": round((step - start_step) / elapsed, 4) if elapsed > 0 else None,
        "first_loss": first_loss, "last_loss": last_loss, "clips_seen": clips_seen,
        "checkpoint": str(checkpoint_path(run_dir, step)), "interrupted": interrupted,
        "rss_peak_mib": round(peak_rss_mib(), 1),
    }
    if rt.is_main:
        echo("summary: " + json.dumps(summary))
    return summary


def _summarise(window: _Window, rt: Runtime, global_batch: int) -> dict[str, float]:
    names = sorted(window.sums)
    values = torch.stack([window.sums[k].reshape(()) for k in names]) / max(window.steps, 1)
    values = rt.mean(values).tolist()
    row = dict(zip(names, values))
    row["steps_per_s"] = window.steps / window.total if window.total > 0 else math.nan
    row["clips_per_s"] = row["steps_per_s"] * global_batch
    row["step_time_s"] = window.total / max(window.steps, 1)
    row["data_wait_frac"] = window.wait / window.total if window.total > 0 else 0.0
    row["skipped_steps"] = window.skipped
    return row

