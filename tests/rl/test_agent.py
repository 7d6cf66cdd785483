"""The agent and its actor-critic: lambda-returns, slow critic cadence, truncated normal, loading a
pre-trained world model, freezing, the three agent kinds."""

import pytest
import torch

from cwm.errors import UserError
from cwm.model.checkpoint import latest_checkpoint
from cwm.model.config import make_config
from cwm.model.train import train as pretrain
from cwm.rl.agent import make_agent, random_erase
from cwm.rl.behavior import ActorCritic, TruncatedNormal, lambda_return
from cwm.rl.config import BehaviorConfig, make_rl_config

from tests.model.shards import write_clip_shards

torch.set_num_threads(1)


def _batch(b=2, t=8, action_dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {"image": torch.randint(0, 256, (b, t, 64, 64, 3), generator=g, dtype=torch.uint8),
            "action": torch.rand(b, t, action_dim, generator=g) * 2 - 1,
            "reward": torch.rand(b, t, generator=g),
            "is_first": is_first}


def test_lambda_return_matches_a_hand_computation():
    gamma, lam = 0.99, 0.95
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[10.0], [20.0], [30.0]])
    boot = torch.tensor([40.0])
    d = torch.full_like(r, gamma)
    # Backwards by hand: R_3 = 40; R_t = r_t + gamma * ((1 - lam) * v_{t+1} + lam * R_{t+1}).
    r2 = 3 + gamma * ((1 - lam) * 40 + lam * 40)
    r1 = 2 + gamma * ((1 - lam) * 30 + lam * r2)
    r0 = 1 + gamma * ((1 - lam) * 20 + lam * r1)
    got = lambda_return(r, v, d, boot, lam)
    assert torch.allclose(got[:, 0], torch.tensor([r0, r1, r2]))
    # lambda = 0 is one-step TD, lambda = 1 the discounted Monte-Carlo return plus bootstrap.
    assert torch.allclose(lambda_return(r, v, d, boot, 0.0)[:, 0],
                          torch.tensor([1 + gamma * 20, 2 + gamma * 30, 3 + gamma * 40]))
    mc0 = 1 + gamma * 2 + gamma ** 2 * 3 + gamma ** 3 * 40
    assert torch.isclose(lambda_return(r, v, d, boot, 1.0)[0, 0], torch.tensor(mc0))


def test_slow_critic_is_refreshed_every_n_updates():
    cfg = make_rl_config("dmc", preset="tiny")
    torch.manual_seed(0)
    agent = make_agent(cfg, 1, torch.device("cpu"))
    ac = ActorCritic(agent.s_rssm.feat_dim, 1, BehaviorConfig(layers=1, units=16, horizon=3,
                                                            slow_critic_every=3))
    start = agent.s_rssm.initial(6)
    reward_fn = lambda f: f.sum(-1) * 0.01  # noqa: E731

    def same():
        return all(torch.equal(a, b) for a, b in zip(ac.critic.state_dict().values(),
                                                      ac.slow_critic.state_dict().values()))

    assert same()
    history = []
    for _ in range(6):
        ac.train_step(agent.s_rssm, start, reward_fn, (agent.s_rssm,))
        history.append(same())
    assert history == [False, False, True, False, False, True]
    assert int(ac.updates) == 6


def _saturated_actor(bound: float) -> tuple[ActorCritic, torch.nn.Module]:
    """An actor whose pre-tanh mean is +8 and pre-sigmoid std -20 at every state, as the early
    collapse of experiments/rl_smoke leaves it."""
    cfg = make_rl_config("dmc", preset="tiny")
    torch.manual_seed(0)
    rssm = make_agent(cfg, 1, torch.device("cpu")).s_rssm
    # No L2 here: upstream's 1e-6 (Adam-normalised) would move the saturated bias by ~lr per
    # update on its own, which is not the gradient of the return this test is about.
    ac = ActorCritic(rssm.feat_dim, 1, BehaviorConfig(layers=1, units=16, horizon=3,
                                                      actor_raw_bound=bound, weight_decay=0.0))
    last = ac.actor.net[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([8.0, -20.0]))
    return ac, rssm


