"""The pre-training world model: encoder, (context encoder), RSSM z_t, decoder, and its objective.

Three kinds share everything but the image networks (the paper's claims compare them):
    contextwm  ResNetEncoder + ContextEncoder + ResNetDecoder with cross-attention
    plain      ResNetEncoder + ResNetDecoder (no context)
    dreamerv2  ConvEncoder + ConvDecoder (DreamerV2's plain CNN)

Objective (the poster's ELBO, action-free):
    image_scale * E_t[ -ln p(o_t | z_t, c) ] + kl_scale * KL-balanced(q(z_t | z_{t-1}, o_t) || p(z_t | z_{t-1}))

Images enter as uint8 [B, T, 64, 64, 3] (and the context frame as uint8 [B, 64, 64, 3]) on the
model's device and are converted there to float [B, T, 3, 64, 64] in [-0.5, 0.5].
"""

from __future__ import annotations

import torch
from torch import nn

from cwm.model.config import INIT_SCHEMES, ModelConfig
from cwm.model.decoder import ConvDecoder, ResNetDecoder
from cwm.model.distributions import (categorical_entropy, image_nll, kl_balanced_loss)
from cwm.model.encoder import ContextEncoder, ConvEncoder, ResNetEncoder
from cwm.model.init import upstream_init_
from cwm.model.rssm import RSSM, RSSMState


def to_float_images(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [..., H, W, 3] -> float [..., 3, H, W] in [-0.5, 0.5]"""
    return (frames.float() / 255.0 - 0.5).movedim(-1, -3)


def to_uint8_images(images: torch.Tensor) -> torch.Tensor:
    """float [..., 3, H, W] in [-0.5, 0.5] -> uint8 [..., H, W, 3]"""
    return ((images.float() + 0.5).clamp(0, 1) * 255).round().to(torch.uint8).movedim(-3, -1)


class WorldModel(nn.Module):
    """forward(frames uint8 [B, T, 64, 64, 3], context uint8 [B, 64, 64, 3]) -> (loss, metrics)"""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.cnn_depth
        if cfg.kind == "dreamerv2":
            self.encoder = ConvEncoder(d)
        else:
            self.encoder = ResNetEncoder(d, cfg.res_stages, cfg.res_blocks)
        self.context_encoder = (ContextEncoder(d, cfg.res_stages, cfg.res_blocks)
                                if cfg.uses_context else None)
        self.rssm = RSSM(self.encoder.embed_dim, deter=cfg.deter, hidden=cfg.hidden,
                         stoch=cfg.stoch, classes=cfg.classes, action_dim=cfg.action_dim)
        if cfg.kind == "dreamerv2":
            self.decoder = ConvDecoder(cfg.feat_dim, d)
        else:
            self.decoder = ResNetDecoder(
                cfg.feat_dim, d, cfg.res_stages, cfg.res_blocks, context=cfg.uses_context,
                attn_resolutions=cfg.attn_resolutions, heads=cfg.attn_heads,
                dropout=cfg.attn_dropout, token_drop=cfg.ctx_token_drop,
                token_drop_eval=cfg.ctx_token_drop_eval)
        if cfg.init == "upstream":
            upstream_init_(self)
        elif cfg.init != "torch":
            raise ValueError(f"unknown init scheme {cfg.init!r}; choose one of {INIT_SCHEMES}")

    # -- pieces the RL stage reuses -------------------------------------------------------------

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """float [B, T, 3, 64, 64] -> embedding [B, T, E]"""
        b, t = images.shape[:2]
        return self.encoder(images.flatten(0, 1)).reshape(b, t, -1)

    def encode_context(self, context: torch.Tensor) -> dict[int, torch.Tensor] | None:
        """float [B, 3, 64, 64] -> {resolution: [B, C, r, r]}, or None for context-free kinds"""
        return None if self.context_encoder is None else self.context_encoder(context)

    def decode(self, feat: torch.Tensor, context_maps: dict[int, torch.Tensor] | None) -> torch.Tensor:
        """feature [B, T, F] (+ context maps) -> image mean [B, T, 3, 64, 64]"""
        return self.decoder(feat, context_maps)

    # -- training objective ---------------------------------------------------------------------

    def forward(self, frames: torch.Tensor, context: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = to_float_images(frames)
        ctx = self.encode_context(to_float_images(context))
        post, prior = self.rssm.observe(self.encode(images))
        recon = self.decode(post.feature(), ctx)
        nll = image_nll(recon, images).mean()
        kl_loss, kl = kl_balanced_loss(post.logits, prior.logits, self.cfg.kl_balance,
                                       self.cfg.free_nats)
        loss = self.cfg.image_scale * nll + self.cfg.kl_scale * kl_loss
        metrics = {
            "loss": loss.detach(),
            "image_nll": nll.detach(),
            "kl": kl,
            "kl_loss": kl_loss.detach(),
            "post_entropy": categorical_entropy(post.logits).mean().detach(),
            "prior_entropy": categorical_entropy(prior.logits).mean().detach(),
            "mse": (recon.detach().float() - images).square().mean(),
        }
        return loss, metrics

    # -- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def open_loop(self, frames: torch.Tensor, context: torch.Tensor, observe: int = 5,
                  sample: bool = False) -> torch.Tensor:
        """Observe `observe` frames, imagine the rest from the prior.

        frames uint8 [B, T, 64, 64, 3], context uint8 [B, 64, 64, 3] -> float [B, T, 3, 64, 64]
        (reconstructions for t < observe, open-loop predictions after).
        """
        images = to_float_images(frames)
        ctx = self.encode_context(to_float_images(context))
        post, _ = self.rssm.observe(self.encode(images[:, :observe]), sample=sample)
        last = RSSMState(*(x[:, -1] for x in post))
        imagined = self.rssm.imagine(last, images.shape[1] - observe, sample=sample)
        feat = torch.cat([post.feature(), imagined.feature()], 1)
        return self.decode(feat, ctx)

    @torch.no_grad()
    def compose(self, frames: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
        """Decode the dynamics of each clip with every context.

        frames uint8 [A, T, 64, 64, 3], contexts uint8 [C, 64, 64, 3] -> float [A, C, T, 3, 64, 64]
        (row a, column c: the posterior latents of clip a decoded with context c).
        """
        post, _ = self.rssm.observe(self.encode(to_float_images(frames)), sample=False)
        feat = post.feature()                                            # [A, T, F]
        n_a, n_c = feat.shape[0], contexts.shape[0]
        ctx = self.encode_context(to_float_images(contexts))
        if ctx is not None:
            ctx = {r: m.repeat(n_a, 1, 1, 1) for r, m in ctx.items()}    # row a*C + c -> context c
        feat = feat.repeat_interleave(n_c, 0)                            # row a*C + c -> clip a
        out = self.decode(feat, ctx)
        return out.reshape(n_a, n_c, *out.shape[1:])


def count_parameters(module: nn.Module | None) -> int:
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_breakdown(model: WorldModel) -> dict[str, int]:
    """Parameter counts by part, in the terms of SPEC section 4."""
    attn = 0
    if isinstance(model.decoder, ResNetDecoder):
        attn = sum(count_parameters(b.attention) for s in model.decoder.stages for b in s)
    return {
        "encoder": count_parameters(model.encoder),
        "context_encoder": count_parameters(model.context_encoder),
        "decoder": count_parameters(model.decoder),
        "decoder_cross_attention": attn,
        "decoder_linear": count_parameters(model.decoder.linear),
        "rssm": count_parameters(model.rssm),
        "total": count_parameters(model),
    }
