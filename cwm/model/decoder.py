"""Image decoders: the ResNet decoder (optionally contextualized) and DreamerV2's plain CNN.

ResNetDecoder:
    Linear(feat -> 4d * 4 * 4) -> [4d, 4, 4]; `stages` x [nearest upsample x2 -> residual stack]
    where a stack at C input channels is (C -> C) x (blocks - 1) then (C -> C/2):
    4d @8x8 -> 2d @16x16 -> d @32x32 -> d/2; ConvTranspose(d/2 -> 3, k3, s2, p1, op1) -> 64x64.
    With `context_channels`, the first block of every stage whose resolution is in
    `attn_resolutions` (8 and 16 upstream) cross-attends to the context map of that resolution
    (`ContextCrossAttention`); without it this is the plain ResNet world model's decoder.

ConvDecoder (`dreamerv2` baseline): Linear(feat -> 32d) -> [32d, 1, 1] -> ConvTranspose k5, k5,
k6, k6 stride 2 (+ ELU between): 1 -> 5 -> 13 -> 30 -> 64. On the fast paths the first layer
runs as a matrix product and the narrow ones (<= 8 output channels) in sub-pixel form
(`cwm.model.transposed`).

Both: forward(feat [B, T, F], context maps {r: [B, C, r, r]} | None) -> mean [B, T, 3, 64, 64],
the mean of a unit-variance Gaussian over the pixels in [-0.5, 0.5].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.attention import ContextCrossAttention
from cwm.model.config import IMAGE_SIZE
from cwm.model.residual import ResidualBlock
from cwm.model.transposed import ConvTranspose2d


class ResNetDecoder(nn.Module):
    # Layout of the first map; `cwm.model.fast` sets channels-last so every conv runs NHWC.
    memory_format = torch.contiguous_format

    def __init__(self, feat_dim: int, depth: int = 48, stages: int = 3, blocks: int = 2,
                 context: bool = False, attn_resolutions: tuple[int, ...] = (8, 16),
                 heads: int = 4, dropout: float = 0.1, token_drop: float = 0.75,
                 token_drop_eval: bool = False):
        super().__init__()
        self.side = IMAGE_SIZE // 2 ** (stages + 1)
        self.top_ch = depth * 2 ** (stages - 1)
        self.linear = nn.Linear(feat_dim, self.top_ch * self.side * self.side)
        self.stages = nn.ModuleList()
        ch, res = self.top_ch, self.side
        for _ in range(stages):
            res *= 2
            stage = nn.ModuleList()
            for j in range(blocks):
                attn = None
                if context and j == 0 and res in attn_resolutions:
                    attn = ContextCrossAttention(ch, res, heads, dropout, token_drop, token_drop_eval)
                stage.append(ResidualBlock(ch, ch // 2 if j == blocks - 1 else ch, attn))
            self.stages.append(stage)
            ch //= 2
        self.out = nn.ConvTranspose2d(ch, 3, 3, stride=2, padding=1, output_padding=1)

    @property
    def context_resolutions(self) -> tuple[int, ...]:
        return tuple(self.side * 2 ** (i + 1) for i, stage in enumerate(self.stages)
                     if stage[0].attention is not None)

    def forward(self, feat: torch.Tensor,
                context: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1]))
        x = x.reshape(-1, self.top_ch, self.side, self.side).contiguous(
            memory_format=self.memory_format)
        for stage in self.stages:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            for block in stage:
                ctx = None
                if block.attention is not None:
                    if context is None:
                        raise ValueError("the contextualized decoder needs the context maps")
                    ctx = context[x.shape[-1]]
                x = block(x, ctx)
        x = self.out(x)
        return x.reshape(*lead, *x.shape[1:])


class ConvDecoder(nn.Module):
    def __init__(self, feat_dim: int, depth: int = 48, kernels: tuple[int, ...] = (5, 5, 6, 6)):
        super().__init__()
        self.top_ch = 32 * depth
        self.linear = nn.Linear(feat_dim, self.top_ch)
        layers, in_ch = [], self.top_ch
        for i, k in enumerate(kernels):
            last = i == len(kernels) - 1
            out_ch = 3 if last else depth * 2 ** (len(kernels) - i - 2)
            layers.append(ConvTranspose2d(in_ch, out_ch, k, stride=2))
            if not last:
                layers.append(nn.ELU())
            in_ch = out_ch
        self.net = nn.Sequential(*layers)

    def forward(self, feat: torch.Tensor, context: dict | None = None) -> torch.Tensor:
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, self.top_ch, 1, 1)
        x = self.net(x)
        return x.reshape(*lead, *x.shape[1:])
