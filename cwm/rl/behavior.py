"""DreamerV2's actor-critic, learned in imagination on the action-conditional latent s_t only.

From a batch of posterior states s (detached), the actor rolls the s-RSSM prior forward
`horizon` steps. Rewards come from the behavioural reward head (r + lambda * r_int), values from
a slow copy of the critic. The actor maximises lambda-returns by backpropagating through the
learned dynamics ("dynamics backprop") plus a small entropy bonus; the critic regresses the
same lambda-returns. The slow critic is a copy of the critic refreshed every
`slow_critic_every` updates.

Shapes: features [N, F] at the start, imagined trajectories time-major [H + 1, N, ...] (the
start state first), actions [N, A] in [-1, 1].
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Callable, Iterator

import torch
from torch import nn
from torch.profiler import record_function

from cwm.model.heads import MLPHead
from cwm.model.rssm import RSSM, RSSMState
from cwm.rl.config import BehaviorConfig
from cwm.rl.optim import adam, set_fused
from cwm.rl.returns import ReturnScale

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class TruncatedNormal:
    """Normal(mean, std) truncated to [low, high], per action dimension, reparameterised.

    Samples by inverting the CDF, x = mean + std * Phi^-1(Phi(a) + u (Phi(b) - Phi(a))), so the
    sample is a differentiable function of (mean, std) and dynamics backprop reaches the actor.
    `log_prob` and `entropy` sum over the last (action) dimension.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, low: float = -1.0, high: float = 1.0):
        self.mean, self.std, self.low, self.high = mean, std, low, high
        self._a = (low - mean) / std
        self._b = (high - mean) / std
        self._cdf_a = torch.special.ndtr(self._a)
        self._z = (torch.special.ndtr(self._b) - self._cdf_a).clamp_min(1e-8)

    def rsample(self) -> torch.Tensor:
        u = torch.rand_like(self.mean)
        p = (self._cdf_a + u * self._z).clamp(1e-6, 1 - 1e-6)
        x = self.mean + self.std * torch.special.ndtri(p)
        # Float rounding can land a hair outside the support; keep it inside without
        # blocking the gradient (as DreamerV2's clipped TruncNormalDist does).
        clipped = x.clamp(self.low + 1e-6, self.high - 1e-6)
        return x + (clipped - x).detach()

    def mode(self) -> torch.Tensor:
        return self.mean.clamp(self.low, self.high)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.mean) / self.std
        return (-0.5 * z.square() - _LOG_SQRT_2PI - self.std.log() - self._z.log()).sum(-1)

    def entropy(self) -> torch.Tensor:
        def pdf(v):
            return torch.exp(-0.5 * v.square() - _LOG_SQRT_2PI)

        ent = (_LOG_SQRT_2PI + 0.5 + self.std.log() + self._z.log()
               + (self._a * pdf(self._a) - self._b * pdf(self._b)) / (2 * self._z))
        return ent.sum(-1)


