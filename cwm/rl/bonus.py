"""Video-based intrinsic bonus (from APV): novelty of the latent dynamics under a k-NN estimate.

On the action-free posterior features z (`[B, T, F]`), a mean over `window` consecutive steps
smooths per-frame noise so the bonus rewards new *motion* rather than flicker; a fixed Gaussian
random projection brings them to `dim` dimensions; the bonus of a step is its mean distance to
the `k` nearest entries of a FIFO queue of recent projected features, divided by a running mean
of the bonus so its scale stays comparable to the task reward across training.

Two rules (`BonusConfig.rule`, the RL config's `learn.bonus_rule`):

    upstream  APV's `VideoIntrBonus` (wmlib/agents/expl.py) as its fine-tuning runs use it:
              the window looks forward, step t averages z_t .. z_{t+window-1}, so a sequence of
              T steps yields T - window + 1 bonuses, paired with the first T - window + 1
              rewards; the batch joins the queue *before* the search (each step also finds
              itself, at distance 0, among its k neighbours); projection std 1 / dim; the
              normaliser is a running mean of |bonus| that starts at 1.0 and moves with momentum
              0.99 towards each batch's mean *before* that batch is divided by it.
    causal    this project's earlier rule: the window trails (step t averages z_{t-window+1} ..
              z_t, the first step repeated as padding), so every step gets a bonus; the search
              runs against the queue as it was before the batch, then the batch joins; the
              running mean starts at the first batch's mean; projection std 1 / sqrt(dim).
              It gives each step a bonus from the motion that led to it, never from the future.

All state (projection, queue, running mean) lives in buffers, so it is saved with the agent's
checkpoint and a resumed run continues with the same queue.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cwm.rl.config import BONUS_RULES as RULES, BonusConfig

class KNNBonus(nn.Module):
    def __init__(self, feat_dim: int, cfg: BonusConfig | None = None, seed: int = 0):
        super().__init__()
        self.cfg = cfg = cfg or BonusConfig()
        if cfg.rule not in RULES:
            raise ValueError(f"bonus rule must be one of {RULES}, got {cfg.rule!r}")
        gen = torch.Generator().manual_seed(seed)
        # A random projection roughly preserves pairwise distances (Johnson-Lindenstrauss); its
        # scale cancels in the normalised bonus.
        scale = 1.0 / cfg.dim if cfg.rule == "upstream" else cfg.dim**-0.5
        proj = torch.randn(feat_dim, cfg.dim, generator=gen) * scale
        self.register_buffer("proj", proj)
        self.register_buffer("queue", torch.zeros(cfg.queue_size, cfg.dim))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long))
        self.register_buffer("running_mean", torch.ones((), dtype=torch.float64))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def length(self, steps: int) -> int:
        """How many of `steps` sequence steps get a bonus (the first ones)."""
        return steps - self.cfg.window + 1 if self.cfg.rule == "upstream" else steps

    def embed(self, feat: torch.Tensor) -> torch.Tensor:
        """[B, T, F] -> [B, length(T), dim]: the window mean (see the module docstring), projected."""
        w = self.cfg.window
        x = feat.detach().float().transpose(1, 2)  # [B, F, T]
        if self.cfg.rule == "causal":
            # Left padding with the first step keeps it causal and the length unchanged.
            x = torch.cat([x[..., :1].expand(*x.shape[:2], w - 1), x], dim=-1)
        if x.shape[-1] < w:
            raise ValueError(f"the {self.cfg.rule} bonus needs sequences of at least {w} steps")
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

    def _knn(self, flat: torch.Tensor) -> torch.Tensor:
        n = int(self.filled)
        # Before the queue holds anything, compare the batch with itself.
        memory = self.queue[:n] if n > 0 else flat
        k = min(self.cfg.k, memory.shape[0])
        # The upstream rule finds each step itself among its neighbours: the matrix-product form
        # of cdist would put it at ~sqrt(float eps) x |x| instead of 0 (measured 0.016 on features
        # of norm ~34), so distances are taken directly (slower, exact like upstream's norm).
        mode = ("donot_use_mm_for_euclid_dist" if self.cfg.rule == "upstream"
                else "use_mm_for_euclid_dist_if_necessary")
        dist = torch.cdist(flat, memory, compute_mode=mode)
        return dist.topk(k, dim=-1, largest=False).values.mean(-1)

    @torch.no_grad()
    def forward(self, feat: torch.Tensor, update: bool = True) -> torch.Tensor:
        """Bonus `[B, length(T)]` for features `[B, T, F]`; with `update`, the steps join the
        queue and move the running mean."""
        emb = self.embed(feat)
        flat = emb.reshape(-1, emb.shape[-1])
        m = self.cfg.momentum
        if self.cfg.rule == "upstream":
            if update:
                self._enqueue(flat)
            knn = self._knn(flat)
            if update:
                # Upstream's StreamNorm: mag <- m * mag + (1 - m) * mean |x|, then x / (mag + eps).
                self.running_mean.mul_(m).add_((1 - m) * knn.abs().mean().double())
            reward = knn / (self.running_mean.float() + 1e-8)
        else:
            knn = self._knn(flat)
            if update:
                batch_mean = knn.mean().double()
                if bool(self.initialised):
                    self.running_mean.mul_(m).add_((1 - m) * batch_mean)
                else:
                    self.running_mean.copy_(batch_mean.clamp_min(1e-8))
                    self.initialised.fill_(True)
                self._enqueue(flat)
            reward = knn / self.running_mean.float().clamp_min(1e-8)
        return reward.reshape(emb.shape[:2])
