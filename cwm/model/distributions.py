"""The distributions of the world model and the two terms of its objective (the poster's ELBO).

Latent: `stoch` independent categoricals of `classes` classes, logits [..., S, K]. Samples are
one-hot with straight-through gradients (DreamerV2). The KL between two such latents is the sum
of the per-variable KLs.

Image: a unit-variance Gaussian over the pixels, so the NLL is 0.5 * squared error summed over
C, H, W (the constant 0.5 log 2 pi per pixel is dropped: it moves no gradient).

All maths here runs in float32 even under bf16 autocast: logits and squared errors of 12k pixels
are where low precision bites.
"""

from __future__ import annotations

import torch


_MANTISSA = (1 << 53) - 1


def categorical_draw(probs: torch.Tensor) -> torch.Tensor:
    """One draw per row of probs [..., K] -> indices [...]: `torch.multinomial(probs, 1)`'s
    draws, bit for bit on the CPU, at about half its cost.

    Why: the RSSM draws a latent per step, 39 draws per RL update at the `small` sizes, and
    multinomial spent ~1.6 ms on each 192 x 16 x 16 draw, mostly in `exponential_`, which draws
    and transforms one double at a time. torch's multinomial (one sample) is the exponential-race
    form argmax(p / q), q ~ Exp(1) = -log1p(-u), u the 53 low bits of one 64-bit generator word
    per entry. Here the same words come from `random_` on int64 (which keeps their 53 low
    bits) and the transform runs vectorised: the same generator calls, the same q (checked on
    42M draws: 0 differ; tests/model/test_sampler.py), the same argmax. No validity check as
    multinomial's: softmax gives a distribution unless the logits are NaN, and the losses then
    carry the NaN. Other devices draw their own way, so they keep multinomial.
    """
    if probs.device.type != "cpu":
        flat = probs.reshape(-1, probs.shape[-1])
        return torch.multinomial(flat, 1).reshape(probs.shape[:-1])
    words = torch.empty(probs.shape, dtype=torch.int64).random_()
    u = words.bitwise_and_(_MANTISSA).double().mul_(2.0 ** -53)
    q = u.neg_().log1p_().neg_().float()
    return (probs / q).argmax(-1)


def onehot_sample(logits: torch.Tensor, sample: bool = True) -> torch.Tensor:
    """[..., S, K] logits -> one-hot [..., S, K]; a draw (or the mode), straight-through gradient."""
    logits = logits.float()
    probs = logits.softmax(-1)
    if sample:
        index = categorical_draw(probs)
    else:
        index = probs.argmax(-1)
    onehot = torch.zeros_like(probs).scatter_(-1, index.unsqueeze(-1), 1.0)
    return onehot + probs - probs.detach()


def unimix_logits(logits: torch.Tensor, mix: float) -> torch.Tensor:
    """Logits of (1 - mix) * softmax(logits) + mix / K over the last axis (DreamerV3's "unimix").

    A floor of mix / K under every class: no latent class gets a probability that the KL can
    push to zero, so the KL stays finite and informative and the sampled latents keep some
    spread. `mix = 0` returns `logits` itself (no change, bit for bit).
    """
    if mix == 0:
        return logits
    probs = logits.float().softmax(-1)
    return ((1.0 - mix) * probs + mix / logits.shape[-1]).log()


def categorical_kl(lhs_logits: torch.Tensor, rhs_logits: torch.Tensor) -> torch.Tensor:
    """KL(lhs || rhs) of two [..., S, K] categorical latents, summed over S -> [...]"""
    lhs = lhs_logits.float().log_softmax(-1)
    rhs = rhs_logits.float().log_softmax(-1)
    return (lhs.exp() * (lhs - rhs)).sum((-2, -1))


def categorical_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of a [..., S, K] latent, summed over S -> [...]"""
    logp = logits.float().log_softmax(-1)
    return -(logp.exp() * logp).sum((-2, -1))


def kl_balanced_loss(post_logits: torch.Tensor, prior_logits: torch.Tensor,
                     balance: float = 0.8, free_nats: float = 0.0
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """DreamerV2's KL balancing with free nats (averaged before the floor).

    loss = balance * max(mean KL(sg(post) || prior), free)
         + (1 - balance) * max(mean KL(post || sg(prior)), free)

    so the prior is pulled towards the posterior `balance / (1 - balance)` times harder than the
    posterior towards the prior. Returns (loss scalar, mean KL(post || prior) for logging).
    Inputs [B, T, S, K].
    """
    prior_term = categorical_kl(post_logits.detach(), prior_logits).mean()
    post_term = categorical_kl(post_logits, prior_logits.detach()).mean()
    floor = torch.tensor(float(free_nats), device=prior_term.device)
    loss = balance * torch.maximum(prior_term, floor) + (1 - balance) * torch.maximum(post_term, floor)
    return loss, post_term.detach()


def image_nll(mean: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unit-variance Gaussian NLL of [..., C, H, W] images, summed over C, H, W -> [...]"""
    return 0.5 * (mean.float() - target.float()).square().sum((-3, -2, -1))
