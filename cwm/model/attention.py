"""Cross-attention from decoder feature maps to the context encoder's feature map of the same scale.

The poster's conditioning: Q = decoder map X flattened, K = V = context map Z flattened,
R = Attention(Q W_q, K W_k, V W_v), then X <- ReLU(X + BatchNorm(R)). Both token sets carry a
learned positional embedding (zero at initialisation). While training, 75% of the context tokens
are dropped at random independently for every (clip, time) row, so the decoder cannot copy the
context frame pixel by pixel and the latent dynamics must carry what moves.

The parameter layout equals `nn.MultiheadAttention(C, heads)` (4 C^2 + 4 C); the computation is
written out so the key/value projection runs once per clip instead of once per time step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ContextCrossAttention(nn.Module):
    """Fuse a context map into a decoder map of the same channels and resolution.

    forward(x [B*T, C, H, W], context [B, C, H, W]) -> [B*T, C, H, W]
    """

    def __init__(self, channels: int, resolution: int, heads: int = 4, dropout: float = 0.1,
                 token_drop: float = 0.75, token_drop_eval: bool = False):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels {channels} not divisible by {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.token_drop = token_drop
        self.token_drop_eval = token_drop_eval
        tokens = resolution * resolution
        self.q_pos = nn.Parameter(torch.zeros(tokens, channels))
        self.kv_pos = nn.Parameter(torch.zeros(tokens, channels))
        self.q_proj = nn.Linear(channels, channels)
        self.kv_proj = nn.Linear(channels, 2 * channels)
        self.out_proj = nn.Linear(channels, channels)
        self.norm = nn.BatchNorm2d(channels)
        for lin in (self.q_proj, self.kv_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.zeros_(self.out_proj.bias)

    def kept_tokens(self, n_tokens: int) -> int:
        drop = self.token_drop if (self.training or self.token_drop_eval) else 0.0
        return max(1, int(n_tokens * (1.0 - drop)))

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        bt, c, h, w = x.shape
        b = context.shape[0]
        if bt % b:
            raise ValueError(f"decoder rows {bt} are not a multiple of the {b} contexts")
        t = bt // b
        q = self.q_proj(x.flatten(2).transpose(1, 2) + self.q_pos)           # [BT, HW, C]
        kv = self.kv_proj(context.flatten(2).transpose(1, 2) + self.kv_pos)  # [B, N, 2C]
        n = kv.shape[1]
        keep = self.kept_tokens(n)
        rows = torch.arange(bt, device=x.device) // t
        if keep < n:
            # A random subset per row: the first `keep` entries of a random permutation.
            idx = torch.rand(bt, n, device=x.device).argsort(dim=1)[:, :keep]
            kv = kv[rows[:, None], idx]                                       # [BT, keep, 2C]
        else:
            kv = kv[rows]                                                     # [BT, N, 2C]
        k, v = kv.chunk(2, dim=-1)
        split = lambda z: z.unflatten(-1, (self.heads, c // self.heads)).transpose(1, 2)
        r = F.scaled_dot_product_attention(split(q), split(k), split(v),
                                           dropout_p=self.dropout if self.training else 0.0)
        r = self.out_proj(r.transpose(1, 2).flatten(2))                       # [BT, HW, C]
        r = F.dropout(r, self.dropout, self.training)
        r = r.transpose(1, 2).reshape(bt, c, h, w)
        return F.relu(x + self.norm(r))
