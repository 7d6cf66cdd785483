"""The residual block shared by the ResNet encoder, the context encoder and the ResNet decoder.

    y = ReLU(id(x) + BN(conv3x3(ReLU(BN(conv3x3(x'))))))

where id is a 1x1 conv + BN when the channel count changes, and x' is x itself or, in decoder
blocks that see the context, x after cross-attention fusion (the shortcut keeps the raw x).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.attention import ContextCrossAttention


class ResidualBlock(nn.Module):
    """forward(x [N, C_in, H, W], context [B, C_in, H, W] | None) -> [N, C_out, H, W]"""

    def __init__(self, in_ch: int, out_ch: int, attention: ContextCrossAttention | None = None):
        super().__init__()
        self.attention = attention
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut = nn.Identity() if in_ch == out_ch else nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        z = x
        if self.attention is not None:
            if context is None:
                raise ValueError("this block cross-attends to a context map; none was given")
            z = self.attention(x, context)
        return F.relu(self.shortcut(x) + self.body(z))
