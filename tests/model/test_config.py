"""`cwm-train --set model.KEY=VALUE`: the preset's model, changed where asked and checked."""

import pytest

from cwm.errors import UserError
from cwm.model.config import RunConfig, apply_model_settings, make_config


def test_model_settings_change_only_what_is_named():
    cfg = make_config("small", "contextwm")
    got = apply_model_settings(cfg, ["model.cnn_depth=8", "model.deter=200",
                                     "model.attn_dropout=0", "model.init=torch"])
    assert (got.model.cnn_depth, got.model.deter, got.model.attn_dropout) == (8, 200, 0.0)
    assert got.model.init == "torch" and got.model.hidden == cfg.model.hidden
    assert got.train == cfg.train and got.preset == "small"
    assert RunConfig.from_dict(got.to_dict()) == got          # what a checkpoint records
    assert apply_model_settings(cfg, []) is cfg


@pytest.mark.parametrize("item, message", [
    ("cnn_depth=8", "expected model.KEY=VALUE"),
    ("train.lr=1", "expected model.KEY=VALUE"),
    ("model.kind=plain", "no settable 'kind'"),
    ("model.cnn_depth=eight", "expected int"),
    ("model.deter=0", "model.deter must be >= 1"),
    ("model.attn_dropout=1.5", "model.attn_dropout must be in [0, 1]"),
    ("model.kl_scale=nan", "finite"),
    ("model.cnn_depth=10", "multiple of model.attn_heads"),
    ("model.init=xavier", "model.init must be one of upstream, torch"),
])
def test_bad_model_settings_are_one_line_errors(item, message):
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        apply_model_settings(make_config("small", "contextwm"), [item])
