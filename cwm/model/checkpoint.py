"""Training checkpoints: one self-describing dict per file, loadable with `weights_only=True`.

    {
      "kind": "cwm-train",            # what wrote it
      "format": 1,
      "model_kind": "contextwm",      # contextwm | plain | dreamerv2
      "preset": "paper",
      "config": {...},                # RunConfig.to_dict(): model, train, seed
      "step": 1000,                   # gradient steps completed
      "model": state_dict,            # WorldModel (encoder., context_encoder., rssm., decoder.)
      "optimizer": state_dict,
      "rng": {"torch": ByteTensor, "cuda": [ByteTensor, ...]},
      "data": {"seed": int, "step": int, "clips_seen": int},  # loader reseeded from (seed, step)
    }

Files live in `<run>/checkpoints/step-<step:08d>.pt`, written atomically (a temporary name, fsync,
rename), so a crash or a full disk leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from cwm.atomic import StorageError, atomic_open, remove_stale_tmp, storage_errors
from cwm.errors import UserError
from cwm.model.config import RunConfig
from cwm.model.world_model import WorldModel

CHECKPOINT_KIND = "cwm-train"
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8,})\.pt$")


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(run_dir) / f"step-{step:08d}.pt"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint of a run, oldest first."""
    d = checkpoint_dir(run_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: dict, path: str | Path) -> Path:
    """`torch.save` under a temporary name, renamed when complete; storage failures -> `StorageError`."""
    path = Path(path)
    with storage_errors(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    # Through a Python file object, torch's "unexpected pos" carries the errno underneath.
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return path


def save_checkpoint(path: str | Path, *, cfg: RunConfig, step: int, model: WorldModel,
                    optimizer: torch.optim.Optimizer | None, data: dict) -> Path:
    """Write a checkpoint atomically. A write failure (full disk, ...) -> `UserError`, old files intact."""
    path = Path(path)
    ckpt = {
        "kind": CHECKPOINT_KIND,
        "format": FORMAT_VERSION,
        "model_kind": cfg.model.kind,
        "preset": cfg.preset,
        "config": cfg.to_dict(),
        "step": int(step),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "rng": rng_state(),
        "data": dict(data),
    }
    try:
        save_atomic(ckpt, path)
    except StorageError as e:
        previous = [p for _, p in list_checkpoints(path.parent.parent) if p != path]
        keep = f"; the last good checkpoint is {previous[-1]}" if previous else ""
        raise StorageError(f"checkpoint {path}", e.reason + keep) from None
    return path


def safe_load(path: str | Path, map_location: str | torch.device = "cpu", *,
              resuming: bool = False) -> object:
    """`torch.load(weights_only=True)` whose failures are one line.

    Never passes on torch's advice to retry with `weights_only=False`: for a file that holds
    more than tensors and plain data that would run whatever the file's author wrote.
    """
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for a damaged or foreign file
        text = str(e).strip()
        if "Weights only load failed" in text:
            reason = "it holds objects other than tensors and plain data, refused: loading them could run code"
        else:
            reason = (text.splitlines() or [type(e).__name__])[0][:200]
        hint = "; delete it to resume from an earlier one" if resuming else ""
        raise UserError(f"checkpoint {path} is unreadable ({reason}){hint}") from None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", *,
                    resuming: bool = False) -> dict:
    """Read and sanity-check a checkpoint written by `save_checkpoint`; problems -> `UserError`.

    `resuming`: the file is a run's own latest checkpoint (the message then says how to go on).
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    ckpt = safe_load(path, map_location, resuming=resuming)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        kind = ckpt.get("kind") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise UserError(f"{path} is not a cwm-train checkpoint (kind {kind!r})")
    if ckpt.get("format") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} has format {ckpt.get('format')!r}; this version "
                        f"reads format {FORMAT_VERSION}")
    return ckpt


def check_compatible(ckpt: dict, cfg: RunConfig, where: str | Path) -> None:
    """The checkpoint must hold the same model kind, preset and model shape as `cfg`."""
    if ckpt["model_kind"] != cfg.model.kind or ckpt["preset"] != cfg.preset:
        raise UserError(
            f"{where} holds a {ckpt['model_kind']} model of preset {ckpt['preset']}, not "
            f"{cfg.model.kind}/{cfg.preset}: pass --model {ckpt['model_kind']} --preset "
            f"{ckpt['preset']} to resume it, or choose another --out")
    saved = RunConfig.from_dict(ckpt["config"]).model
    if saved != cfg.model:
        raise UserError(f"{where} was trained with different model settings; choose another --out")


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def prune_checkpoints(run_dir: str | Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints; remove stray temporaries of killed writers."""
    found = list_checkpoints(run_dir)
    for _, p in found[:-keep] if keep > 0 else []:
        p.unlink(missing_ok=True)
    if checkpoint_dir(run_dir).is_dir():
        remove_stale_tmp(checkpoint_dir(run_dir))


def load_world_model(path: str | Path, device: str | torch.device = "cpu"
                     ) -> tuple[WorldModel, RunConfig, dict]:
    """Rebuild the pre-trained world model from a checkpoint (what the RL stage calls).

    Returns (model in eval mode on `device`, its RunConfig, the raw checkpoint dict).
    """
    ckpt = load_checkpoint(path, map_location=device)
    cfg = RunConfig.from_dict(ckpt["config"])
    model = WorldModel(cfg.model).to(device)
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, ckpt
