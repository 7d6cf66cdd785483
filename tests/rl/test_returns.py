"""The small-budget options of issue 12: symlog rewards, percentile return scaling, a delayed actor,
the actor's gradient estimator, unimix categoricals.

Each is off in every preset (upstream's protocol) and reached with `--set`."""

import pytest
import torch

from cwm.errors import UserError
from cwm.model.rssm import RSSMState
from cwm.rl.agent import make_agent
from cwm.rl.config import apply_settings, make_rl_config
from cwm.rl.returns import ReturnScale, symexp, symlog

from tests.rl.test_agent import _batch

torch.set_num_threads(1)


def test_symexp_inverts_symlog_and_compresses_large_values():
    x = torch.tensor([-1000.0, -3.0, -0.01, 0.0, 0.01, 3.0, 1000.0])
    assert torch.allclose(symexp(symlog(x)), x, rtol=1e-5, atol=1e-6)
    assert symlog(torch.tensor(1000.0)) < 7.0
    assert torch.isclose(symlog(torch.tensor(0.01)), torch.tensor(0.01), rtol=0.01)


def test_return_scale_never_shrinks_small_returns_and_follows_large_ones():
    rs = ReturnScale(decay=0.5)
    assert rs.update(torch.linspace(0.0, 0.5, 101)) == 1.0          # range 0.45 -> floor 1
    fresh = ReturnScale(decay=0.5)
    first = fresh.update(torch.linspace(0.0, 100.0, 101))           # set outright: 90
    assert torch.isclose(first, torch.tensor(90.0))
    second = fresh.update(torch.linspace(0.0, 10.0, 101))           # 0.5 * 90 + 0.5 * 9
    assert torch.isclose(second, torch.tensor(49.5))
    state = fresh.state_dict()
    restored = ReturnScale(decay=0.5)
    restored.load_state_dict(state)
    assert torch.isclose(restored.scale(), torch.tensor(49.5))


def test_presets_keep_upstreams_protocol():
    for env, preset in (("dmc", "dmc"), ("metaworld", "metaworld"), ("dmc", "small")):
        cfg = make_rl_config(env, preset=preset)
        assert cfg.learn.reward_transform == "identity"
        assert cfg.behavior.return_norm == "none" and cfg.behavior.actor_delay == 0
        assert cfg.behavior.actor_grad == "dynamics"
        assert cfg.learn.unimix == 0.0


@pytest.mark.parametrize("setting, message", [
    ("learn.reward_transform=log", "learn.reward_transform must be one of identity, symlog"),
    ("behavior.return_norm=max", "behavior.return_norm must be one of none, percentile"),
    ("behavior.actor_delay=-1", "behavior.actor_delay must be non-negative"),
    ("behavior.actor_grad=straight", "behavior.actor_grad must be one of dynamics, reinforce, both"),
    ("behavior.actor_grad_mix=1.5", r"behavior.actor_grad_mix must be in \[0, 1\]"),
    ("learn.unimix=1", r"learn.unimix must be in \[0, 1\), got 1.0"),
    ("learn.unimix=-0.01", r"learn.unimix must be in \[0, 1\), got -0.01"),
])
def test_bad_values_are_refused(setting, message):
    with pytest.raises(UserError, match=message):
        apply_settings(make_rl_config("dmc", preset="tiny"), [setting])


def _agent(*settings):
    cfg = apply_settings(make_rl_config("dmc", preset="tiny", agent="dreamerv2"), list(settings))
    torch.manual_seed(0)
    return make_agent(cfg, 2, torch.device("cpu"))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_a_delayed_actor_waits_while_the_critic_learns():
    agent = _agent("behavior.actor_delay=2")
    actor0, critic0 = _params(agent.behavior.actor), _params(agent.behavior.critic)
    for i in range(3):
        agent.update(_batch(action_dim=2, seed=i))
        actor_same = all(torch.equal(a, b) for a, b in zip(actor0, agent.behavior.actor.parameters()))
        critic_same = all(torch.equal(a, b) for a, b in zip(critic0, agent.behavior.critic.parameters()))
        assert not critic_same
        assert actor_same == (i < 2)       # updates 0 and 1 wait, update 2 trains the actor


def test_symlog_rewards_train_the_head_on_symlog_and_imagine_in_reward_units():
    agent = _agent("learn.reward_transform=symlog")
    batch = _batch(action_dim=2)
    batch["reward"] = batch["reward"] * 100.0
    feat = torch.randn(5, agent.s_rssm.feat_dim)
    raw = agent.reward_beh(feat).squeeze(-1)
    assert torch.allclose(agent.imagined_reward(feat), symexp(raw))
    # The head's loss is measured against symlog(reward): an identity run sees a far larger one.
    torch.manual_seed(1)
    _, sym, _ = agent.world_model_loss(batch, augment=False, update_bonus=False)
    plain = _agent()
    torch.manual_seed(1)
    _, ident, _ = plain.world_model_loss(batch, augment=False, update_bonus=False)
    assert sym["reward_beh_loss"] < 20 < ident["reward_beh_loss"]


