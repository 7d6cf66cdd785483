"""Image encoders: the ResNet frame encoder, the context encoder, and DreamerV2's plain CNN.

ResNetEncoder (ContextWM and the plain ResNet world model):
    conv3x3 stride 2 (3 -> d) + ELU, then `stages` x [residual stack -> AvgPool 2]
    with d, 2d, 4d channels: 64 -> 32 -> 16 -> 8 -> 4. Embedding 4d * 4 * 4 (3072 for d = 48).

ContextEncoder: the same architecture with its own weights. It returns the pre-pool map of every
stage, keyed by resolution ({32: [B, d, 32, 32], 16: [B, 2d, 16, 16], 8: [B, 4d, 8, 8]}), which
the decoder cross-attends to. It only runs on the one context frame per clip, never when acting.

ConvEncoder (the `dreamerv2` baseline): four 4x4 stride-2 convs + ELU, d -> 8d channels,
64 -> 31 -> 14 -> 6 -> 2, embedding 32d.

All take float images in [-0.5, 0.5], channels first: [N, 3, 64, 64].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.config import IMAGE_SIZE
from cwm.model.residual import ResidualBlock


class ResNetEncoder(nn.Module):
    """forward(images [N, 3, 64, 64]) -> embedding [N, embed_dim]"""

    def __init__(self, depth: int = 48, stages: int = 3, blocks: int = 2):
        super().__init__()
        self.stem = nn.Conv2d(3, depth, 3, stride=2, padding=1)
        self.stages = nn.ModuleList()
        in_ch = depth
        for i in range(stages):
            out_ch = depth * 2 ** i
            self.stages.append(nn.ModuleList(
                ResidualBlock(in_ch if j == 0 else out_ch, out_ch) for j in range(blocks)))
            in_ch = out_ch
        side = IMAGE_SIZE // 2 ** (stages + 1)
        self.embed_dim = in_ch * side * side

    def feature_maps(self, images: torch.Tensor) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        """(embedding [N, embed_dim], {resolution: pre-pool map [N, C, r, r]})"""
        x = F.elu(self.stem(images))
        maps = {}
        for stage in self.stages:
            for block in stage:
                x = block(x)
            maps[x.shape[-1]] = x
            x = F.avg_pool2d(x, 2)
        return x.flatten(1), maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.feature_maps(images)[0]


class ContextEncoder(ResNetEncoder):
    """forward(context [B, 3, 64, 64]) -> {resolution: map [B, C, r, r]} for r in 32, 16, 8"""

    def forward(self, images: torch.Tensor) -> dict[int, torch.Tensor]:  # type: ignore[override]
        return self.feature_maps(images)[1]


class ConvEncoder(nn.Module):
    """DreamerV2's image encoder. forward(images [N, 3, 64, 64]) -> [N, 32 * depth]"""

    def __init__(self, depth: int = 48, kernels: tuple[int, ...] = (4, 4, 4, 4)):
        super().__init__()
        layers, in_ch = [], 3
        for i, k in enumerate(kernels):
            out_ch = depth * 2 ** i
            layers += [nn.Conv2d(in_ch, out_ch, k, stride=2), nn.ELU()]
            in_ch = out_ch
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.embed_dim = self.net(torch.zeros(1, 3, IMAGE_SIZE, IMAGE_SIZE)).numel()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(1)
