"""`--set SECTION.KEY=VALUE` overrides and what a resumed run may change."""

from pathlib import Path

import pytest

from cwm.errors import UserError
from cwm.rl.config import apply_settings, format_config, make_rl_config
from cwm.rl.loop import resume_config


def test_settings_take_the_type_of_what_they_replace():
    cfg = apply_settings(make_rl_config("dmc", preset="small"),
                         ["behavior.actor_raw_bound=2", "loop.prefill=5000",
                          "loop.prioritize_ends=yes", " learn.intrinsic_scale = 0.5 "])
    assert cfg.behavior.actor_raw_bound == 2.0 and isinstance(cfg.behavior.actor_raw_bound, float)
    assert cfg.loop.prefill == 5000 and isinstance(cfg.loop.prefill, int)
    assert cfg.loop.prioritize_ends is True
    assert cfg.learn.intrinsic_scale == 0.5
    # Named as the run prints its config.
    assert "behavior.actor_raw_bound = 2.0" in format_config(cfg).splitlines()
    assert apply_settings(cfg, []) == cfg


@pytest.mark.parametrize("item, message", [
    ("behavior.actor_raw_bound", "expected SECTION.KEY=VALUE"),
    ("prefill=5000", "expected SECTION.KEY=VALUE"),
    ("model.deter=10", "unknown section 'model'"),
    ("loop.prefil=5000", "loop has no setting 'prefil'"),
    ("loop.prefill=5e3", "expected int"),
    ("loop.prioritize_ends=maybe", "expected bool"),
    ("behavior.actor_entropy=lots", "expected float"),
    ("loop.seq_len=1", "seq_len must be at least 2"),
    ("loop.prefill_hold=0.5", "prefill_hold must be at least 1"),
])
def test_bad_settings_are_user_errors(item, message):
    with pytest.raises(UserError, match=message):
        apply_settings(make_rl_config("dmc", preset="small"), [item])


def test_settings_a_dreamerv2_agent_cannot_use_are_refused():
    cfg = make_rl_config("dmc", preset="small", agent="dreamerv2")
    with pytest.raises(UserError, match="no video latent z"):
        apply_settings(cfg, ["learn.intrinsic_scale=0.1"])


def test_resume_may_change_budget_and_cadence_only():
    saved = apply_settings(make_rl_config("dmc", preset="small"), ["behavior.actor_raw_bound=2"])
    asked = apply_settings(make_rl_config("dmc", preset="small", steps=50_000, eval_every=5000),
                           ["behavior.actor_raw_bound=2"])
    cfg = resume_config(asked, saved, Path("run"))
    assert (cfg.loop.steps, cfg.loop.eval_every) == (50_000, 5000)
    assert cfg.behavior == saved.behavior
    for other, what in ((make_rl_config("dmc", preset="small"), "behavior.actor_raw_bound = 2.0"),
                        (apply_settings(asked, ["loop.train_every=4"]), "loop.train_every = 8"),
                        (apply_settings(asked, ["learn.free_nats=0"]), "learn.free_nats = 1.0")):
        with pytest.raises(UserError, match=what):
            resume_config(other, saved, Path("run"))