def test_percentile_scaling_is_logged_saved_and_divides_the_actor_objective():
    agent = _agent("behavior.return_norm=percentile")
    metrics = agent.update(_batch(action_dim=2))
    assert "return_scale" in metrics and metrics["return_scale"] >= 1.0
    keys = agent.behavior.state_dict().keys()
    assert "return_scale.range" in keys and "return_scale.seen" in keys
    off = _agent()
    assert "return_scale.range" not in off.behavior.state_dict()
    assert float(off.update(_batch(action_dim=2))["return_scale"]) == 1.0


@pytest.mark.parametrize("how", ["dynamics", "reinforce", "both"])
def test_actor_objective_per_estimator(how):
    """dynamics: the return, with its gradient; reinforce: log pi(a) x (return - baseline) with
    the return and baseline held fixed; both: mix x dynamics + (1 - mix) x reinforce."""
    agent = _agent(f"behavior.actor_grad={how}", "behavior.actor_grad_mix=0.25")
    beh = agent.behavior
    torch.manual_seed(0)
    raw = torch.randn(3, 4, 2 * 2, requires_grad=True)
    dist = beh._dist(raw)
    actions = dist.rsample()
    target = torch.randn(3, 4, requires_grad=True)
    baseline = torch.randn(3, 4)
    objective = beh._objective(dist, actions, target, baseline)
    reinforce = dist.log_prob(actions.detach()) * (target - baseline).detach()
    expected = {"dynamics": target, "reinforce": reinforce,
                "both": 0.25 * target + 0.75 * reinforce}[how]
    assert torch.allclose(objective, expected)
    d_target, d_raw = torch.autograd.grad(objective.sum(), (target, raw), allow_unused=True)
    d_target = torch.zeros_like(target) if d_target is None else d_target
    assert torch.allclose(d_target, torch.full_like(target, {"dynamics": 1.0, "reinforce": 0.0,
                                                             "both": 0.25}[how]))
    # Only the score-function term reaches the actor's outputs without passing through actions:
    # under dynamics the objective's gradient to raw goes through `target` alone (none here).
    assert (d_raw is None or float(d_raw.abs().sum()) == 0.0) == (how == "dynamics")


def test_a_reinforce_actor_trains_in_a_whole_update():
    """The estimator is wired into the agent's update: the actor gets a gradient and moves."""
    agent = _agent("behavior.actor_grad=reinforce")
    actor0 = _params(agent.behavior.actor)
    metrics = agent.update(_batch(action_dim=2))
    assert float(metrics["actor_grad_norm"]) > 0
    assert any(not torch.equal(a, b) for a, b in zip(actor0, agent.behavior.actor.parameters()))


@pytest.mark.parametrize("agent_kind", ["contextwm", "dreamerv2"])
def test_unimix_floors_the_s_latent_and_leaves_the_pretrained_z_alone(agent_kind):
    cfg = apply_settings(make_rl_config("dmc", preset="tiny", agent=agent_kind),
                         ["learn.unimix=0.05"])
    torch.manual_seed(0)
    agent = make_agent(cfg, 4, torch.device("cpu"))
    # DreamerV2's world-model RSSM is its s latent; ContextWM's z keeps the pre-trained form.
    assert agent.s_rssm.unimix == 0.05
    assert agent.wm.rssm.unimix == (0.05 if agent_kind == "dreamerv2" else 0.0)
    floor = 0.05 / cfg.model.classes
    torch.manual_seed(1)
    _, _, s_post = agent.world_model_loss(_batch(), augment=False, update_bonus=False)
    assert s_post.logits.exp().min() >= floor * (1 - 1e-5)
    assert torch.allclose(s_post.logits.exp().sum(-1), torch.ones(()), atol=1e-5)
    last = RSSMState(*(x[:, -1].detach() for x in s_post))
    imagined = agent.s_rssm.imagine(last, 3, action=torch.zeros(2, 3, 4))
    assert imagined.logits.exp().min() >= floor * (1 - 1e-5)
    # The same weights without the option: the mixture of their distribution and the uniform.
    plain = make_agent(make_rl_config("dmc", preset="tiny", agent=agent_kind), 4,
                       torch.device("cpu"))
    plain.load_state_dict(agent.state_dict())
    torch.manual_seed(1)
    _, _, s_plain = plain.world_model_loss(_batch(), augment=False, update_bonus=False)
    assert torch.allclose(s_post.logits.exp(), 0.95 * s_plain.logits.softmax(-1) + floor,
                          atol=1e-6)


def test_an_update_with_unimix_trains_and_keeps_every_loss_finite():
    agent = _agent("learn.unimix=0.01")
    before = _params(agent.s_rssm)
    metrics = agent.update(_batch(action_dim=2))
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, agent.s_rssm.parameters()))
