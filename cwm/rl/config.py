"""Typed configuration of an RL fine-tuning run (`cwm-rl`): presets, printed and saved as config.json.

Four named presets:

    metaworld  the paper's Meta-world protocol (SPEC section 6) at the upstream model sizes:
               prefill 5,000, 100 pre-train updates, train every 5 agent steps, batch 50 x 50,
               encoder and z-RSSM frozen for the first 100 updates, 10 eval episodes every 10k
               steps, 255k agent steps, free nats 0, intrinsic lambda 1.0, ends prioritised,
               context frames randomly erased.
    dmc        the paper's DMC (Remastered) protocol at the upstream sizes: prefill 1,000 agent
               steps (2,000 frames), one update per 5 agent steps (10 frames), batch 16 x 50,
               502k agent steps (~1M frames), free nats 1.0, lambda 0.1, s posterior on
               [embedding, z feature], no context augmentation.
    small      a CPU-sized model and budget (the learning check in experiments/rl_smoke).
    cpu        `small` plus what issue 12's screen on two cores found to help
               (experiments/cpu_preset): the actor's raw outputs softly bounded
               (behavior.actor_raw_bound=2), so it cannot saturate at an action bound early.
    tiny       for tests: a few hundred env steps in well under a minute on two cores.

`metaworld` and `dmc` name the protocol of one env family. `small`, `cpu` and `tiny` only set sizes and
budget; the family-specific protocol (free nats, lambda, what the s posterior sees, freezing,
prioritised ends) follows `--env`, so they serve every family.

Units: every count of the loop (`steps`, `prefill`, `train_every`, `eval_every`, `log_every`,
`ckpt_every`, `seq_len`, `replay_capacity`) is in agent steps, i.e. policy decisions summed over
the training envs, as upstream's configs count them; `pretrain_updates` and `freeze_updates` count
updates. What a run logs (metrics `step`, checkpoint names, curves) is environment frames = agent
steps x action repeat (2 on DMC, 1 on Meta-world), upstream's logged unit and the unit of the
published curves (`cwm.rl.report`). `format_config` names the unit of each count. Until
checkpoint format 2 the counts were frames; `cwm.rl.loop` refuses to resume such a run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cwm.errors import UserError
from cwm.model.config import ModelConfig, make_config as make_model_config
from cwm.rl.envs.registry import FAMILIES
from cwm.values import MAX_SEED, check, parse_setting, split_setting

# The names of the options the RL modules implement live here, with the settings, so that
# reading and checking a config (and `cwm-rl --help`) never imports torch.
BONUS_RULES = ("upstream", "causal")            # cwm.rl.bonus
REWARD_TRANSFORMS = ("identity", "symlog")      # cwm.rl.returns
RETURN_NORMS = ("none", "percentile")           # cwm.rl.returns
ACTOR_GRADS = ("dynamics", "reinforce", "both")   # cwm.rl.behavior


@dataclass
class BonusConfig:
    """The video-based exploration bonus (`cwm.rl.bonus.KNNBonus`)."""

    window: int = 5
    dim: int = 128
    queue_size: int = 4096
    k: int = 16
    momentum: float = 0.99
    rule: str = "upstream"

PRESETS = ("metaworld", "dmc", "small", "cpu", "tiny")
AGENTS = ("contextwm", "plain", "dreamerv2")
DEFAULT_TASKS = {"metaworld": "reach", "dmc": "cartpole-balance", "dmcr": "cartpole-balance"}
ACTION_REPEAT = {"metaworld": 1, "dmc": 2, "dmcr": 2}


@dataclass(frozen=True)
class LearnConfig:
    """The world-model objective of fine-tuning (SPEC section 6) and its optimiser.

    loss = image NLL(s_t, c) + beta_s KL_s + beta_z KL_z + behavioural reward NLL
           + beta_r representative reward NLL
    """

    s_posterior_embed: bool = False  # DMC: the s posterior sees [embedding, z feature]
    head_layers: int = 4
    head_units: int = 400
    kl_balance: float = 0.8
    free_nats: float = 0.0
    beta_s: float = 1.0
    beta_z: float = 0.0              # z's own KL is not trained when fine-tuning
    beta_r: float = 1.0
    intrinsic_scale: float = 1.0     # lambda in r + lambda * r_int (0 turns the bonus off)
    lr: float = 3e-4
    adam_eps: float = 1e-5
    grad_clip: float = 100.0         # per optimiser: encoder side (encoder, context encoder,
                                     # z-RSSM) and the rest of the world model, as upstream
    weight_decay: float = 1e-6       # L2 added to the gradient (Adam's coupled form, upstream's)
    # Random erasing of the context frame while training: upstream's `ctx_aug: erasing` is passed
    # for Meta-world only (its README commands); DMC runs keep the default `none`.
    context_erase_prob: float = 0.0
    # The video bonus's rule (cwm.rl.bonus): "upstream" = APV's expl.py (a forward window over
    # z features t..t+window-1, only the first T-window+1 steps get a bonus and a reward target,
    # the batch joins the queue before the k-NN search, running mean from 1.0); "causal" = a
    # trailing window, every step gets a bonus, search before adding, mean from the first batch.
    bonus_rule: str = "upstream"
    # What the behavioural reward head regresses: the reward ("identity", upstream's) or
    # symlog(reward), read back through symexp in imagination (cwm.rl.returns).
    reward_transform: str = "identity"
    # Share of a uniform distribution mixed into the action-conditional latent's categoricals,
    # prior and posterior (DreamerV3's unimix, 0.01 there; 0 = DreamerV2's, the paper's): the
    # KL cannot drive a class's probability to zero. The s latent only (the world model's own
    # for the dreamerv2 agent, whose RSSM is its s); the pre-trained z is left as it was trained.
    unimix: float = 0.0


@dataclass(frozen=True)
class BehaviorConfig:
    """DreamerV2's actor-critic in imagination (SPEC section 6)."""

    layers: int = 4
    units: int = 400
    horizon: int = 15
    discount: float = 0.99
    lambda_: float = 0.95
    actor_min_std: float = 0.1
    actor_entropy: float = 1e-4
    # Soft bound on the actor head's raw outputs (0 = off, the paper's protocol): a penalty
    # (|raw| - bound)^2 beyond +-bound for the pre-tanh mean and +-4 * bound for the pre-sigmoid
    # std, so neither can be pushed deep into saturation, where its gradient vanishes and the
    # policy stays at an action bound (see cwm.rl.behavior.ActorCritic.saturation_penalty).
    actor_raw_bound: float = 0.0
    actor_lr: float = 8e-5
    critic_lr: float = 8e-5
    adam_eps: float = 1e-5
    grad_clip: float = 100.0
    weight_decay: float = 1e-6       # L2 on actor and critic too, as upstream's actor_opt/critic_opt
    slow_critic_every: int = 100     # updates between copies of the critic into the slow critic
    # Evaluation acts on a sampled latent state like upstream (`eval_state_mean: False`); true
    # uses the latents' modes. The action is the actor's mode either way.
    eval_state_mean: bool = False
    # Options for small budgets, off in the paper presets (cwm.rl.returns): "percentile" divides
    # the actor's objective by max(1, running 5-95th percentile range of the returns);
    # `actor_delay` updates train the world model and critic but not the actor, so the actor
    # does not follow an imagined reward before the model has learned what actions do.
    return_norm: str = "none"
    actor_delay: int = 0
    # The actor's gradient (DreamerV2's `actor_grad`): "dynamics" backpropagates the
    # lambda-return through the learned dynamics (upstream's choice on DMC and Meta-world);
    # "reinforce" weights the log-probability of each imagined action by its advantage over the
    # slow critic, so a model that does not yet respond to actions gives a zero-mean gradient
    # rather than a consistent push; "both" mixes them, `actor_grad_mix` on dynamics.
    actor_grad: str = "dynamics"
    actor_grad_mix: float = 0.1


