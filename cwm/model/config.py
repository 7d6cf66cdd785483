"""Typed configuration of a pre-training run: model shape, optimisation, logging cadence.

Three named presets:

    paper   the upstream ContextWM sizes and protocol (SPEC section 4 and 5): ResNet depth 48,
            RSSM deter/hidden 1024, 32x32 categorical latent, batch 16 x 25, Adam 3e-4.
    small   a CPU-sized model for the demo and the pre-training comparison experiment.
    tiny    for tests: seconds per hundred steps on two CPU cores.

Each preset exists for the three model kinds: `contextwm` (ResNet + context encoder +
cross-attention decoder), `plain` (the same ResNet world model without context) and `dreamerv2`
(DreamerV2's plain CNN encoder/decoder). The whole `RunConfig` is printed and saved as
`config.json` in the run directory and inside every checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from cwm.errors import UserError
from cwm.values import MAX_SEED, check, parse_setting, split_setting

MODEL_KINDS = ("contextwm", "plain", "dreamerv2")
PRESETS = ("paper", "small", "tiny")
SAMPLE_BY = ("video", "segment")
SPEEDS = ("auto", "compiled", "eager", "reference")  # how a step runs: cwm.model.fast
INIT_SCHEMES = ("upstream", "torch")                 # ModelConfig.init: cwm.model.init
IMAGE_SIZE = 64


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides parameter shapes, plus the loss weights of the pre-training objective."""

    kind: str = "contextwm"
    cnn_depth: int = 48          # channels of the first stage; stages double it (48/96/192)
    res_stages: int = 3          # ResNet stages: 32x32 -> 16x16 -> 8x8 -> 4x4 embedding grid
    res_blocks: int = 2          # residual blocks per stage
    deter: int = 1024            # GRU state size
    hidden: int = 1024           # width of the RSSM's input/output layers
    stoch: int = 32              # categorical latent variables ...
    classes: int = 32            # ... each with this many classes
    action_dim: int = 50         # actions are zero-padded to this width so one checkpoint fits every task
    attn_heads: int = 4
    attn_dropout: float = 0.1
    attn_resolutions: tuple[int, ...] = (8, 16)  # decoder stages that cross-attend to the context
    ctx_token_drop: float = 0.75  # fraction of context tokens dropped per row while training
    ctx_token_drop_eval: bool = False  # upstream also dropped them at evaluation; off here
    kl_balance: float = 0.8      # weight of the prior-training term (DreamerV2 KL balancing)
    free_nats: float = 0.0
    kl_scale: float = 1.0
    image_scale: float = 1.0
    init: str = "upstream"       # upstream: its factory's Xavier/zero rule (cwm.model.init); torch: defaults

    @property
    def uses_context(self) -> bool:
        return self.kind == "contextwm"

    @property
    def feat_dim(self) -> int:
        return self.stoch * self.classes + self.deter


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and bookkeeping of a pre-training run. `batch_size` is global (split over ranks)."""

    steps: int = 1_200_000
    batch_size: int = 16
    seq_len: int = 25
    lr: float = 3e-4
    adam_eps: float = 1e-5
    grad_clip: float = 100.0
    weight_decay: float = 1e-6   # decoupled, per step: p <- (1 - wd) p, as in DreamerV2
    log_every: int = 100
    ckpt_every: int = 1000
    picture_every: int = 5000
    keep_checkpoints: int = 3
    observe_steps: int = 5       # open-loop pictures: frames observed before imagining
    num_workers: int = 2
    shuffle_buffer: int = 500    # streamed (non-local) shards only
    sample_by: str = "video"     # upstream: a uniform video, then a uniform window ("segment":
                                 # every window of the data equally likely)


@dataclass(frozen=True)
class RunConfig:
    preset: str
    model: ModelConfig
    train: TrainConfig
    seed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "RunConfig":
        model = dict(d["model"])
        model["attn_resolutions"] = tuple(model.get("attn_resolutions", ()))
        return RunConfig(preset=d["preset"], model=ModelConfig(**model),
                         train=TrainConfig(**d["train"]), seed=int(d.get("seed", 0)))


_PRESET_MODEL = {
    "paper": {},
    "small": dict(cnn_depth=16, deter=256, hidden=256, stoch=16, classes=16),
    "tiny": dict(cnn_depth=8, res_blocks=1, deter=32, hidden=32, stoch=4, classes=4,
                 attn_heads=2, attn_dropout=0.0),
}
_PRESET_TRAIN = {
    "paper": {},
    "small": dict(steps=3000, batch_size=8, seq_len=25, log_every=20, ckpt_every=250,
                  picture_every=1000, shuffle_buffer=200),
    "tiny": dict(steps=200, batch_size=4, seq_len=10, lr=1e-3, log_every=5, ckpt_every=50,
                 picture_every=100, observe_steps=3, num_workers=0, shuffle_buffer=20),
}


def make_config(preset: str = "paper", kind: str = "contextwm", seed: int = 0,
                **train_overrides) -> RunConfig:
    """The named preset for a model kind; `train_overrides` replace `TrainConfig` fields (None = keep)."""
    if preset not in PRESETS:
        raise UserError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    if kind not in MODEL_KINDS:
        raise UserError(f"unknown model kind {kind!r}; choose one of {', '.join(MODEL_KINDS)}")
    model = ModelConfig(kind=kind, **_PRESET_MODEL[preset])
    train = TrainConfig(**_PRESET_TRAIN[preset])
    overrides = {k: v for k, v in train_overrides.items() if v is not None}
    unknown = set(overrides) - {f.name for f in dataclasses.fields(TrainConfig)}
    if unknown:
        raise UserError(f"unknown training setting(s): {', '.join(sorted(unknown))}")
    train = dataclasses.replace(train, **overrides)
    _validate(train)
    check("--seed", seed, low=0, high=MAX_SEED, integer=True)
    return RunConfig(preset=preset, model=model, train=train, seed=seed)


# `--set model.KEY=VALUE` may change these ModelConfig fields (shapes and loss weights); the
# kind is `--model`, and the attention resolutions follow the decoder's stages.
_SETTABLE_MODEL = tuple(f.name for f in dataclasses.fields(ModelConfig)
                        if f.name not in ("kind", "attn_resolutions"))
_POSITIVE_INTS = ("cnn_depth", "res_stages", "res_blocks", "deter", "hidden", "stoch", "classes",
                  "action_dim", "attn_heads")
_FRACTIONS = ("attn_dropout", "ctx_token_drop", "kl_balance")


def apply_model_settings(cfg: RunConfig, settings: list[str] | tuple[str, ...]) -> RunConfig:
    """`model.KEY=VALUE` overrides of the preset's model (as `format_config` names them), e.g.
    `model.cnn_depth=8`: a validated config. A checkpoint records the result, so `cwm-rl
    --pretrained` builds the same shape and a resumed run must pass the same settings."""
    if not settings:
        return cfg
    usage = "model.KEY=VALUE, e.g. model.cnn_depth=8"
    changes = {}
    for item in settings:
        key, section, name, text = split_setting(item, usage)
        if section != "model":
            raise UserError(f"--set {item!r}: expected {usage}")
        if name not in _SETTABLE_MODEL:
            raise UserError(f"--set {key}: the model has no settable {name!r}; valid: "
                            f"{', '.join(sorted(_SETTABLE_MODEL))}")
        changes[name] = parse_setting(key, text, getattr(cfg.model, name))
    model = dataclasses.replace(cfg.model, **changes)
    for name in _POSITIVE_INTS:
        check(f"model.{name}", getattr(model, name), low=1, integer=True)
    for name in _FRACTIONS:
        check(f"model.{name}", getattr(model, name), low=0, high=1)
    for name in ("free_nats", "kl_scale", "image_scale"):
        check(f"model.{name}", getattr(model, name), low=0)
    if model.cnn_depth % model.attn_heads:
        raise UserError(f"model.cnn_depth ({model.cnn_depth}) must be a multiple of "
                        f"model.attn_heads ({model.attn_heads})")
    if model.init not in INIT_SCHEMES:
        raise UserError(f"model.init must be one of {', '.join(INIT_SCHEMES)}, got {model.init!r}")
    return dataclasses.replace(cfg, model=model)


def max_loader_workers() -> int:
    """At most 4 data-loader workers per core: each one reserves shared-memory batch slots."""
    return 4 * (os.cpu_count() or 1)


def _validate(train: TrainConfig) -> None:
    for name in ("steps", "batch_size", "log_every", "ckpt_every", "picture_every",
                 "keep_checkpoints", "observe_steps", "shuffle_buffer"):
        check(f"--{name.replace('_', '-')}", getattr(train, name), low=1, integer=True)
    check("--seq-len", train.seq_len, low=2, integer=True)
    for name in ("lr", "adam_eps", "grad_clip"):
        check(f"--{name.replace('_', '-')}", getattr(train, name), low=0, low_open=True)
    check("weight_decay", train.weight_decay, low=0)
    check("--workers", train.num_workers, low=0, high=max_loader_workers(), integer=True)
    if train.sample_by not in SAMPLE_BY:
        raise UserError(f"--sample-by must be one of {', '.join(SAMPLE_BY)}, got {train.sample_by!r}")


def format_config(cfg: RunConfig, n_params: int | None = None) -> str:
    """A compact human-readable dump, one `section.key = value` per line."""
    lines = [f"preset = {cfg.preset}", f"seed = {cfg.seed}"]
    for section in ("model", "train"):
        for k, v in dataclasses.asdict(getattr(cfg, section)).items():
            lines.append(f"{section}.{k} = {v}")
    if n_params is not None:
        lines.append(f"parameters = {n_params:,}")
    return "\n".join(lines)