def lambda_return(reward: torch.Tensor, value: torch.Tensor, discount: torch.Tensor,
                  bootstrap: torch.Tensor, lambda_: float) -> torch.Tensor:
    """TD(lambda) targets, computed backwards in time.

        R_t = r_t + d_t * ((1 - lambda) * v_{t+1} + lambda * R_{t+1}),   R_H = bootstrap,

    where r_t is the reward received on leaving state t, v_{t+1} = value[t + 1] (bootstrap for
    the last step) and d_t the discount. reward, value, discount [H, N], bootstrap [N] -> [H, N].
    """
    next_value = torch.cat([value[1:], bootstrap[None]], 0)
    inputs = reward + discount * next_value * (1 - lambda_)
    out, last = [], bootstrap
    for t in reversed(range(reward.shape[0])):
        last = inputs[t] + discount[t] * lambda_ * last
        out.append(last)
    return torch.stack(out[::-1], 0)


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """No gradients for the parameters of `modules` inside (the actor's loss must not build
    a graph for the world model's weights: it only trains the actor)."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class ActorCritic(nn.Module):
    """Actor, critic and slow critic over s features [..., F]; `updates` counts training steps."""

    def __init__(self, feat_dim: int, action_dim: int, cfg: BehaviorConfig, fast: bool = True):
        super().__init__()
        self.cfg = cfg
        self.fast = fast        # the update's fast path (loop.fast_update): see train_step
        self.action_dim = action_dim
        self.actor = MLPHead(feat_dim, 2 * action_dim, cfg.layers, cfg.units)
        self.critic = MLPHead(feat_dim, 1, cfg.layers, cfg.units)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.return_scale = ReturnScale() if cfg.return_norm == "percentile" else None
        # Adam with L2 weight decay as upstream's actor and critic optimisers.
        self.actor_opt = adam(self.actor.parameters(), cfg.actor_lr, cfg.adam_eps,
                              cfg.weight_decay, fused=fast)
        self.critic_opt = adam(self.critic.parameters(), cfg.critic_lr, cfg.adam_eps,
                               cfg.weight_decay, fused=fast)

    def policy(self, feat: torch.Tensor) -> TruncatedNormal:
        """DreamerV2's `trunc_normal` head: mean tanh-squashed, std in [min_std, 2 + min_std]."""
        return self._dist(self.actor(feat))

    def _dist(self, raw: torch.Tensor) -> TruncatedNormal:
        mean, std = raw.chunk(2, -1)
        std = 2 * torch.sigmoid(std / 2) + self.cfg.actor_min_std
        return TruncatedNormal(torch.tanh(mean), std)

    def saturation_penalty(self, raw: torch.Tensor) -> torch.Tensor:
        """Mean of (|x| - b)^2 over the raw outputs beyond their bound b (0 when off).

        Why: dynamics backprop through a world model that has not yet learned what actions do
        pushes the actor the same way at every state; Adam turns that small, consistent gradient
        into full-size steps, so the pre-tanh mean runs to ~8 and the pre-sigmoid std to ~-20
        within a few hundred updates (measured in experiments/rl_smoke). There tanh' and
        sigmoid' are ~1e-6: the policy sits at one action bound with no gradient to leave it,
        for thousands of updates. The penalty acts only outside the bound, where it is the
        only gradient left, and pulls the outputs back to where the return's gradient works.
        The mean's bound b keeps |mean| <= tanh(b); the std's 4b leaves it free down to
        ~min_std + 2 sigmoid(-2b).
        """
        b = self.cfg.actor_raw_bound
        if b <= 0:
            return raw.new_zeros(())
        mean, std = raw.chunk(2, -1)
        excess = torch.cat([(mean.abs() - b).clamp_min(0), (std.abs() - 4 * b).clamp_min(0)], -1)
        return excess.square().sum(-1).mean()

    def _objective(self, dist: TruncatedNormal, actions: torch.Tensor, target: torch.Tensor,
                   baseline: torch.Tensor) -> torch.Tensor:
        """What the actor maximises per imagined step [H, N] (`behavior.actor_grad`).

        dynamics: the lambda-return itself, differentiable through the imagined states.
        reinforce: log pi(a_t | s_t) times the advantage target_t - v_slow(s_t), both held
        fixed, so only the log-probability carries gradient (the score-function estimator).
        both: `actor_grad_mix` x dynamics + (1 - mix) x reinforce, as DreamerV2's mix.
        """
        cfg = self.cfg
        if cfg.actor_grad == "dynamics":
            return target
        advantage = (target - baseline).detach()
        reinforce = dist.log_prob(actions.detach()) * advantage
        if cfg.actor_grad == "reinforce":
            return reinforce
        return cfg.actor_grad_mix * target + (1 - cfg.actor_grad_mix) * reinforce

    def act(self, feat: torch.Tensor, explore: bool) -> torch.Tensor:
        """[N, F] -> action [N, A]: a sample while exploring, the mode when evaluating."""
        dist = self.policy(feat)
        return dist.rsample() if explore else dist.mode()

    def imagine(self, rssm: RSSM, start: RSSMState
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Roll the prior forward with the actor: start [N, ...] -> (features [H + 1, N, F],
        actions [H, N, A], the actor's raw outputs [H, N, 2A] that drew them). Gradients flow
        from the features back into the actor's samples."""
        state = RSSMState(*(x.detach() for x in start))
        feats, actions, raws = [state.feature()], [], []
        for _ in range(self.cfg.horizon):
            raws.append(self.actor(feats[-1].detach()))
            action = self._dist(raws[-1]).rsample()
            state = rssm.img_step(state, action)
            feats.append(state.feature())
            actions.append(action)
        return torch.stack(feats, 0), torch.stack(actions, 0), torch.stack(raws, 0)

    def train_step(self, rssm: RSSM, start: RSSMState,
                   reward_fn: Callable[[torch.Tensor], torch.Tensor],
                   world_modules: tuple[nn.Module, ...]) -> dict[str, torch.Tensor]:
        """One actor and one critic update from posterior states `start` [N, ...].

        `reward_fn(features [..., F]) -> [...]` is the behavioural reward head's mean;
        `world_modules` are held fixed while the actor's loss backpropagates through them.
        The fast path (`self.fast`) reuses the actor outputs that drew the imagined actions for
        the entropy term and steps fused Adams; the reference path runs the actor again on the
        detached features, as DreamerV2 does. Both inputs are the same tensors under the same
        weights, so the two give the same losses and gradients up to float summation order
        (tests/rl/test_fast_path.py).
        """
        cfg = self.cfg
        with frozen(*world_modules, self.critic):
            with record_function("cwm.update.imagine"):
                feats, actions, raws = self.imagine(rssm, start)       # [H + 1, N, F]
            with record_function("cwm.update.actor"):
                reward = reward_fn(feats[1:])                           # r_t on leaving state t
                value = self.slow_critic(feats).squeeze(-1)             # [H + 1, N]
                discount = torch.full_like(reward, cfg.discount)
                target = lambda_return(reward, value[:-1], discount, value[-1], cfg.lambda_)
                # The weight of step t is the probability of still being alive there: gamma^t.
                weight = torch.cumprod(torch.cat([torch.ones_like(discount[:1]), discount[:-1]]), 0)
                raw = raws if self.fast else self.actor(feats[:-1].detach())  # [H, N, 2A]
                dist = self._dist(raw)
                entropy = dist.entropy()                                # [H, N]
                scale = (self.return_scale.update(target) if self.return_scale is not None
                         else target.new_ones(()))
                objective = self._objective(dist, actions, target, value[:-1]) / scale
                actor_loss = -(weight * (objective + cfg.actor_entropy * entropy)).mean()
                actor_loss = actor_loss + self.saturation_penalty(raw)
        with record_function("cwm.update.actor"):
            self.actor_opt.zero_grad(set_to_none=True)
            if int(self.updates) >= cfg.actor_delay:
                actor_loss.backward()
                actor_norm = nn.utils.clip_grad_norm_(self.actor.parameters(), cfg.grad_clip)
                self.actor_opt.step()
            else:   # the world model and critic learn; the actor waits (behavior.actor_delay)
                actor_norm = actor_loss.new_zeros(())

        with record_function("cwm.update.critic"):
            value_pred = self.critic(feats[:-1].detach()).squeeze(-1)
            critic_loss = (0.5 * (value_pred - target.detach()).square() * weight).mean()
            self.critic_opt.zero_grad(set_to_none=True)
            critic_loss.backward()
            critic_norm = nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.grad_clip)
            self.critic_opt.step()

        self.updates += 1
        if int(self.updates) % cfg.slow_critic_every == 0:
            self.slow_critic.load_state_dict(self.critic.state_dict())
        return {
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "actor_entropy": entropy.mean().detach(),
            "actor_raw_mean_abs": raw.chunk(2, -1)[0].abs().mean().detach(),
            "imag_reward": reward.mean().detach(),
            "imag_return": target.mean().detach(),
            "imag_value": value_pred.mean().detach(),
            "actor_grad_norm": actor_norm,
            "critic_grad_norm": critic_norm,
            "return_scale": scale.detach(),
        }

    def optim_state(self) -> dict:
        return {"actor": self.actor_opt.state_dict(), "critic": self.critic_opt.state_dict()}

    def load_optim_state(self, state: dict) -> None:
        for name, opt in (("actor", self.actor_opt), ("critic", self.critic_opt)):
            opt.load_state_dict(state[name])
            set_fused(opt, self.fast)