@dataclass(frozen=True)
class LoopConfig:
    """Data collection, update cadence, evaluation and bookkeeping (agent steps, see the module
    docstring; `UNITS` names each field's unit)."""

    steps: int = 255_000
    prefill: int = 5000
    prefill_hold: float = 1.0        # mean agent steps a random prefill action is held (1 = fresh each step)
    pretrain_updates: int = 100      # updates right after prefill
    train_every: int = 5             # one update per this many agent steps (an accumulator)
    batch_size: int = 50
    seq_len: int = 50
    freeze_updates: int = 0          # encoder and z-RSSM learning rate 0 for this many updates
    eval_every: int = 10_000
    eval_episodes: int = 10
    log_every: int = 1000
    ckpt_every: int = 10_000
    keep_checkpoints: int = 2
    replay_capacity: int = 1_000_000
    replay_chunk: int = 256          # steps per HDF5 chunk file (an episode end also closes one)
    prioritize_ends: bool = False
    # The update's fast path (the imagination's actor outputs reused for the entropy term,
    # cwm.rl.behavior.ActorCritic.train_step; fused Adam, cwm.rl.optim; the decoder's
    # transposed convolutions in their fast forms, cwm.model.transposed): the same losses,
    # gradients and weights as the reference path (false) up to float rounding
    # (tests/rl/test_fast_path.py).
    fast_update: bool = True