@pytest.mark.parametrize("bound", [0.0, 2.0])
def test_a_saturated_actor_is_pulled_back_only_with_the_raw_bound(bound):
    ac, rssm = _saturated_actor(bound)
    start = rssm.initial(8)
    reward_fn = lambda f: f.sum(-1) * 0.01  # noqa: E731
    first = ac.train_step(rssm, start, reward_fn, (rssm,))
    for _ in range(20):
        last = ac.train_step(rssm, start, reward_fn, (rssm,))
    moved = float(first["actor_raw_mean_abs"]) - float(last["actor_raw_mean_abs"])
    if bound == 0:
        # tanh'(8) ~ 5e-7: no gradient reaches the actor and its mean stays at the bound.
        assert float(first["actor_grad_norm"]) < 1e-4 and abs(moved) < 1e-4
    else:
        assert float(first["actor_grad_norm"]) > 1.0 and moved > 1e-3


def test_the_raw_bound_is_silent_inside_it():
    ac, _ = _saturated_actor(2.0)
    raw = torch.tensor([[1.9, -7.9], [-2.0, 7.0]])
    assert float(ac.saturation_penalty(raw)) == 0.0
    assert float(ac.saturation_penalty(torch.tensor([[3.0, -9.0]]))) == pytest.approx(2.0)


def test_truncated_normal_stays_in_bounds_and_backpropagates():
    mean = torch.tensor([[0.95, -0.5, 0.0]], requires_grad=True)
    std = torch.tensor([[0.1, 1.0, 2.0]], requires_grad=True)
    dist = TruncatedNormal(mean.expand(4000, 3), std.expand(4000, 3))
    x = dist.rsample()
    assert x.min() > -1 and x.max() < 1
    x.sum().backward()
    assert mean.grad.abs().sum() > 0 and std.grad.abs().sum() > 0
    # Entropy against a Monte-Carlo estimate -E[log p(x)].
    with torch.no_grad():
        mc = -dist.log_prob(dist.rsample()).mean()
        assert abs(float(mc) - float(dist.entropy()[0])) < 0.1


def test_random_erase_blanks_one_rectangle_per_picked_image():
    images = torch.full((8, 3, 64, 64), 0.3)
    out = random_erase(images, prob=1.0, generator=torch.Generator().manual_seed(0))
    erased = (out == 0).all(1)                                   # [N, H, W]
    frac = erased.float().mean((1, 2))
    assert (frac >= 0.01).all() and (frac <= 0.5).all()
    assert torch.equal(random_erase(images, prob=0.0), images)


@pytest.fixture(scope="module")
def pretrained_ckpts(tmp_path_factory):
    """Tiny cwm-train checkpoints of both pre-trainable kinds (a few real training steps)."""
    root = tmp_path_factory.mktemp("pretrain")
    spec = write_clip_shards(root / "shards", n_clips=8, length=12)
    out = {}
    for kind in ("contextwm", "plain"):
        cfg = make_config("tiny", kind, steps=15, ckpt_every=15, picture_every=1000, log_every=5)
        pretrain(cfg, spec, root / kind, device="cpu", progress=False, echo=lambda s: None)
        out[kind] = str(latest_checkpoint(root / kind))
    return out


def test_pretrained_world_model_is_loaded_and_changes_the_starting_loss(pretrained_ckpts):
    from cwm.rl.agent import pretrained_model_config

    path = pretrained_ckpts["contextwm"]
    model = pretrained_model_config(path)
    scratch = make_agent(make_rl_config("metaworld", preset="tiny", model=model),
                         4, torch.device("cpu"))
    loaded = make_agent(make_rl_config("metaworld", preset="tiny", model=model, pretrained=path),
                        4, torch.device("cpu"))
    ckpt = torch.load(path, weights_only=True)["model"]
    for name, value in loaded.wm.state_dict().items():
        assert torch.equal(value, ckpt[name]), name
    # The fresh parts start identical, so any difference in the loss is the pre-training.
    for a, b in zip(scratch.s_rssm.parameters(), loaded.s_rssm.parameters()):
        assert torch.equal(a, b)
    batch = _batch()
    losses = []
    for agent in (scratch, loaded):
        torch.manual_seed(1)
        agent.eval()
        with torch.no_grad():
            _, metrics, _ = agent.world_model_loss(batch, augment=False, update_bonus=False)
        losses.append(float(metrics["model_loss"]))
    assert abs(losses[0] - losses[1]) > 1e-3 * abs(losses[0])


