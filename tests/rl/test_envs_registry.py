"""Env names and options: clear one-line errors for what does not exist."""

import pytest

from cwm.errors import UserError
from cwm.rl.envs.registry import EnvConfig, canonical_task, make_env, task_names


def test_metaworld_has_the_50_v3_tasks_and_accepts_the_suffix():
    names = task_names("metaworld")
    assert len(names) == 50 and "drawer-open" in names
    assert canonical_task("metaworld", "drawer-open-v3") == "drawer-open"


def test_dmc_names_are_domain_dash_task():
    names = task_names("dmc")
    assert {"walker-walk", "cartpole-balance", "quadruped-run", "ball_in_cup-catch"} <= set(names)
    assert task_names("dmcr") == names


@pytest.mark.parametrize(
    "family, task, words",
    [
        ("atari", "pong", ["atari", "metaworld, dmc, dmcr"]),
        ("metaworld", "drawer-opne", ["drawer-opne", "drawer-open"]),
        ("dmc", "walker_walk", ["walker_walk", "walker-walk"]),
        ("dmcr", "walker-fly", ["walker-fly", "cheetah-run"]),
    ],
)
def test_unknown_names_are_user_errors_listing_valid_ones(family, task, words):
    with pytest.raises(UserError) as e:
        make_env(family, task)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_unknown_render_mode():
    with pytest.raises(UserError, match="render mode"):
        EnvConfig("dmc", "walker-walk", render="pretty").make()
