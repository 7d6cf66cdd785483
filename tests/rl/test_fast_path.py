"""The update's fast path (`loop.fast_update`, the default) computes what the reference path
computes: one update on one fixed batch, from the same weights and random stream, gives the same
losses, gradients and updated weights on both paths.

Tolerance: losses within relative 1e-5 (absolute floor 1e-8); every gradient tensor within
1e-5 x its own largest |value| (+ 1e-8); every updated weight tensor within that or 1e-3 of a
learning-rate step, whichever is larger. float32 has ~1.2e-7 relative precision; the two paths
sum the same terms in another order: the fused Adam rounds differently, and the DreamerV2
decoder's fast transposed convolutions (cwm.model.transposed) round differently, which the
backward carries into every world-model gradient. Per tensor, not per element: an element
near zero is a sum that cancels, where the same absolute noise is a large relative error
(measured worst, 1 thread: gradients 1.8e-6 of their tensor's largest; elementwise up to 5.6x a
1e-5 relative tolerance). Adam's first step, lr g / (|g| + eps), turns gradient noise d on an
element with |g| near eps into up to lr d / eps of weight: measured worst 1.5e-8, 5e-5 of the
3e-4 step (a zero-initialised bias, gradient element 3.6e-5, eps 1e-5). A real change is far
outside: doubling the entropy scale moves the actor's gradients by 4e-4 to 8e-4 of their
largest.
One update, because a second one starts from weights that differ in the last bit and may draw
another categorical sample, after which the two runs are different random trajectories, not
different arithmetic.
"""

import dataclasses

import pytest
import torch

from cwm.model.transposed import ConvTranspose2d
from cwm.rl.agent import make_agent
from cwm.rl.config import apply_settings, make_rl_config

from tests.rl.test_agent import _batch as agent_batch

torch.set_num_threads(1)
RTOL, ATOL = 1e-5, 1e-8


def _batch():
    return agent_batch(action_dim=1)


def _one_update(cfg, fast: bool):
    """(metrics, gradients, weights) after one update of a fresh agent on the fixed batch."""
    cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, fast_update=fast))
    agent = make_agent(cfg, 1, torch.device("cpu"))
    batch = _batch()
    torch.manual_seed(123)
    metrics = agent.update(batch)
    grads = {n: p.grad.clone() for n, p in agent.named_parameters() if p.grad is not None}
    weights = {n: p.detach().clone() for n, p in agent.named_parameters()}
    return {k: float(v) for k, v in metrics.items()}, grads, weights


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> bool:
    """`a` within RTOL x the largest |b| (+ atol) of `b`, element by element."""
    return bool((a - b).abs().max() <= RTOL * b.abs().max() + atol)


@pytest.mark.parametrize("agent, settings", [
    ("dreamerv2", []), ("contextwm", []),
    ("dreamerv2", ["behavior.return_norm=percentile", "learn.reward_transform=symlog"]),
    ("contextwm", ["learn.unimix=0.01"])])
def test_fast_and_reference_paths_give_the_same_losses_gradients_and_weights(agent, settings):
    cfg = apply_settings(make_rl_config("dmc", preset="tiny", agent=agent), settings)
    fast_metrics, fast_grads, fast_weights = _one_update(cfg, fast=True)
    ref_metrics, ref_grads, ref_weights = _one_update(cfg, fast=False)
    assert fast_metrics.keys() == ref_metrics.keys()
    for key in ref_metrics:
        assert fast_metrics[key] == pytest.approx(ref_metrics[key], rel=RTOL, abs=ATOL), key
    # Every trained part has a gradient on both paths: world model, actor, critic.
    assert fast_grads.keys() == ref_grads.keys()
    assert any(n.startswith("behavior.actor.") for n in ref_grads)
    assert any(n.startswith("behavior.critic.") for n in ref_grads)
    assert any(n.startswith("wm.decoder.") for n in ref_grads)
    for name in ref_grads:
        assert _close(fast_grads[name], ref_grads[name]), name
    step_atol = 1e-3 * max(cfg.learn.lr, cfg.behavior.actor_lr, cfg.behavior.critic_lr)
    for name in ref_weights:
        assert _close(fast_weights[name], ref_weights[name], step_atol), name


def test_the_comparison_catches_a_changed_objective():
    """The tolerance is tight enough to see a small change of the actor's objective."""
    cfg = make_rl_config("dmc", preset="tiny", agent="dreamerv2")
    changed = dataclasses.replace(cfg, behavior=dataclasses.replace(cfg.behavior,
                                                                    actor_entropy=2e-4))
    _, ref_grads, _ = _one_update(cfg, fast=False)
    _, other_grads, _ = _one_update(changed, fast=True)
    actor = [n for n in ref_grads if n.startswith("behavior.actor.")]
    assert not all(_close(other_grads[n], ref_grads[n]) for n in actor)


def _updated_on_reference_then_loaded_on_fast():
    """(a tiny DreamerV2 after one reference-path update, a fast-path agent holding its weights)"""
    cfg = make_rl_config("dmc", preset="tiny", agent="dreamerv2")
    ref_cfg = dataclasses.replace(cfg, loop=dataclasses.replace(cfg.loop, fast_update=False))
    ref = make_agent(ref_cfg, 1, torch.device("cpu"))
    ref.update(_batch())
    fast = make_agent(cfg, 1, torch.device("cpu"))
    fast.load_state_dict(ref.state_dict())
    return ref, fast


def test_a_resumed_optimiser_takes_the_path_its_config_names():
    """Optimiser state saved on one path loads onto the other and keeps stepping there."""
    a, b = _updated_on_reference_then_loaded_on_fast()
    b.load_optim_state(a.optim_state())
    for opt in (b.model_opt, b.behavior.actor_opt, b.behavior.critic_opt):
        assert opt.param_groups[0]["fused"] is True
    b.update(_batch())
    assert all(int(s["step"]) == 2 for s in b.model_opt.state.values())


def test_a_reference_checkpoint_loads_on_the_fast_path_and_decodes_the_same():
    """The fast path's decoder runs its transposed convolutions in their fast forms, with the
    same parameters: weights saved on one path load on the other and decode alike."""
    ref, fast = _updated_on_reference_then_loaded_on_fast()
    switched = [m for m in fast.wm.decoder.modules() if isinstance(m, ConvTranspose2d)]
    assert switched and all(m.fast for m in switched)
    assert not any(m.fast for m in ref.wm.decoder.modules() if isinstance(m, ConvTranspose2d))
    feat = torch.randn(2, 3, fast.s_rssm.feat_dim)
    with torch.no_grad():
        want, got = ref.wm.decode(feat, None), fast.wm.decode(feat, None)
    assert _close(got, want)
    ref.load_state_dict(fast.state_dict())