def test_wrong_kind_of_checkpoint_is_a_user_error(pretrained_ckpts, tmp_path):
    plain = pretrained_ckpts["plain"]
    from cwm.rl.agent import pretrained_model_config

    cfg = make_rl_config("dmc", preset="tiny", agent="contextwm", pretrained=plain)
    with pytest.raises(UserError, match="plain world model"):
        make_agent(cfg, 1, torch.device("cpu"))
    with pytest.raises(UserError, match="from scratch"):
        make_agent(make_rl_config("dmc", preset="tiny", agent="dreamerv2", pretrained=plain),
                   1, torch.device("cpu"))
    other = tmp_path / "other.pt"
    torch.save({"kind": "cwm-rl", "format": 1}, other)
    with pytest.raises(UserError, match="not a cwm-train checkpoint"):
        pretrained_model_config(str(other))


def test_freezing_holds_encoder_and_z_rssm_only():
    cfg = make_rl_config("metaworld", preset="tiny")
    agent = make_agent(cfg, 4, torch.device("cpu"))
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    agent.set_frozen(True)
    agent.update(_batch())
    changed = {n for n, p in agent.named_parameters() if not torch.equal(p, before[n])}
    # Upstream's encoder optimiser holds the context encoder too (part of its encoder).
    assert not any(n.startswith(("wm.encoder.", "wm.rssm.", "wm.context_encoder.")) for n in changed)
    assert any(n.startswith("wm.decoder.") for n in changed)
    assert any(n.startswith("s_rssm.") for n in changed)
    assert any(n.startswith("behavior.actor.") for n in changed)
    agent.set_frozen(False)
    agent.update(_batch(seed=1))
    assert not torch.equal(agent.wm.encoder.stem.weight, before["wm.encoder.stem.weight"])


@pytest.mark.parametrize("kind", ["contextwm", "plain", "dreamerv2"])
def test_every_agent_kind_updates_and_acts(kind):
    cfg = make_rl_config("dmc", preset="tiny", agent=kind)
    agent = make_agent(cfg, 2, torch.device("cpu"))
    metrics = agent.update(_batch(action_dim=2))
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in metrics.values())
    assert ("reward_rep_loss" in metrics) == (kind != "dreamerv2")
    assert ("intrinsic" in metrics) == (kind != "dreamerv2")
    image = torch.randint(0, 256, (3, 64, 64, 3), dtype=torch.uint8)
    first = torch.ones(3, dtype=torch.bool)
    action, state = agent.act(image, first, None, explore=True)
    assert action.shape == (3, 2) and action.abs().max() <= 1
    action2, _ = agent.act(image, ~first, state, explore=False)
    assert action2.shape == (3, 2)
    assert agent.training  # acting must not leave BatchNorm in eval mode


@pytest.mark.parametrize("state_mean", [False, True])
def test_evaluation_samples_the_latents_unless_eval_state_mean(state_mean):
    # Upstream's policy samples the latent state in evaluation too (`eval_state_mean: False`).
    from cwm.rl.config import apply_settings

    cfg = apply_settings(make_rl_config("dmc", preset="tiny", agent="dreamerv2"),
                         [f"behavior.eval_state_mean={state_mean}"])
    agent = make_agent(cfg, 2, torch.device("cpu"))
    image = torch.randint(0, 256, (64, 64, 64, 3), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))
    first = torch.ones(64, dtype=torch.bool)
    runs = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        _, state = agent.act(image, first, None, explore=False)
        runs.append(state.s.stoch)
    assert torch.equal(runs[0], runs[1]) == state_mean


