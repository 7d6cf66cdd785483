"""MLP heads on latent features (reward, value, actor trunks for the RL stage).

DreamerV2's head: `layers` x [Linear(units) + ELU], then a linear output.
forward(feat [..., F]) -> [..., out_dim]
"""

from __future__ import annotations

import torch
from torch import nn


class MLPHead(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, layers: int = 4, units: int = 400):
        super().__init__()
        mods, width = [], in_dim
        for _ in range(layers):
            mods += [nn.Linear(width, units), nn.ELU()]
            width = units
        mods.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*mods)

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.net(feat)
