"""The RL agent: a (pre-trained) world model with a stacked action-conditional latent, reward
heads, an intrinsic bonus and DreamerV2's actor-critic.

Three kinds (`--agent`), the paper's comparison:
    contextwm  ResNet encoder + context encoder + cross-attention decoder + z-RSSM (all loadable
               from a `cwm-train` checkpoint), a fresh s-RSSM stacked on z
    plain      the same without the context encoder (APV's recipe on the ResNet world model)
    dreamerv2  DreamerV2's CNN world model from scratch: one action-conditional RSSM (s) on the
               image embedding, no video bonus, one reward head

Stacking (contextwm, plain): z_t is filtered from the image embedding without actions; s_t is
filtered from the z feature (or [embedding, z feature] for DMC) with the actions padded to the
model's `action_dim` (50). The decoder reconstructs the image from the s feature (same width
as z's), cross-attending to the context frame for contextwm. Only s is imagined.

Batches from the replay (the replay's step convention, `cwm.rl.replay`):
    image uint8 [B, T, 64, 64, 3], action float32 [B, T, A], reward float32 [B, T],
    is_first bool [B, T]
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple

import torch
from torch import nn
from torch.profiler import record_function

from cwm.errors import UserError
from cwm.model.checkpoint import load_checkpoint, load_world_model
from cwm.model.config import ModelConfig, RunConfig
from cwm.model.distributions import categorical_entropy, image_nll, kl_balanced_loss
from cwm.model.heads import MLPHead
from cwm.model.init import upstream_init_
from cwm.model.rssm import RSSM, RSSMState
from cwm.model.transposed import fast_transposed_convs_
from cwm.model.world_model import WorldModel, to_float_images
from cwm.rl.behavior import ActorCritic
from cwm.rl.bonus import BonusConfig, KNNBonus
from cwm.rl.config import RLConfig
from cwm.rl.optim import adam, set_fused
from cwm.rl.returns import symexp, symlog


class PolicyState(NamedTuple):
    """What the agent carries between env steps, per env: z [N, ...] (None for dreamerv2),
    s [N, ...] and the previous action [N, A]."""

    z: RSSMState | None
    s: RSSMState
    action: torch.Tensor


def random_erase(images: torch.Tensor, prob: float, generator: torch.Generator | None = None
                 ) -> torch.Tensor:
    """Context augmentation: with probability `prob` per image, zero (mid-grey in [-0.5, 0.5]) one
    random rectangle covering 2-33% of the area with aspect ratio in [0.3, 3.3].

    float [N, 3, H, W] -> [N, 3, H, W]. Erasing parts of the context frame stops the decoder
    from leaning on any one region of it, so the context encoder learns robust features.
    """
    n, _, h, w = images.shape
    dev = images.device
    u = torch.rand(n, 4, generator=generator).to(dev)
    area = h * w * (0.02 + u[:, 0] * 0.31)
    ratio = torch.exp(torch.log(torch.tensor(0.3)) + u[:, 1] * (torch.log(torch.tensor(3.3))
                                                                 - torch.log(torch.tensor(0.3))))
    eh = (area * ratio).sqrt().round().clamp(1, h).long()
    ew = (area / ratio).sqrt().round().clamp(1, w).long()
    top = (u[:, 2] * (h - eh + 1).to(dev)).floor().long()
    left = (u[:, 3] * (w - ew + 1).to(dev)).floor().long()
    ys = torch.arange(h, device=dev)[None, :, None]
    xs = torch.arange(w, device=dev)[None, None, :]
    box = ((ys >= top[:, None, None]) & (ys < (top + eh)[:, None, None])
           & (xs >= left[:, None, None]) & (xs < (left + ew)[:, None, None]))
    apply = (torch.rand(n, generator=generator) < prob).to(dev)[:, None, None]
    return images.masked_fill((box & apply)[:, None], 0.0)


def load_pretrained(path: str, cfg: RLConfig, device: torch.device) -> WorldModel:
    """The world model of a `cwm-train` checkpoint, checked against the agent kind."""
    if cfg.agent == "dreamerv2":
        raise UserError("the dreamerv2 baseline learns from scratch; drop --pretrained "
                        "or use --agent contextwm|plain")
    wm, run_cfg, _ = load_world_model(path, device)
    if run_cfg.model.kind != cfg.agent:
        raise UserError(f"{path} holds a {run_cfg.model.kind} world model, not {cfg.agent}: pass "
                        f"--agent {run_cfg.model.kind} or another checkpoint")
    return wm.train()


class Agent(nn.Module):
    """World model + s-RSSM + reward heads + bonus + actor-critic (see the module docstring)."""

    def __init__(self, cfg: RLConfig, action_dim: int, world_model: WorldModel | None = None):
        super().__init__()
        self.cfg = cfg
        self.action_dim = action_dim
        m, learn = cfg.model, cfg.learn
        if action_dim > m.action_dim:
            raise UserError(f"the env has {action_dim} action dims, more than the model's {m.action_dim}")
        self.wm = world_model if world_model is not None else WorldModel(m)
        # The fast update decodes through the fast forms of the transposed convolutions
        # (`cwm.model.transposed`); the reference path through torch's own.
        fast_transposed_convs_(self.wm, cfg.loop.fast_update)
        self.stacked = cfg.agent != "dreamerv2"
        if self.stacked:
            z_feat = self.wm.rssm.feat_dim
            s_in = z_feat + (self.wm.encoder.embed_dim if learn.s_posterior_embed else 0)
            self.s_rssm = RSSM(s_in, deter=m.deter, hidden=m.hidden, stoch=m.stoch,
                               classes=m.classes, action_dim=m.action_dim, unimix=learn.unimix)
        else:
            # DreamerV2: the world model's own RSSM, fed with actions, is the only latent.
            self.s_rssm = self.wm.rssm
            self.s_rssm.unimix = learn.unimix
        feat = self.s_rssm.feat_dim
        self.reward_beh = MLPHead(feat, 1, learn.head_layers, learn.head_units)
        self.reward_rep = (MLPHead(feat, 1, learn.head_layers, learn.head_units)
                           if self.stacked else None)
        self.bonus = (KNNBonus(self.wm.rssm.feat_dim, BonusConfig(rule=learn.bonus_rule),
                               seed=cfg.seed)
                      if self.stacked and learn.intrinsic_scale > 0 else None)
        self.behavior = ActorCritic(feat, action_dim, cfg.behavior, fast=cfg.loop.fast_update)
        if m.init == "upstream":
            # The parts built fresh for RL, as upstream's factory builds them (Xavier-uniform
            # weights, zero biases; cwm.model.init); the world model did the same for its own.
            fresh = [self.reward_beh, self.reward_rep, self.behavior.actor, self.behavior.critic]
            for mod in fresh + ([self.s_rssm] if self.stacked else []):
                if mod is not None:
                    upstream_init_(mod)
            self.behavior.slow_critic.load_state_dict(self.behavior.critic.state_dict())
        self.enc_opt, self.model_opt = self._make_model_optimizers()

    # -- optimisation ---------------------------------------------------------------------------

    def pretrained_modules(self) -> list[nn.Module]:
        """The encoder side: image encoder, context encoder and z-RSSM. Upstream's fine-tuning
        agent gives these their own optimiser (its `enc_model_opt`; the context encoder is part
        of its encoder) and holds it at learning rate 0 for `freeze_updates`. Empty for
        dreamerv2, whose single model optimiser covers the whole world model, as upstream's."""
        if not self.stacked:
            return []
        return [m for m in (self.wm.encoder, self.wm.context_encoder, self.wm.rssm) if m is not None]

    def model_modules(self) -> tuple[nn.Module, ...]:
        mods = [self.wm, self.reward_beh]
        if self.stacked:
            mods += [self.s_rssm, self.reward_rep]
        return tuple(mods)

    def _make_model_optimizers(self) -> tuple[torch.optim.Optimizer | None, torch.optim.Optimizer]:
        """(encoder-side optimiser or None, optimiser of the rest of the world model).

        As upstream's `core.Optimizer`: Adam with L2 `weight_decay` added to the gradient (torch's
        coupled form, after clipping), each optimiser clipping its own parameters' norm.
        """
        learn = self.cfg.learn
        enc_ids = {id(p) for mod in self.pretrained_modules() for p in mod.parameters()}
        seen, enc, rest = set(), [], []
        for mod in self.model_modules():
            for p in mod.parameters():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                (enc if id(p) in enc_ids else rest).append(p)

        def make(params):
            return adam(params, learn.lr, learn.adam_eps, learn.weight_decay,
                        fused=self.cfg.loop.fast_update)

        return (make(enc) if enc else None), make(rest)

    def imagined_reward(self, feat: torch.Tensor) -> torch.Tensor:
        """The behavioural reward head's mean in reward units: s features [..., F] -> [...]."""
        out = self.reward_beh(feat).squeeze(-1)
        return symexp(out) if self.cfg.learn.reward_transform == "symlog" else out

    def _optimizers(self) -> list[tuple[str, torch.optim.Optimizer]]:
        return [(n, o) for n, o in (("enc", self.enc_opt), ("model", self.model_opt)) if o is not None]

    def set_frozen(self, frozen: bool) -> None:
        """Learning rate 0 (or back to normal) for the encoder-side optimiser."""
        if self.enc_opt is not None:
            self.enc_opt.param_groups[0]["lr"] = 0.0 if frozen else self.cfg.learn.lr

    def optim_state(self) -> dict:
        return {**{n: o.state_dict() for n, o in self._optimizers()},
                **self.behavior.optim_state()}

    def load_optim_state(self, state: dict) -> None:
        for name, opt in self._optimizers():
            opt.load_state_dict(state[name])
            set_fused(opt, self.cfg.loop.fast_update)
        self.behavior.load_optim_state(state)

    # -- world model ----------------------------------------------------------------------------

    def _latents(self, embed: torch.Tensor, action: torch.Tensor, is_first: torch.Tensor,
                 sample: bool = True):
        """embed [B, T, E] -> (z posterior, z prior, s posterior, s prior), z None for dreamerv2."""
        if not self.stacked:
            s_post, s_prior = self.s_rssm.observe(embed, action, is_first, sample=sample)
            return None, None, s_post, s_prior
        z_post, z_prior = self.wm.rssm.observe(embed, None, is_first, sample=sample)
        s_in = z_post.feature()
        if self.cfg.learn.s_posterior_embed:
            s_in = torch.cat([embed, s_in], -1)
        s_post, s_prior = self.s_rssm.observe(s_in, action, is_first, sample=sample)
        return z_post, z_prior, s_post, s_prior

    def context_maps(self, images: torch.Tensor, augment: bool) -> dict | None:
        """images float [B, T, 3, 64, 64] -> context maps of one random frame per sequence."""
        if self.wm.context_encoder is None:
            return None
        b, t = images.shape[:2]
        pick = torch.randint(0, t, (b,)).to(images.device)
        context = images[torch.arange(b, device=images.device), pick]
        if augment and self.cfg.learn.context_erase_prob > 0:
            context = random_erase(context, self.cfg.learn.context_erase_prob)
        return self.wm.encode_context(context)

    def world_model_loss(self, batch: dict[str, torch.Tensor], augment: bool = True,
                         update_bonus: bool = True
                         ) -> tuple[torch.Tensor, dict[str, torch.Tensor], RSSMState]:
        """The fine-tuning objective on a replay batch -> (loss, metrics, s posterior [B, T, ...])."""
        learn = self.cfg.learn
        images = to_float_images(batch["image"])
        action = batch["action"]
        is_first = batch["is_first"]
        reward = batch["reward"].float()
        embed = self.wm.encode(images)
        z_post, z_prior, s_post, s_prior = self._latents(embed, action, is_first)
        s_feat = s_post.feature()
        recon = self.wm.decode(s_feat, self.context_maps(images, augment))
        nll = image_nll(recon, images).mean()
        kl_s_loss, kl_s = kl_balanced_loss(s_post.logits, s_prior.logits, learn.kl_balance,
                                           learn.free_nats)
        loss = nll + learn.beta_s * kl_s_loss
        metrics = {"image_nll": nll.detach(), "kl_s": kl_s,
                   "s_post_entropy": categorical_entropy(s_post.logits).mean().detach()}
        if z_post is not None:
            kl_z_loss, kl_z = kl_balanced_loss(z_post.logits, z_prior.logits, learn.kl_balance,
                                               learn.free_nats)
            if learn.beta_z > 0:
                loss = loss + learn.beta_z * kl_z_loss
            metrics["kl_z"] = kl_z
        target, beh_feat = reward, s_feat
        if self.bonus is not None:
            intrinsic = self.bonus(z_post.feature(), update=update_bonus)     # [B, T']
            # Under the upstream rule only the first T' = T - window + 1 steps have a bonus, and
            # the behavioural head learns on those steps alone (upstream cuts both the reward
            # and the head's input to the bonus's length); the causal rule keeps all T.
            t = intrinsic.shape[1]
            target = reward[:, :t] + learn.intrinsic_scale * intrinsic
            beh_feat = s_feat[:, :t]
            metrics["intrinsic"] = intrinsic.mean()
        if learn.reward_transform == "symlog":
            target = symlog(target)
        beh = self.reward_beh(beh_feat).squeeze(-1)
        beh_loss = 0.5 * (beh - target).square().mean()
        loss = loss + beh_loss
        metrics["reward_beh_loss"] = beh_loss.detach()
        if self.reward_rep is not None:
            rep_loss = 0.5 * (self.reward_rep(s_feat).squeeze(-1) - reward).square().mean()
            loss = loss + learn.beta_r * rep_loss
            metrics["reward_rep_loss"] = rep_loss.detach()
        metrics["model_loss"] = loss.detach()
        return loss, metrics, s_post

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One world-model update, then one actor-critic update from its s posteriors."""
        self.train()
        with record_function("cwm.update.world_model"):
            loss, metrics, s_post = self.world_model_loss(batch)
            for _, opt in self._optimizers():
                opt.zero_grad(set_to_none=True)
            loss.backward()
            # One backward pass, then each optimiser clips its own gradient norm and steps.
            for name, opt in self._optimizers():
                params = opt.param_groups[0]["params"]
                metrics[f"{name}_grad_norm"] = nn.utils.clip_grad_norm_(params,
                                                                        self.cfg.learn.grad_clip)
                opt.step()
        start = RSSMState(*(x.detach().flatten(0, 1) for x in s_post))
        reward_fn = self.imagined_reward
        metrics.update(self.behavior.train_step(self.s_rssm, start, reward_fn,
                                                (self.s_rssm, self.reward_beh)))
        return metrics

    # -- acting ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _inference(self):
        """Eval mode (BatchNorm running statistics) without autograd, restored afterwards.

        Inference mode rather than no_grad: acting runs once per env step and its outputs (the
        policy state, the action sent to the env) never enter a training graph, so torch can skip
        the version counters and view tracking as well."""
        was = self.training
        self.eval()
        try:
            with torch.inference_mode():
                yield
        finally:
            self.train(was)

    def initial_state(self, n: int, device: torch.device) -> PolicyState:
        z = self.wm.rssm.initial(n, device) if self.stacked else None
        return PolicyState(z, self.s_rssm.initial(n, device),
                           torch.zeros(n, self.action_dim, device=device))

    def act(self, image: torch.Tensor, is_first: torch.Tensor, state: PolicyState | None,
            explore: bool) -> tuple[torch.Tensor, PolicyState]:
        """One env step for N envs: image uint8 [N, 64, 64, 3], is_first bool [N] ->
        (action float32 [N, A] in [-1, 1], next state). No context encoder when acting.

        Exploring samples the latents and the action. Evaluating takes the actor's mode, and
        samples the latents too unless `behavior.eval_state_mean` (upstream's policy samples
        them unless its `eval_state_mean`, which is False in every config it ships).
        """
        n = image.shape[0]
        if state is None:
            state = self.initial_state(n, image.device)
        sample = explore or not self.cfg.behavior.eval_state_mean
        with self._inference():
            embed = self.wm.encoder(to_float_images(image))
            z = None
            if self.stacked:
                z, _ = self.wm.rssm.obs_step(state.z, None, embed, is_first, sample=sample)
                s_in = z.feature()
                if self.cfg.learn.s_posterior_embed:
                    s_in = torch.cat([embed, s_in], -1)
            else:
                s_in = embed
            s, _ = self.s_rssm.obs_step(state.s, state.action, s_in, is_first, sample=sample)
            action = self.behavior.act(s.feature(), explore)
        return action, PolicyState(z, s, action)


def pretrained_model_config(path: str) -> ModelConfig:
    """The world-model shape stored in a `cwm-train` checkpoint (UserError for any other file)."""
    return RunConfig.from_dict(load_checkpoint(path)["config"]).model


def make_agent(cfg: RLConfig, action_dim: int, device: torch.device) -> Agent:
    """A fresh agent; with `cfg.pretrained` its world model comes from that checkpoint.

    The fresh parts are initialised from `cfg.seed` before the checkpoint is read, so a run with
    and without `--pretrained` differ only in the loaded weights.
    """
    torch.manual_seed(cfg.seed)
    agent = Agent(cfg, action_dim)
    if cfg.pretrained:
        wm = load_pretrained(cfg.pretrained, cfg, torch.device("cpu"))
        try:
            agent.wm.load_state_dict(wm.state_dict())
        except RuntimeError:
            raise UserError(f"{cfg.pretrained} holds a world model of other sizes than this "
                            f"run's model settings") from None
    return agent.to(device)


def count_parameters(agent: Agent) -> dict[str, int]:
    def n(mod):
        return 0 if mod is None else sum(p.numel() for p in mod.parameters())

    return {"world_model": n(agent.wm), "s_rssm": n(agent.s_rssm) if agent.stacked else 0,
            "reward_heads": n(agent.reward_beh) + n(agent.reward_rep),
            "actor": n(agent.behavior.actor), "critic": n(agent.behavior.critic),
            "total": n(agent) - n(agent.behavior.slow_critic)}

