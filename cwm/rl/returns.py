"""Scale-free rewards and returns for small CPU budgets (DreamerV3's two devices, as options).

Both are off in the paper presets (upstream's DreamerV2 has neither); the `--set` keys that turn
them on are `learn.reward_transform=symlog` and `behavior.return_norm=percentile`.

- `symlog` / `symexp`: the reward head regresses symlog(r) and the imagined reward is symexp of
  its output, so a few large rewards do not dominate the head's squared error while small ones
  still get resolution near zero. symexp(symlog(x)) == x.
- `ReturnScale`: the actor's dynamics-backprop objective divided by S = max(1, EMA of the
  range between the 5th and 95th percentile of the lambda-returns). Returns of a task whose
  rewards are all ~1 per step (DMC) reach ~100 at discount 0.99: without the division the
  actor's gradient is that large from the first update, before the world model has learned
  what actions do. Dividing by a range that is never below 1 leaves small returns unscaled.
"""

from __future__ import annotations

import torch
from torch import nn


def symlog(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.log1p(x.abs())


def symexp(x: torch.Tensor) -> torch.Tensor:
    return torch.sign(x) * torch.expm1(x.abs())


class ReturnScale(nn.Module):
    """A running scale of lambda-returns: `update(returns)` folds in one batch and gives S.

    The running range is a buffer, so it is saved with the actor-critic and a resumed run
    continues from it. The first batch sets it outright (no pull towards an arbitrary start).
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95):
        super().__init__()
        self.decay, self.low, self.high = decay, low, high
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("seen", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def update(self, returns: torch.Tensor) -> torch.Tensor:
        flat = returns.detach().float().flatten()
        q = torch.quantile(flat, torch.tensor([self.low, self.high], device=flat.device))
        batch_range = q[1] - q[0]
        if bool(self.seen):
            self.range.mul_(self.decay).add_((1 - self.decay) * batch_range)
        else:
            self.range.copy_(batch_range)
            self.seen.fill_(True)
        return self.scale()

    def scale(self) -> torch.Tensor:
        return self.range.clamp_min(1.0)