@dataclass(frozen=True)
class RLConfig:
    preset: str
    env: str
    task: str
    agent: str
    seed: int
    render: str
    envs: int
    action_repeat: int
    model: ModelConfig
    learn: LearnConfig
    behavior: BehaviorConfig
    loop: LoopConfig
    pretrained: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "RLConfig":
        model = dict(d["model"])
        model["attn_resolutions"] = tuple(model.get("attn_resolutions", ()))
        return RLConfig(**{**d, "model": ModelConfig(**model), "learn": LearnConfig(**d["learn"]),
                           "behavior": BehaviorConfig(**d["behavior"]),
                           "loop": LoopConfig(**d["loop"])})


# The cwm-train preset whose model sizes each RL preset uses (a --pretrained checkpoint of that
# preset fits without any conversion).
_MODEL_PRESET = {"metaworld": "paper", "dmc": "paper", "small": "small", "cpu": "small",
                 "tiny": "tiny"}
# From scratch, `small` shrinks cwm-train's small image networks further: on a CPU the decoder
# dominates an update (SPEC section 4), and the learning check must fit in an hour on two cores.
# With --pretrained the checkpoint's shape is used whatever the preset.
# Attention dropout off: with it, torch falls back to its slow reference attention on the CPU.
_MODEL_SIZES = {"small": dict(cnn_depth=8, res_blocks=1, deter=200, hidden=200, attn_dropout=0.0)}
_PAPER_FAMILY = {"metaworld": "metaworld", "dmc": "dmc"}

