"""Random actions for the prefill: uniform in [-1, 1], optionally held for several steps.

A fresh uniform action every step (the paper's protocol, `prefill_hold` 1) averages out within a
few steps, so the prefill shows the world model little large motion: a cart that stays near the
middle, a pole that barely swings. Holding each random action for a geometric number of steps
with mean `hold` (each env independently) turns the same budget into sustained pushes, swings
and hits on the end stops, i.e. the consequences of actions the model has to learn first.
"""

from __future__ import annotations

import numpy as np


class PrefillActions:
    """`next()` -> float32 [n, action_dim] in [-1, 1], drawn from `rng` (the run's own generator).

    With hold 1 every call is one `rng.uniform` draw, exactly the plain uniform prefill. The
    held actions are not part of a checkpoint: a run resumed inside its prefill draws new ones.
    """

    def __init__(self, n: int, action_dim: int, hold: float, rng: np.random.Generator):
        if hold < 1:
            raise ValueError(f"hold must be at least 1, got {hold}")
        self.n, self.action_dim, self.hold, self.rng = n, action_dim, hold, rng
        self._held: np.ndarray | None = None

    def next(self) -> np.ndarray:
        fresh = self.rng.uniform(-1, 1, (self.n, self.action_dim)).astype(np.float32)
        if self.hold == 1 or self._held is None:
            self._held = fresh
        else:
            change = self.rng.random(self.n) < 1.0 / self.hold
            self._held = np.where(change[:, None], fresh, self._held)
        return self._held
