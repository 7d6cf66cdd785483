import math

import torch

from cwm.model.distributions import categorical_kl, kl_balanced_loss, onehot_sample, unimix_logits
from cwm.model.rssm import RSSM, pad_action


def _logits(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, 4, 6, generator=g)


def test_kl_balancing_splits_the_gradient():
    post0, prior0 = _logits(0), _logits(1)
    post, prior = post0.clone().requires_grad_(), prior0.clone().requires_grad_()
    loss, kl = kl_balanced_loss(post, prior, balance=0.8, free_nats=0.0)
    loss.backward()
    # The value is the plain KL; only the gradient is split between the two sides.
    ref_post, ref_prior = post0.clone().requires_grad_(), prior0.clone().requires_grad_()
    ref = categorical_kl(ref_post, ref_prior).mean()
    ref.backward()
    assert torch.allclose(loss, ref) and torch.allclose(kl, ref)
    assert torch.allclose(prior.grad, 0.8 * ref_prior.grad, atol=1e-7)
    assert torch.allclose(post.grad, 0.2 * ref_post.grad, atol=1e-7)


def test_free_nats_floor_the_average_kl():
    post, prior = _logits(2).requires_grad_(), _logits(3).requires_grad_()
    kl = categorical_kl(post, prior).mean().item()
    loss, value = kl_balanced_loss(post, prior, balance=0.8, free_nats=kl + 1.0)
    loss.backward()
    assert abs(loss.item() - (kl + 1.0)) < 1e-5 and abs(value.item() - kl) < 1e-5
    assert post.grad.abs().max() == 0 and prior.grad.abs().max() == 0
    loss, _ = kl_balanced_loss(post, prior, balance=0.8, free_nats=kl - 1.0)
    assert abs(loss.item() - kl) < 1e-5


def test_kl_is_zero_for_equal_latents_and_positive_otherwise():
    a = _logits(4)
    assert categorical_kl(a, a).abs().max() < 1e-5
    assert (categorical_kl(a, _logits(5)) > 0).all()


def test_onehot_samples_are_onehot_with_straight_through_gradient():
    logits = _logits(6).requires_grad_()
    s = onehot_sample(logits)
    assert torch.allclose(s.detach().sum(-1), torch.ones(3, 5, 4))
    hard = s.detach()
    assert torch.allclose(hard, hard.round(), atol=1e-6)
    (s * torch.randn_like(s)).sum().backward()
    assert logits.grad.abs().sum() > 0


def test_action_free_rssm_equals_zero_actions():
    torch.manual_seed(0)
    rssm = RSSM(12, deter=16, hidden=16, stoch=4, classes=5, action_dim=50)
    embed = torch.randn(2, 6, 12)
    free, _ = rssm.observe(embed, sample=False)
    zeros, _ = rssm.observe(embed, action=torch.zeros(2, 6, 3), sample=False)
    assert torch.allclose(free.deter, zeros.deter, atol=1e-6)
    assert free.feature().shape == (2, 6, 4 * 5 + 16)


def test_stacked_rssm_takes_padded_actions_and_resets():
    torch.manual_seed(0)
    z_feat = torch.randn(2, 5, 36)                         # a z feature as the posterior input
    rssm = RSSM(36, deter=16, hidden=16, stoch=4, classes=5, action_dim=50)
    action = torch.randn(2, 5, 4)
    assert pad_action(action, 50).shape == (2, 5, 50)
    post, prior = rssm.observe(z_feat, action, sample=False)
    other, _ = rssm.observe(z_feat, -action, sample=False)
    assert not torch.allclose(post.deter[:, 1:], other.deter[:, 1:])
    # is_first resets the recurrence: the step after a reset ignores everything before it.
    is_first = torch.zeros(2, 5, dtype=torch.bool)
    is_first[:, 3] = True
    reset, _ = rssm.observe(z_feat, action, is_first, sample=False)
    fresh, _ = rssm.observe(z_feat[:, 3:], action[:, 3:] * 0, sample=False)
    assert torch.allclose(reset.deter[:, 3], fresh.deter[:, 0], atol=1e-6)
    imagined = rssm.imagine(rssm.initial(2), 4, torch.randn(2, 4, 4))
    assert imagined.deter.shape == (2, 4, 16)


def test_unimix_puts_a_floor_under_every_class_and_zero_changes_nothing():
    logits = _logits(7) * 30.0                       # near one-hot: some classes at ~e-100
    assert logits.softmax(-1).min() < 1e-20
    mixed = unimix_logits(logits, 0.01)
    probs = mixed.exp()
    assert torch.allclose(probs.sum(-1), torch.ones(3, 5, 4), atol=1e-6)
    assert probs.min() >= 0.01 / 6 * (1 - 1e-5)
    assert torch.allclose(probs, 0.99 * logits.softmax(-1) + 0.01 / 6, atol=1e-7)
    assert unimix_logits(logits, 0.0) is logits
    # The KL between two near one-hot latents that disagree is bounded once both are mixed:
    # per variable by log(K / mix), as no class has less than mix / K under the second.
    other = _logits(8) * 30.0
    assert categorical_kl(logits, other).max() > 100
    assert categorical_kl(mixed, unimix_logits(other, 0.01)).max() <= 4 * math.log(6 / 0.01)


def test_unimix_rssm_mixes_prior_and_posterior_alike():
    torch.manual_seed(0)
    rssm = RSSM(12, deter=16, hidden=16, stoch=4, classes=5, action_dim=3, unimix=0.2)
    embed, action = torch.randn(2, 6, 12) * 10, torch.randn(2, 6, 3)
    post, prior = rssm.observe(embed, action)
    one_post, one_prior = rssm.obs_step(rssm.initial(2), action[:, 0], embed[:, 0])
    for state in (post, prior, one_post, one_prior, rssm.img_step(one_post, action[:, 1])):
        assert state.logits.exp().min() >= 0.2 / 5 * (1 - 1e-5)
    plain = RSSM(12, deter=16, hidden=16, stoch=4, classes=5, action_dim=3)
    plain.load_state_dict(rssm.state_dict())         # no weights of its own: any value loads
    torch.manual_seed(1)
    a, _ = rssm.observe(embed, action, sample=False)
    b, _ = plain.observe(embed, action, sample=False)
    assert torch.allclose(a.logits.exp(), 0.8 * b.logits.softmax(-1) + 0.2 / 5, atol=1e-6)