# In agent steps, upstream's unit (configs/apv_finetuning.yaml: `metaworld` stops at 255k steps,
# `dmc_vision` / `dmc_remastered` run 502k; prefill, train_every 5 and eval_every 1e4 are
# counted by the same step counter, which its logger multiplies by the action repeat).
# `small` and `tiny` were sized in frames on DMC (repeat 2) before format 2: halved, they give
# the same frames there (and half the frames they used to on Meta-world).
_LOOP = {
    "metaworld": dict(steps=255_000, prefill=5000, pretrain_updates=100, train_every=5,
                      batch_size=50, seq_len=50, eval_every=10_000, eval_episodes=10,
                      log_every=1000, ckpt_every=10_000),
    "dmc": dict(steps=502_000, prefill=1000, pretrain_updates=100, train_every=5,
                batch_size=16, seq_len=50, eval_every=10_000, eval_episodes=10,
                log_every=1000, ckpt_every=10_000),
    "small": dict(steps=5000, prefill=1000, pretrain_updates=50, train_every=4,
                  batch_size=8, seq_len=24, eval_every=1000, eval_episodes=2,
                  log_every=250, ckpt_every=1000, replay_chunk=128),
    "tiny": dict(steps=200, prefill=100, pretrain_updates=2, train_every=25, batch_size=2,
                 seq_len=8, eval_every=5000, eval_episodes=1, log_every=50, ckpt_every=50,
                 replay_chunk=32, keep_checkpoints=2),
}
# The unit of every count `format_config` prints (the rest are sizes, rates or switches).
UNITS = {
    "loop.steps": "agent steps", "loop.prefill": "agent steps", "loop.prefill_hold": "agent steps",
    "loop.pretrain_updates": "updates", "loop.train_every": "agent steps per update",
    "loop.seq_len": "agent steps", "loop.freeze_updates": "updates",
    "loop.eval_every": "agent steps", "loop.eval_episodes": "episodes",
    "loop.log_every": "agent steps", "loop.ckpt_every": "agent steps",
    "loop.replay_capacity": "agent steps", "loop.replay_chunk": "agent steps",
    "behavior.horizon": "imagined steps", "behavior.slow_critic_every": "updates",
    "behavior.actor_delay": "updates",
}
_FRAMES = ("loop.steps", "loop.prefill", "loop.train_every", "loop.eval_every", "loop.log_every",
           "loop.ckpt_every")
_HEADS = {
    "metaworld": {}, "dmc": {},
    "small": dict(head_layers=2, head_units=200),
    "tiny": dict(head_layers=1, head_units=32),
}
_BEHAVIOR = {
    "metaworld": {}, "dmc": {},
    "small": dict(layers=2, units=200),
    "tiny": dict(layers=1, units=32, horizon=5, slow_critic_every=2),
}


# `cpu` is `small` plus the options experiments/cpu_preset measured to help on two cores.
_MODEL_SIZES["cpu"] = _MODEL_SIZES["small"]
_LOOP["cpu"] = _LOOP["small"]
_HEADS["cpu"] = _HEADS["small"]
_BEHAVIOR["cpu"] = {**_BEHAVIOR["small"], "actor_raw_bound": 2.0}


def family_protocol(env: str) -> tuple[dict, dict]:
    """The env family's part of the protocol: (LearnConfig fields, LoopConfig fields)."""
    if env == "metaworld":
        return (dict(free_nats=0.0, intrinsic_scale=1.0, s_posterior_embed=False,
                     context_erase_prob=0.5),
                dict(freeze_updates=100, prioritize_ends=True))
    return (dict(free_nats=1.0, intrinsic_scale=0.1, s_posterior_embed=True,
                 context_erase_prob=0.0),
            dict(freeze_updates=0, prioritize_ends=False))


def default_preset(env: str) -> str:
    return "metaworld" if env == "metaworld" else "dmc"


