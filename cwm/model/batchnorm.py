"""BatchNorm statistics over the whole batch of a data-parallel job, not each rank's share of it.

Upstream trained on one GPU: its BatchNorms normalised over all 16 clips x 25 frames of a batch.
Under DDP with W ranks each rank holds 16 / W clips, and a plain BatchNorm would normalise over
those alone (2 clips on 8 GPUs). `sync_batchnorm` restores whole-batch statistics:

    CUDA + NCCL       torch.nn.SyncBatchNorm
    otherwise (gloo)  AllReduceBatchNorm2d: per-channel count, sum and sum of squares all-reduced
                      (with autograd, so gradients flow through the global statistics as
                      SyncBatchNorm's do); SyncBatchNorm itself does not run on CPU tensors

Parameters and buffers keep BatchNorm2d's names, so checkpoints stay interchangeable. In eval mode
both use the running statistics and communicate nothing.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.distributed as dist
from torch import nn


class _SumOverRanks(torch.autograd.Function):
    """Sum over the ranks; its gradient is the sum of the ranks' gradients (every rank's loss
    depends on every rank's contribution)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class AllReduceBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are summed over the default process group."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        c = x.shape[1]
        xf = x if x.dtype == torch.float64 else x.float()
        # Moments about a shift every rank shares (the running mean: same start, same updates,
        # and DDP broadcasts buffers), so E[d^2] - E[d]^2 does not cancel when |mean| >> std.
        shift = (self.running_mean.detach().to(xf.dtype) if self.track_running_stats
                 else xf.new_zeros(c))[None, :, None, None]
        d = xf - shift
        local = torch.cat([d.sum(dim=(0, 2, 3)), d.square().sum(dim=(0, 2, 3)),
                           xf.new_full((1,), x.numel() / c)])
        total = _SumOverRanks.apply(local)                 # [2C + 1]
        count = total[-1]
        mean_d = total[:c] / count
        mean = shift[0, :, 0, 0] + mean_d
        var = (total[c:2 * c] / count - mean_d.square()).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                            else self.momentum)
                unbiased = var * count / (count - 1).clamp_min(1)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), momentum)
                self.running_var.lerp_(unbiased.detach().to(self.running_var.dtype), momentum)
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def _replace_batchnorms(module: nn.Module, make: Callable[[nn.BatchNorm2d], nn.Module]) -> int:
    n = 0
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            setattr(module, name, make(child))
            n += 1
        else:
            n += _replace_batchnorms(child, make)
    return n


def _copy_as(cls: type[nn.BatchNorm2d], bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    """A `cls` with the same settings, device, dtype, parameters and statistics as `bn`."""
    like = next(iter(bn.state_dict().values()), None)
    new = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats,
              device=None if like is None else like.device,
              dtype=None if like is None else bn.weight.dtype if bn.affine else like.dtype)
    new.load_state_dict(bn.state_dict())
    new.train(bn.training)
    return new


def sync_batchnorm(model: nn.Module, device: torch.device) -> tuple[int, str]:
    """Make every BatchNorm2d of `model` (in place) use statistics over all ranks.

    Returns (layers converted, one line saying how, or why not). Call after
    `init_process_group` and before wrapping in DDP; a no-op in a single process.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return 0, "single process: BatchNorm statistics are the whole batch's"
    world, backend = dist.get_world_size(), dist.get_backend()
    try:  # the collective the statistics need, on the device they live on
        probe = torch.ones(1, device=device)
        dist.all_reduce(probe)
        if probe.item() != world:
            raise RuntimeError(f"all_reduce gave {probe.item()}, expected {world}")
    except Exception as exc:  # noqa: BLE001  (any failure means: cannot synchronise)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return 0, (f"warning: BatchNorm statistics NOT synchronised across the {world} ranks "
                   f"(each normalises its own share of the batch): {backend} cannot all-reduce "
                   f"on {device.type}: {reason}")
    if device.type == "cuda" and backend == "nccl":
        n = _replace_batchnorms(model, lambda bn: _copy_as(nn.SyncBatchNorm, bn))
        return n, f"BatchNorm: {n} layers synchronised across {world} ranks (SyncBatchNorm)"
    n = _replace_batchnorms(model, lambda bn: _copy_as(AllReduceBatchNorm2d, bn))
    return n, f"BatchNorm: {n} layers synchronised across {world} ranks (all-reduce on {backend})"
