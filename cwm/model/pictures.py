"""What the model learned, as pictures (the poster's qualitative analysis).

Open-loop prediction (`predict-<tag>.png` / `.gif`): for each clip three rows, truth |
prediction | error, one column per time step. The first `observe` frames are reconstructions
from the posterior (grey frame), the rest are imagined from the prior alone (red frame); the
context frame is one of the observed frames (`cwm.model.evaluation`).

Compositional decoding (`compose-<tag>.png` / `.gif`): the dynamics (posterior latents) of clip A
decoded with the context frame of clip B, for every A (rows) x B (columns). The top row shows the
context frames, the left column the true frames of each A. A model that separates context from
dynamics draws A's motion in B's scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cwm.atomic import atomic_path
from cwm.model.evaluation import evaluate_open_loop
from cwm.model.world_model import WorldModel, to_uint8_images

GREY = (128, 128, 128)
RED = (220, 40, 40)
WHITE = (255, 255, 255)


def _tile(img: np.ndarray, color: tuple[int, int, int]) -> np.ndarray:
    """[H, W, 3] -> [H+2, W+2, 3] with a 1-pixel border."""
    out = np.empty((img.shape[0] + 2, img.shape[1] + 2, 3), np.uint8)
    out[:] = color
    out[1:-1, 1:-1] = img
    return out


def _error(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Absolute error, amplified x2 so small errors show."""
    return np.clip(np.abs(truth.astype(np.int16) - pred.astype(np.int16)) * 2, 0, 255).astype(np.uint8)


def prediction_strip(truth: np.ndarray, pred: np.ndarray, observe: int) -> np.ndarray:
    """truth, pred uint8 [N, T, H, W, 3] -> one image: per clip rows truth | prediction | error."""
    rows = []
    for clip_truth, clip_pred in zip(truth, pred):
        err = _error(clip_truth, clip_pred)
        rows.append(np.concatenate([_tile(f, GREY) for f in clip_truth], 1))
        rows.append(np.concatenate([_tile(f, GREY if t < observe else RED)
                                    for t, f in enumerate(clip_pred)], 1))
        rows.append(np.concatenate([_tile(f, WHITE) for f in err], 1))
    return np.concatenate(rows, 0)


def prediction_frames(truth: np.ndarray, pred: np.ndarray, observe: int) -> np.ndarray:
    """GIF frames [T, 3*(H+2), N*(W+2), 3]: clips side by side, truth / prediction / error stacked."""
    frames = []
    for t in range(truth.shape[1]):
        cols = [np.concatenate([_tile(tr[t], GREY), _tile(pr[t], GREY if t < observe else RED),
                                _tile(_error(tr[t], pr[t]), WHITE)], 0)
                for tr, pr in zip(truth, pred)]
        frames.append(np.concatenate(cols, 1))
    return np.stack(frames)


def composition_frames(frames: np.ndarray, contexts: np.ndarray, composed: np.ndarray) -> np.ndarray:
    """frames [A, T, H, W, 3], contexts [C, H, W, 3], composed [A, C, T, H, W, 3] -> [T, (A+1)(H+2), (C+1)(W+2), 3]"""
    blank = np.full_like(contexts[0], 255)
    out = []
    for t in range(frames.shape[1]):
        header = [_tile(blank, WHITE)] + [_tile(c, GREY) for c in contexts]
        rows = [np.concatenate(header, 1)]
        for a in range(frames.shape[0]):
            cells = [_tile(frames[a, t], GREY)] + [_tile(composed[a, c, t], RED)
                                                   for c in range(contexts.shape[0])]
            rows.append(np.concatenate(cells, 1))
        out.append(np.concatenate(rows, 0))
    return np.stack(out)


def save_png(path: str | Path, image: np.ndarray, scale: int = 1) -> Path:
    img = Image.fromarray(image)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)


PALETTE_FRAMES = 32   # evenly spaced frames a GIF's one palette is built from


def shared_palette(frames: np.ndarray) -> Image.Image:
    """One 256-colour palette image for all of uint8 [T, H, W, 3] `frames`: a median cut of up
    to PALETTE_FRAMES evenly spaced frames stacked into one picture (first and last included)."""
    picks = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), PALETTE_FRAMES)).round())
    stacked = np.concatenate([frames[int(i)] for i in picks], axis=0)
    return Image.fromarray(stacked).quantize(256, method=Image.Quantize.MEDIANCUT)


def save_gif(path: str | Path, frames: np.ndarray, fps: float = 5.0) -> Path:
    """A looping GIF of uint8 [T, H, W, 3] frames at `fps`, written atomically.

    All frames share one palette (`shared_palette`) and are mapped onto it without dithering:
    a table look-up per pixel instead of a palette search per frame, which made a 500-frame
    evaluation GIF of the RL loop 13x cheaper (bench/RESULTS.md, "rl loop"). Colours outside
    the sampled frames take their nearest palette colour. A fixed camera over one scene, the
    case of every GIF here, loses next to nothing; a sequence of ever-changing colours loses
    about twice what a palette per frame would (tests/model/test_pictures.py).
    """
    frames = np.asarray(frames)
    palette = shared_palette(frames)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE)
              for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], loop=0,
                       duration=max(20, round(1000 / fps)))
    return Path(path)


@torch.no_grad()
def render_composition(model: WorldModel, frames: torch.Tensor, contexts: torch.Tensor) -> np.ndarray:
    """uint8 [A, T, ...] clips, [C, 64, 64, 3] contexts -> composed uint8 [A, C, T, 64, 64, 3]"""
    was_training = model.training
    model.eval()
    try:
        return to_uint8_images(model.compose(frames, contexts)).cpu().numpy()
    finally:
        model.train(was_training)


def write_pictures(model: WorldModel, frames: torch.Tensor, out_dir: str | Path, tag: str,
                   observe: int = 5, max_clips: int = 4, *, sample: bool = True,
                   seed: int = 0) -> list[Path]:
    """Open-loop prediction strip + compositional grid of up to `max_clips` clips, as PNG and GIF.

    frames uint8 [B, T, 64, 64, 3] on the model's device. The prediction follows the protocol of
    `cwm.model.evaluation` (context drawn from the observed frames, latents sampled unless
    `sample` is False); the grid decodes every clip's dynamics with each clip's same context frame.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = min(max_clips, frames.shape[0])
    frames = frames[:n]
    observe = min(observe, frames.shape[1] - 1)
    result = evaluate_open_loop(model, frames, observe, sample=sample, seed=seed)
    truth, pred = frames.cpu().numpy(), result.pred.cpu().numpy()
    paths = [
        save_png(out_dir / f"predict-{tag}.png", prediction_strip(truth, pred, observe)),
        save_gif(out_dir / f"predict-{tag}.gif", prediction_frames(truth, pred, observe)),
    ]
    composed = render_composition(model, frames, result.context)
    grid = composition_frames(truth, result.context.cpu().numpy(), composed)
    paths.append(save_png(out_dir / f"compose-{tag}.png", grid[grid.shape[0] // 2]))
    paths.append(save_gif(out_dir / f"compose-{tag}.gif", grid))
    return paths