def make_rl_config(env: str, task: str | None = None, preset: str | None = None,
                   agent: str = "contextwm", seed: int = 0, render: str = "default",
                   envs: int = 1, model: ModelConfig | None = None, pretrained: str | None = None,
                   action_repeat: int | None = None, **loop_overrides) -> RLConfig:
    """The named preset for `env`; `loop_overrides` replace LoopConfig fields (None = keep).
    `action_repeat` None keeps the family's protocol (`ACTION_REPEAT`: DMC 2, Meta-world 1).

    `model` replaces the preset's world-model shape (the RL stage passes a pre-trained
    checkpoint's, so its weights fit). Task names are checked by `cwm.rl.envs.registry`.
    """
    if env not in FAMILIES:
        raise UserError(f"unknown env family {env!r}; valid: {', '.join(FAMILIES)}")
    preset = preset or default_preset(env)
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if preset in _PAPER_FAMILY and _PAPER_FAMILY[preset] != default_preset(env):
        raise UserError(f"preset {preset!r} is the {preset} protocol; for --env {env} use "
                        f"--preset {default_preset(env)} (or small/cpu/tiny)")
    if agent not in AGENTS:
        raise UserError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    if envs < 1:
        raise UserError(f"--envs must be at least 1, got {envs}")
    if model is None:
        model = make_model_config(_MODEL_PRESET[preset], agent).model
        model = dataclasses.replace(model, **_MODEL_SIZES.get(preset, {}))
    elif model.kind != agent:
        raise UserError(f"a {model.kind} world model cannot serve the {agent} agent")
    learn_family, loop_family = family_protocol(env)
    learn = LearnConfig(**{**learn_family, **_HEADS[preset]})
    if agent == "dreamerv2":
        # The DreamerV2 baseline has no video model: no intrinsic bonus, a single s latent.
        learn = dataclasses.replace(learn, intrinsic_scale=0.0, s_posterior_embed=False)
    behavior = BehaviorConfig(**_BEHAVIOR[preset])
    loop = LoopConfig(**{**_LOOP[preset], **loop_family})
    overrides = {k: v for k, v in loop_overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(LoopConfig)}
    if unknown:
        raise UserError(f"unknown loop setting(s): {', '.join(sorted(unknown))}")
    loop = dataclasses.replace(loop, **overrides)
    cfg = RLConfig(preset=preset, env=env, task=task or DEFAULT_TASKS[env], agent=agent,
                   seed=seed, render=render, envs=envs,
                   action_repeat=ACTION_REPEAT[env] if action_repeat is None else action_repeat,
                   model=model, learn=learn, behavior=behavior, loop=loop, pretrained=pretrained)
    validate(cfg)
    return cfg


def validate(cfg: RLConfig) -> None:
    loop = cfg.loop
    for name in ("steps", "train_every", "batch_size", "eval_every", "eval_episodes", "log_every",
                 "ckpt_every", "keep_checkpoints", "replay_capacity", "replay_chunk"):
        if getattr(loop, name) <= 0:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {getattr(loop, name)}")
    if loop.prefill_hold < 1:
        raise UserError(f"prefill_hold must be at least 1, got {loop.prefill_hold}")
    if cfg.action_repeat < 1:
        raise UserError(f"--action-repeat must be at least 1, got {cfg.action_repeat}")
    behavior, learn = cfg.behavior, cfg.learn
    if behavior.horizon < 1 or not 0 < behavior.discount <= 1 or not 0 <= behavior.lambda_ <= 1:
        raise UserError("behavior needs horizon >= 1, 0 < discount <= 1 and 0 <= lambda_ <= 1")
    if behavior.actor_min_std <= 0 or behavior.actor_raw_bound < 0:
        raise UserError("behavior.actor_min_std must be positive and actor_raw_bound non-negative")
    for section in (learn, behavior, loop):      # every number finite; rates and clips > 0
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                positive = f.name.endswith(("lr", "adam_eps", "grad_clip"))
                check(f.name, value, low=0 if positive else None, low_open=positive)
    check("seed", cfg.seed, low=0, high=MAX_SEED, integer=True)
    if learn.weight_decay < 0 or behavior.weight_decay < 0 or behavior.actor_entropy < 0 \
            or not 0 <= learn.context_erase_prob <= 1:
        raise UserError("learn.weight_decay, behavior.weight_decay and behavior.actor_entropy must "
                        "be non-negative and learn.context_erase_prob in [0, 1]")
    if learn.free_nats < 0 or learn.intrinsic_scale < 0:
        raise UserError("learn.free_nats and learn.intrinsic_scale must be non-negative")
    if not 0.0 <= learn.unimix < 1.0:
        raise UserError(f"learn.unimix must be in [0, 1), got {learn.unimix}")
    if cfg.agent == "dreamerv2" and (learn.intrinsic_scale > 0 or learn.s_posterior_embed):
        raise UserError("the dreamerv2 agent has no video latent z: learn.intrinsic_scale must be 0 "
                        "and learn.s_posterior_embed false")
    if loop.seq_len < 2:
        raise UserError(f"seq_len must be at least 2, got {loop.seq_len}")
    window = BonusConfig().window
    if (learn.intrinsic_scale > 0 and learn.bonus_rule == "upstream" and loop.seq_len < window):
        raise UserError(f"the upstream video bonus averages {window} steps ahead: seq_len must be "
                        f"at least {window}, got {loop.seq_len} (or learn.bonus_rule=causal)")
    for key, value, valid in (("learn.bonus_rule", learn.bonus_rule, BONUS_RULES),
                              ("learn.reward_transform", learn.reward_transform, REWARD_TRANSFORMS),
                              ("behavior.return_norm", behavior.return_norm, RETURN_NORMS),
                              ("behavior.actor_grad", behavior.actor_grad, ACTOR_GRADS)):
        if value not in valid:
            raise UserError(f"{key} must be one of {', '.join(valid)}, got {value!r}")
    if behavior.actor_delay < 0:
        raise UserError(f"behavior.actor_delay must be non-negative, got {behavior.actor_delay}")
    if not 0.0 <= behavior.actor_grad_mix <= 1.0:
        raise UserError(f"behavior.actor_grad_mix must be in [0, 1], got {behavior.actor_grad_mix}")
    # Updates start after prefill, so each env's stream must by then hold one whole sequence.
    per_env = loop.prefill // cfg.envs
    if per_env < loop.seq_len:
        raise UserError(f"prefill {loop.prefill} agent steps over {cfg.envs} env(s) gives {per_env} "
                        f"per env, fewer than one sequence of {loop.seq_len}: raise --prefill")


