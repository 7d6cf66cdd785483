"""Upstream's initialisation: Xavier/zero on the layers its factory builds, torch defaults elsewhere."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from cwm.model.config import make_config
from cwm.model.heads import MLPHead
from cwm.model.init import upstream_init_
from cwm.model.world_model import WorldModel


def _xavier_bound(w: torch.Tensor) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(w)
    return math.sqrt(6.0 / (fan_in + fan_out))


def _default_bound(w: torch.Tensor) -> float:
    """torch's Linear/Conv default, kaiming_uniform(a=sqrt 5): U(+-1/sqrt(fan_in))"""
    return 1.0 / math.sqrt(nn.init._calculate_fan_in_and_fan_out(w)[0])


def _uniform_with_bound(w: torch.Tensor, bound: float) -> bool:
    """std of U(-b, b) is b / sqrt 3; the sample reaches close to b and never beyond it."""
    w = w.detach().float()
    std_ok = abs(w.std().item() / (bound / math.sqrt(3)) - 1) < 0.05
    return std_ok and w.abs().max().item() <= bound * (1 + 1e-6) and w.abs().max() > 0.9 * bound


def _model(kind, init="upstream", seed=0):
    torch.manual_seed(seed)
    cfg = make_config("small", kind).model
    return WorldModel(dataclasses.replace(cfg, init=init))


@pytest.mark.parametrize("kind", ["contextwm", "plain", "dreamerv2"])
def test_factory_layers_are_xavier_with_zero_bias(kind):
    m = _model(kind)
    layers = {"rssm.img_in": m.rssm.img_in, "rssm.img_out": m.rssm.img_out,
              "rssm.img_logits": m.rssm.img_logits, "rssm.obs_out": m.rssm.obs_out,
              "rssm.obs_logits": m.rssm.obs_logits, "decoder.linear": m.decoder.linear}
    if kind == "dreamerv2":
        layers.update({f"encoder.net.{i}": l for i, l in enumerate(m.encoder.net)
                       if isinstance(l, nn.Conv2d)})
        layers.update({f"decoder.net.{i}": l for i, l in enumerate(m.decoder.net)
                       if isinstance(l, nn.ConvTranspose2d)})
    else:
        layers.update({"encoder.stem": m.encoder.stem, "decoder.out": m.decoder.out})
    if kind == "contextwm":
        layers["context_encoder.stem"] = m.context_encoder.stem
    for name, layer in layers.items():
        assert _uniform_with_bound(layer.weight, _xavier_bound(layer.weight)), name
        assert torch.all(layer.bias == 0), name


def test_layers_upstream_builds_itself_keep_torch_defaults():
    m = _model("contextwm")
    # residual blocks: default conv init (no bias), BatchNorm at 1 / 0
    conv = m.encoder.stages[1][1].body[0]
    assert _uniform_with_bound(conv.weight, _default_bound(conv.weight))
    assert not _uniform_with_bound(conv.weight, _xavier_bound(conv.weight))
    bn = m.encoder.stages[1][1].body[1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    # the GRU cell: default linear with its default (non-zero) bias
    cell = m.rssm.cell.linear
    assert _uniform_with_bound(cell.weight, _default_bound(cell.weight))
    assert cell.bias.abs().max() > 0
    # cross-attention as torch.nn.MultiheadAttention initialises itself
    attn = next(b.attention for s in m.decoder.stages for b in s if b.attention is not None)
    c = attn.q_proj.in_features
    qkv = torch.cat([attn.q_proj.weight, attn.kv_proj.weight])      # [3C, C]
    assert _uniform_with_bound(qkv, math.sqrt(6.0 / (4 * c)))
    assert _uniform_with_bound(attn.out_proj.weight, _default_bound(attn.out_proj.weight))
    for b in (attn.q_proj.bias, attn.kv_proj.bias, attn.out_proj.bias, attn.q_pos, attn.kv_pos):
        assert torch.all(b == 0)


def test_torch_scheme_keeps_the_old_initialisation():
    up, old = _model("plain", "upstream"), _model("plain", "torch")
    w_up, w_old = up.rssm.img_in.weight, old.rssm.img_in.weight
    assert _uniform_with_bound(w_old, _default_bound(w_old))
    assert old.rssm.img_in.bias.abs().max() > 0
    # upstream's RSSM input weights are larger than torch's default (issue 11: ~1.7x)
    assert 1.4 < w_up.std().item() / w_old.std().item() < 2.0
    # under "torch" even the factory layers keep the defaults
    assert _uniform_with_bound(old.encoder.stem.weight, _default_bound(old.encoder.stem.weight))
    with pytest.raises(ValueError, match="init scheme"):
        _model("plain", "glorot")


def test_mlp_heads_follow_the_rule():
    head = upstream_init_(MLPHead(300, 7, layers=2, units=400))
    for layer in head.net:
        if isinstance(layer, nn.Linear):
            assert _uniform_with_bound(layer.weight, _xavier_bound(layer.weight))
            assert torch.all(layer.bias == 0)