@pytest.mark.parametrize("rule", ["upstream", "causal"])
def test_behavioural_reward_head_learns_on_the_steps_the_bonus_covers(rule):
    # Upstream pairs the forward-window bonus with reward[:, :T-4] and cuts the head's input to
    # match; the representative head still sees every step. The causal rule keeps all T steps.
    from cwm.rl.config import apply_settings

    cfg = apply_settings(make_rl_config("dmc", preset="tiny"), [f"learn.bonus_rule={rule}"])
    agent = make_agent(cfg, 2, torch.device("cpu"))
    batch = _batch(action_dim=2)
    late = {**batch, "reward": batch["reward"].clone()}
    late["reward"][:, -4:] += 10.0
    losses = []
    for b in (batch, late):
        torch.manual_seed(0)
        _, metrics, _ = agent.world_model_loss(b, augment=False, update_bonus=False)
        losses.append(metrics)
    assert losses[0]["reward_rep_loss"] != losses[1]["reward_rep_loss"]
    same = torch.isclose(losses[0]["reward_beh_loss"], losses[1]["reward_beh_loss"])
    assert bool(same) == (rule == "upstream")


def test_two_model_optimisers_clip_separately_and_all_decay():
    # Upstream: enc_model_opt (encoder with its context part + z-RSSM) and model_opt (the rest),
    # each clipping its own gradient norm; Adam with L2 1e-6 on actor and critic too.
    from cwm.rl.config import apply_settings

    cfg = apply_settings(make_rl_config("dmc", preset="tiny"), ["learn.grad_clip=1e-3"])
    agent = make_agent(cfg, 2, torch.device("cpu"))
    enc = {id(p) for g in agent.enc_opt.param_groups for p in g["params"]}
    rest = {id(p) for g in agent.model_opt.param_groups for p in g["params"]}
    assert not enc & rest
    for mod in (agent.wm.encoder, agent.wm.context_encoder, agent.wm.rssm):
        assert {id(p) for p in mod.parameters()} <= enc
    for mod in (agent.wm.decoder, agent.s_rssm, agent.reward_beh, agent.reward_rep):
        assert {id(p) for p in mod.parameters()} <= rest
    metrics = agent.update(_batch(action_dim=2))
    assert {"enc_grad_norm", "model_grad_norm"} <= set(metrics)

    def norm(ids):
        return torch.stack([p.grad.norm() for p in agent.parameters()
                            if id(p) in ids and p.grad is not None]).norm()

    # Each side is clipped to the bound on its own, so together they exceed it.
    assert norm(enc) <= 1e-3 * 1.01 and norm(rest) <= 1e-3 * 1.01
    assert (norm(enc) ** 2 + norm(rest) ** 2).sqrt() > 1.2e-3
    for opt in (agent.enc_opt, agent.model_opt, agent.behavior.actor_opt, agent.behavior.critic_opt):
        assert isinstance(opt, torch.optim.Adam) and not isinstance(opt, torch.optim.AdamW)
        assert opt.param_groups[0]["weight_decay"] == 1e-6


@pytest.mark.parametrize("kind", ["contextwm", "dreamerv2"])
def test_fresh_rl_parts_start_from_upstreams_initialisation(kind):
    # Upstream builds the s-RSSM, reward heads, actor and critic through its layer factory:
    # Xavier-uniform weights, zero biases. The slow critic starts as a copy of the critic.
    import math

    agent = make_agent(make_rl_config("dmc", preset="tiny", agent=kind), 2, torch.device("cpu"))
    heads = [agent.reward_beh, agent.behavior.actor, agent.behavior.critic]
    heads += [agent.reward_rep] if kind != "dreamerv2" else []
    layers = [m for h in heads for m in h.net if isinstance(m, torch.nn.Linear)]
    layers += [agent.s_rssm.img_in, agent.s_rssm.img_out, agent.s_rssm.obs_logits]
    for lin in layers:
        bound = math.sqrt(6.0 / (lin.in_features + lin.out_features))
        assert torch.count_nonzero(lin.bias) == 0
        assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.9 * bound
    for a, b in zip(agent.behavior.critic.parameters(), agent.behavior.slow_critic.parameters()):
        assert torch.equal(a, b)
