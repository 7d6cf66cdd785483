"""`--set SECTION.KEY=VALUE` overrides and what a resumed run may change."""

import dataclasses
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
    # The update's path computes the same numbers either way (tests/rl/test_fast_path.py).
    assert saved.loop.fast_update
    reference = apply_settings(asked, ["loop.fast_update=false"])
    assert not resume_config(reference, saved, Path("run")).loop.fast_update
    for other, what in ((make_rl_config("dmc", preset="small"), "behavior.actor_raw_bound = 2.0"),
                        (apply_settings(asked, ["loop.train_every=8"]), "loop.train_every = 4"),
                        (apply_settings(asked, ["learn.free_nats=0"]), "learn.free_nats = 1.0")):
        with pytest.raises(UserError, match=what):
            resume_config(other, saved, Path("run"))


def test_paper_presets_count_in_agent_steps_as_upstream():
    # configs/apv_finetuning.yaml upstream: counts are agent steps, frames = steps x repeat.
    dmc = make_rl_config("dmc")
    assert dmc.action_repeat == 2
    assert (dmc.loop.prefill, dmc.loop.train_every, dmc.loop.steps, dmc.loop.eval_every,
            dmc.loop.pretrain_updates) == (1000, 5, 502_000, 10_000, 100)
    # Prefill 2,000 frames and one update per 10 frames: 16 x 50 / 10 = 80 replayed steps a frame.
    assert dmc.loop.prefill * dmc.action_repeat == 2000
    assert dmc.loop.batch_size * dmc.loop.seq_len / (dmc.loop.train_every * dmc.action_repeat) == 80
    mw = make_rl_config("metaworld")
    assert mw.action_repeat == 1
    assert (mw.loop.prefill, mw.loop.train_every, mw.loop.steps) == (5000, 5, 255_000)


def test_printed_config_names_each_counts_unit():
    lines = format_config(make_rl_config("dmc")).splitlines()
    assert "loop.prefill = 1000  # agent steps = 2,000 frames" in lines
    assert "loop.train_every = 5  # agent steps per update = 10 frames" in lines
    assert "loop.steps = 502000  # agent steps = 1,004,000 frames" in lines
    assert "loop.pretrain_updates = 100  # updates" in lines
    mw = format_config(make_rl_config("metaworld")).splitlines()
    assert "loop.prefill = 5000  # agent steps" in mw   # frames = steps at repeat 1


def test_context_erasing_on_metaworld_only():
    # Upstream passes `--encoder_ctx.ctx_aug erasing` for Meta-world; DMC keeps `ctx_aug: none`.
    assert make_rl_config("metaworld").learn.context_erase_prob == 0.5
    for env in ("dmc", "dmcr"):
        assert make_rl_config(env).learn.context_erase_prob == 0.0
        assert make_rl_config(env, preset="small").learn.context_erase_prob == 0.0


def test_upstream_bonus_rule_and_sampled_evaluation_latents_are_the_defaults():
    cfg = make_rl_config("dmc")
    assert cfg.learn.bonus_rule == "upstream" and cfg.behavior.eval_state_mean is False
    assert apply_settings(cfg, ["learn.bonus_rule=causal"]).learn.bonus_rule == "causal"
    with pytest.raises(UserError, match="bonus_rule must be one of upstream, causal"):
        apply_settings(cfg, ["learn.bonus_rule=forward"])


def test_resuming_a_checkpoint_from_before_the_unit_change_is_refused(tmp_path):
    import torch

    from cwm.rl.loop import CHECKPOINT_KIND, Run, load_rl_checkpoint

    old = make_rl_config("dmc", preset="tiny")
    path = tmp_path / "checkpoints" / "rl-0000000400.pt"
    path.parent.mkdir()
    torch.save({"kind": CHECKPOINT_KIND, "format": 1, "config": old.to_dict(),
                "counters": {"env_steps": 400}}, path)
    with pytest.raises(UserError) as err:
        load_rl_checkpoint(path)
    message = str(err.value)
    assert "predates the unit change" in message and "agent steps" in message
    assert "\n" not in message
    # A run directory holding it is refused before anything is built or written.
    with pytest.raises(UserError, match="predates the unit change"):
        Run(old, tmp_path, None, torch.device("cpu"), print)
    assert not (tmp_path / "config.json").exists()


def test_cli_and_config_do_not_import_torch():
    """`cwm-rl --help` and reading a config stay light (torch costs ~2 s per process)."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from cwm.cli import rl\n"
            "from cwm.rl.config import make_rl_config\n"
            "make_rl_config('dmc', 'cartpole-balance', 'small', 'dreamerv2')\n"
            "rl.cli.main(['--help'], standalone_mode=False)\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_action_repeat_option_reaches_the_envs_and_binds_a_run():
    from cwm.rl.loop import env_config

    cfg = make_rl_config("dmc", preset="small", action_repeat=4)
    assert cfg.action_repeat == 4
    assert f"loop.prefill = {cfg.loop.prefill}  # agent steps = {cfg.loop.prefill * 4:,} frames" \
        in format_config(cfg).splitlines()
    env = env_config(cfg, 7)
    assert (env.family, env.task, env.seed, env.action_repeat) == ("dmc", cfg.task, 7, 4)
    assert env_config(make_rl_config("dmc", preset="small"), 0).action_repeat == 2
    # A run's frames per step cannot change on resume, nor be below one.
    with pytest.raises(UserError, match="action_repeat"):
        resume_config(make_rl_config("dmc", preset="small"), cfg, Path("run"))
    with pytest.raises(UserError, match="--action-repeat must be at least 1"):
        make_rl_config("dmc", preset="small", action_repeat=0)


def test_cpu_preset_is_small_with_the_actor_bound():
    """`--preset cpu`: the small preset's sizes, budget and family protocol, plus the one option
    experiments/cpu_preset kept (the actor's raw outputs softly bounded)."""
    for env in ("dmc", "metaworld"):
        small, cpu = make_rl_config(env, preset="small"), make_rl_config(env, preset="cpu")
        assert cpu.preset == "cpu" and cpu.behavior.actor_raw_bound == 2.0
        assert small.behavior.actor_raw_bound == 0.0
        assert dataclasses.replace(cpu.behavior, actor_raw_bound=0.0) == small.behavior
        assert (cpu.model, cpu.learn, cpu.loop) == (small.model, small.learn, small.loop)
