"""Video-based intrinsic bonus (from APV): novelty of the latent dynamics under a k-NN estimate.

On the action-free posterior features z (`[B, T, F]`), a sliding mean over `window` steps smooths
per-frame noise so the bonus rewards new *motion* rather than flicker; a fixed Gaussian random
projection brings them to `dim` dimensions; the bonus of each step is its mean distance to the
`k` nearest entries of a FIFO queue of recent projected features, divided by a running mean of
the bonus so its scale stays comparable to the task reward across training.

All state (projection, queue, running mean) lives in buffers, so it is saved with the agent's
checkpoint and a resumed run continues with the same queue.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class BonusConfig:
    window: int = 5
    dim: int = 128
    queue_size: int = 4096
    k: int = 16
    momentum: float = 0.99


class KNNBonus(nn.Module):
    def __init__(self, feat_dim: int, cfg: BonusConfig | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg = cfg or BonusConfig()
        gen = torch.Generator().manual_seed(seed)
        # A random projection roughly preserves pairwise distances (Johnson-Lindenstrauss).
        proj = torch.randn(feat_dim, cfg.dim, generator=gen) / cfg.dim**0.5
        self.register_buffer("proj", proj)
        self.register_buffer("queue", torch.zeros(cfg.queue_size, cfg.dim))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.ones(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def embed(self, feat: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, T, dim]: causal sliding mean over `window` steps, then projection."""
        w = self.cfg.window
        x = feat.detach().float().transpose(1, 2)  # [B, F, T]
        # Left padding with the first step keeps it causal and the length unchanged.
        x = torch.cat([x[..., :1].expand(*x.shape[:2], w - 1), x], dim=-1)
        x = F.avg_pool1d(x, kernel_size=w, stride=1).transpose(1, 2)
        return x @ self.proj

    def _enqueue(self, emb: torch.Tensor) -> None:
        n = emb.shape[0]
        size = self.cfg.queue_size
        if n >= size:
            self.queue.copy_(emb[-size:])
            self.cursor.zero_()
            self.filled.fill_(size)
            return
        idx = (self.cursor + torch.arange(n, device=emb.device)) % size
        self.queue[idx] = emb
        self.cursor.copy_((self.cursor + n) % size)
        self.filled.copy_(torch.clamp(self.filled + n, max=size))

    @torch.no_grad()
    def forward(self, feat: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Bonus `[B, T]` for features `[B, T, F]`; with `update`, the steps join the queue."""
        emb = self.embed(feat)
        flat = emb.reshape(-1, emb.shape[-1])
        n = int(self.filled)
        # Before the queue holds anything, compare the batch with itself.
        memory = self.queue[:n] if n > 0 else flat
        k = min(self.cfg.k, memory.shape[0])
        dist = torch.cdist(flat, memory)
        knn = dist.topk(k, dim=-1, largest=False).values.mean(-1)
        if update:
            batch_mean = knn.mean()
            if bool(self.initialised):
                m = self.cfg.momentum
                self.running_mean.mul_(m).add_((1 - m) * batch_mean)
            else:
                self.running_mean.copy_(batch_mean.clamp_min(1e-8))
                self.initialised.fill_(True)
            self._enqueue(flat)
        reward = knn / self.running_mean.clamp_min(1e-8)
        return reward.reshape(emb.shape[:2])
