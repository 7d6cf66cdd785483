"""Open-loop evaluation without a look at the future: observe, imagine, score each horizon step.

Protocol (used by `cwm-train predict`, the training pictures and experiments/pretrain_compare):

    clip        uint8 [B, T, 64, 64, 3]; the model observes frames 0..observe-1, imagines the rest
    context     one of the *observed* frames, uniformly at random per clip (ContextWM's context
                must not be a frame the model is asked to predict: with the whole window as the
                pool, ~80% of the time it would be one of them, and ContextWM would see the answer)
    latents     sampled from the posterior and the prior, as upstream's video prediction does;
                `sample=False` takes the mode instead
    scores      per frame t of the window: MSE (images in [0, 1]), PSNR in dB and SSIM (Gaussian
                window 11, sigma 1.5, K1 0.01, K2 0.03, data range 1, valid region, mean over
                channels), each [B, T]; frames t < observe are reconstructions, t >= observe the
                open-loop horizon t - observe + 1

Randomness (context index, latent samples) comes from `seed` inside a forked RNG, so an
evaluation is repeatable and leaves the caller's random stream (e.g. a training run's) untouched.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cwm.model.world_model import WorldModel, to_uint8_images

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def observed_context(frames: torch.Tensor, observe: int,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """frames [B, T, H, W, 3] -> (context [B, H, W, 3], index [B] in [0, observe))"""
    if not 1 <= observe <= frames.shape[1]:
        raise ValueError(f"observe must be in [1, {frames.shape[1]}], got {observe}")
    index = torch.randint(0, observe, (frames.shape[0],), generator=generator)
    index = index.to(frames.device)
    return frames[torch.arange(frames.shape[0], device=frames.device), index], index


def _as_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float64 [..., 3, H, W] in [0, 1]"""
    return (images.double() / 255.0).movedim(-1, -3)


def _gaussian_window(device: torch.device) -> torch.Tensor:
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-x.square() / (2 * SSIM_SIGMA ** 2))
    g = g / g.sum()
    return torch.outer(g, g)


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Structural similarity of float images [N, C, H, W] in [0, 1] -> [N] (mean over channels)."""
    n, c, h, w = a.shape
    win = _gaussian_window(a.device).to(a.dtype).expand(c, 1, SSIM_WINDOW, SSIM_WINDOW)
    blur = lambda x: F.conv2d(x, win, groups=c)  # noqa: E731  (valid region only)
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a.square()
    var_b = blur(b * b) - mu_b.square()
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
         / ((mu_a.square() + mu_b.square() + c1) * (var_a + var_b + c2)))
    return s.mean(dim=(1, 2, 3))


def frame_scores(truth: torch.Tensor, pred: torch.Tensor) -> dict[str, torch.Tensor]:
    """truth, pred uint8 [B, T, H, W, 3] -> {"mse", "psnr", "ssim"}: float64 [B, T] each.

    PSNR of a perfect frame is infinite; it is capped at 100 dB so averages stay finite.
    """
    a, b = _as_unit(truth), _as_unit(pred)
    mse = (a - b).square().mean(dim=(-3, -2, -1))
    psnr = (10 * torch.log10(1.0 / mse.clamp_min(1e-10))).clamp_max(100.0)
    s = ssim(a.flatten(0, 1), b.flatten(0, 1)).reshape(mse.shape)
    return {"mse": mse, "psnr": psnr, "ssim": s}


@dataclass
class OpenLoopResult:
    pred: torch.Tensor            # uint8 [B, T, 64, 64, 3] (reconstructions, then imagination)
    context: torch.Tensor         # uint8 [B, 64, 64, 3], the frame each clip was decoded with
    context_index: torch.Tensor   # long [B], < observe
    scores: dict[str, torch.Tensor]  # {"mse", "psnr", "ssim"}: float64 [B, T]
    observe: int

    def per_step(self) -> dict[str, list[float]]:
        """Mean over clips of each score, one value per frame of the window."""
        return {k: v.mean(0).tolist() for k, v in self.scores.items()}

    def summary(self) -> dict:
        """Per-frame means plus the means over the observed and the imagined frames."""
        out: dict = {"clips": int(self.pred.shape[0]), "observe": self.observe,
                     "per_step": self.per_step()}
        for k, v in self.scores.items():
            out[f"{k}_observed"] = float(v[:, :self.observe].mean())
            if v.shape[1] > self.observe:
                out[f"{k}_imagined"] = float(v[:, self.observe:].mean())
        return out


@torch.no_grad()
def evaluate_open_loop(model: WorldModel, frames: torch.Tensor, observe: int, *,
                       sample: bool = True, seed: int = 0) -> OpenLoopResult:
    """Open-loop prediction of uint8 clips [B, T, 64, 64, 3] (on the model's device) under the
    protocol of this module. The model is put in eval mode for the call and restored after."""
    if not 1 <= observe < frames.shape[1]:
        raise ValueError(f"observe must be in [1, {frames.shape[1] - 1}], got {observe}")
    devices = [frames.device.index or 0] if frames.device.type == "cuda" else []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            gen = torch.Generator().manual_seed(seed)
            context, index = observed_context(frames, observe, gen)
            pred = to_uint8_images(model.open_loop(frames, context, observe, sample=sample))
    finally:
        model.train(was_training)
    scores = {k: v.cpu() for k, v in frame_scores(frames, pred).items()}
    return OpenLoopResult(pred=pred, context=context, context_index=index.cpu(), scores=scores,
                          observe=observe)