# The config sections `--set` reaches; the model's shape follows the preset or the checkpoint.
SETTABLE = {"learn": LearnConfig, "behavior": BehaviorConfig, "loop": LoopConfig}
def apply_settings(cfg: RLConfig, settings: list[str] | tuple[str, ...]) -> RLConfig:
    """`section.key=value` overrides, named as `format_config` prints them -> a validated config.

    Sections: learn, behavior, loop. Each value takes the type of the setting it replaces.
    """
    if not settings:
        return cfg  # make_rl_config has validated it already
    sections = {name: getattr(cfg, name) for name in SETTABLE}
    for item in settings:
        key, section, field, text = split_setting(item, "SECTION.KEY=VALUE, e.g. loop.prefill=5000")
        if section not in SETTABLE:
            raise UserError(f"--set {key}: unknown section {section!r}; one of {', '.join(SETTABLE)}")
        fields = {f.name for f in dataclasses.fields(SETTABLE[section])}
        if field not in fields:
            raise UserError(f"--set {key}: {section} has no setting {field!r}; valid: "
                            f"{', '.join(sorted(fields))}")
        value = parse_setting(key, text, getattr(sections[section], field))
        sections[section] = dataclasses.replace(sections[section], **{field: value})
    cfg = dataclasses.replace(cfg, **sections)
    validate(cfg)
    return cfg


def format_config(cfg: RLConfig) -> str:
    """One `section.key = value` per line, as printed at the start of a run; a count is followed
    by its unit (and, for the loop's step counts, the env frames it makes)."""
    lines = []
    for k, v in cfg.to_dict().items():
        if not isinstance(v, dict):
            lines.append(f"{k} = {v}")
            continue
        for kk, vv in v.items():
            name = f"{k}.{kk}"
            line = f"{name} = {vv}"
            if name in UNITS:
                line += f"  # {UNITS[name]}"
                if name in _FRAMES and cfg.action_repeat != 1:
                    line += f" = {vv * cfg.action_repeat:,} frames"
            lines.append(line)
    return "\n".join(lines)
