"""Recurrent state-space model (DreamerV2 style) with a categorical latent.

State (`RSSMState`): logits [..., S, K], stoch one-hot [..., S, K], deter [..., D].
Feature = [stoch flattened, deter]: [..., S*K + D] (2048 for the paper sizes).

    prior:     h_t = GRU(h_{t-1}, ELU(Linear([z_{t-1}, a_{t-1}])))
               p(z_t | h_t) = Cat(Linear(ELU(Linear(h_t))))
    posterior: q(z_t | h_t, e_t) = Cat(Linear(ELU(Linear([h_t, e_t]))))

The same class serves both latents of ContextWM:
  - z_t, action-free, pre-trained on video: `observe(embed)` with `action=None` (zeros of width
    `action_dim`; the weights of that part exist so the layout matches upstream and stay unused);
  - s_t, action-conditional, stacked on z for RL: `embed_dim` = the z feature width (or
    embedding + z feature), actions padded to `action_dim` with `pad_action`.

Sequence convention (DreamerV2): `action[:, t]` is the action taken *before* observation t, and
`is_first[:, t]` resets the state to the initial one before step t.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from cwm.model.distributions import onehot_sample, unimix_logits


class RSSMState(NamedTuple):
    logits: torch.Tensor   # [..., S, K]
    stoch: torch.Tensor    # [..., S, K] one-hot (straight-through)
    deter: torch.Tensor    # [..., D]

    def feature(self) -> torch.Tensor:
        """[..., S*K + D]"""
        return torch.cat([self.stoch.flatten(-2), self.deter], -1)


def stack_states(states: list[RSSMState], dim: int = 1) -> RSSMState:
    return RSSMState(*(torch.stack(parts, dim) for parts in zip(*states)))


def pad_action(action: torch.Tensor, width: int) -> torch.Tensor:
    """Zero-pad the last dimension of `action` to `width` (one checkpoint serves every task)."""
    if action.shape[-1] > width:
        raise ValueError(f"action has {action.shape[-1]} dims, more than the model's {width}")
    return F.pad(action, (0, width - action.shape[-1]))


class LayerNormGRUCell(nn.Module):
    """GRU cell with LayerNorm on the gate pre-activations and the update gate biased closed (-1).

    forward(x [N, I], h [N, D]) -> h' [N, D]
    """

    def __init__(self, input_size: int, size: int, update_bias: float = -1.0):
        super().__init__()
        self.linear = nn.Linear(input_size + size, 3 * size)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)
        self.update_bias = update_bias

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        reset, cand, update = self.norm(self.linear(torch.cat([x, h], -1))).chunk(3, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h


class RSSM(nn.Module):
    def __init__(self, embed_dim: int, *, deter: int = 1024, hidden: int = 1024, stoch: int = 32,
                 classes: int = 32, action_dim: int = 50, unimix: float = 0.0):
        super().__init__()
        self.embed_dim, self.deter, self.hidden = embed_dim, deter, hidden
        # Share of a uniform distribution mixed into the prior's and posterior's categoricals
        # (0: DreamerV2's, the paper's; DreamerV3 uses 0.01). It holds no weights, so a
        # checkpoint loads under any value.
        self.unimix = unimix
        self.stoch, self.classes, self.action_dim = stoch, classes, action_dim
        self.img_in = nn.Linear(stoch * classes + action_dim, hidden)
        self.cell = LayerNormGRUCell(hidden, deter)
        self.img_out = nn.Linear(deter, hidden)
        self.img_logits = nn.Linear(hidden, stoch * classes)
        self.obs_out = nn.Linear(deter + embed_dim, hidden)
        self.obs_logits = nn.Linear(hidden, stoch * classes)

    @property
    def feat_dim(self) -> int:
        return self.stoch * self.classes + self.deter

    def initial(self, batch: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32) -> RSSMState:
        z = torch.zeros(batch, self.stoch, self.classes, device=device, dtype=dtype)
        return RSSMState(z, z, torch.zeros(batch, self.deter, device=device, dtype=dtype))

    # -- single steps ---------------------------------------------------------------------------

    def _recur(self, prev: RSSMState, action: torch.Tensor | None) -> torch.Tensor:
        """h_t from (z_{t-1}, a_{t-1}, h_{t-1}): [N, D]"""
        stoch = prev.stoch.flatten(-2).to(self.img_in.weight.dtype)
        if action is None:
            # Zero actions contribute nothing: use only the stoch columns of the input layer.
            x = F.linear(stoch, self.img_in.weight[:, :stoch.shape[-1]], self.img_in.bias)
        else:
            x = self.img_in(torch.cat([stoch, pad_action(action, self.action_dim).to(stoch.dtype)], -1))
        return self.cell(F.elu(x), prev.deter)

    def prior_logits(self, deter: torch.Tensor) -> torch.Tensor:
        """[..., D] -> [..., S, K]"""
        return self._logits(self.img_logits(F.elu(self.img_out(deter))))

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        """A logits layer's output [..., S*K] -> the latent's logits [..., S, K] (mixed)."""
        return unimix_logits(x.unflatten(-1, (self.stoch, self.classes)), self.unimix)

    def img_step(self, prev: RSSMState, action: torch.Tensor | None = None,
                 sample: bool = True) -> RSSMState:
        """One prior step (imagination): [N, ...] state, action [N, A<=action_dim] | None."""
        deter = self._recur(prev, action)
        logits = self.prior_logits(deter)
        return RSSMState(logits, onehot_sample(logits, sample), deter)

    def obs_step(self, prev: RSSMState, action: torch.Tensor | None, embed: torch.Tensor,
                 is_first: torch.Tensor | None = None, sample: bool = True
                 ) -> tuple[RSSMState, RSSMState]:
        """One filtering step: (posterior, prior) given embed [N, E]."""
        prev, action = self._reset(prev, action, is_first)
        prior = self.img_step(prev, action, sample)
        logits = self._logits(self.obs_logits(F.elu(self.obs_out(
            torch.cat([prior.deter, embed.to(prior.deter.dtype)], -1)))))
        return RSSMState(logits, onehot_sample(logits, sample), prior.deter), prior

    def _reset(self, prev: RSSMState, action: torch.Tensor | None, is_first: torch.Tensor | None):
        if is_first is None:
            return prev, action
        keep = 1.0 - is_first.to(prev.deter.dtype)
        prev = RSSMState(*(x * keep.reshape(-1, *([1] * (x.dim() - 1))) for x in prev))
        if action is not None:
            action = action * keep[:, None].to(action.dtype)
        return prev, action

    # -- sequences ------------------------------------------------------------------------------

    def observe(self, embed: torch.Tensor, action: torch.Tensor | None = None,
                is_first: torch.Tensor | None = None, state: RSSMState | None = None,
                sample: bool = True) -> tuple[RSSMState, RSSMState]:
        """Filter a sequence: embed [B, T, E], action [B, T, A] | None, is_first [B, T] | None.

        Returns (posterior, prior), each an `RSSMState` of [B, T, ...] tensors. The prior's
        `stoch` is the posterior's (only its logits matter for the KL; imagination uses
        `img_step`/`imagine`).
        """
        b, t = embed.shape[:2]
        if state is None:
            state = self.initial(b, embed.device, self.obs_out.weight.dtype)
        # The embedding half of the posterior layer does not depend on the recurrence: do it once
        # for the whole sequence, one large matmul instead of T small ones.
        w_deter, w_embed = self.obs_out.weight.split([self.deter, self.embed_dim], 1)
        embed_part = F.linear(embed, w_embed, self.obs_out.bias)      # [B, T, H]
        logits_seq, stoch_seq, deter_seq = [], [], []
        for i in range(t):
            prev, act = self._reset(state, None if action is None else action[:, i],
                                    None if is_first is None else is_first[:, i])
            deter = self._recur(prev, act)
            logits = self._logits(self.obs_logits(F.elu(embed_part[:, i] + F.linear(deter, w_deter))))
            state = RSSMState(logits, onehot_sample(logits, sample), deter)
            logits_seq.append(logits)
            stoch_seq.append(state.stoch)
            deter_seq.append(deter)
        post = RSSMState(torch.stack(logits_seq, 1), torch.stack(stoch_seq, 1),
                         torch.stack(deter_seq, 1))
        prior = RSSMState(self.prior_logits(post.deter), post.stoch, post.deter)
        return post, prior

    def imagine(self, state: RSSMState, steps: int, action: torch.Tensor | None = None,
                sample: bool = True) -> RSSMState:
        """Roll the prior forward from `state` [B, ...]: action [B, steps, A] | None -> [B, steps, ...]"""
        out = []
        for i in range(steps):
            state = self.img_step(state, None if action is None else action[:, i], sample)
            out.append(state)
        return stack_states(out, 1)
