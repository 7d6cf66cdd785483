"""DMC from pixels: gymnasium contract, cameras, action repeat and the episode length."""

import numpy as np
from gymnasium.utils.env_checker import check_env

from cwm.rl.envs.registry import make_env


def test_passes_gymnasium_env_checker():
    env = make_env("dmc", "cartpole-balance", seed=1, render="fast")
    check_env(env)
    obs, _ = env.reset()
    assert obs["image"].shape == (64, 64, 3) and obs["image"].dtype == np.uint8
    assert obs["is_first"] and not obs["is_last"]
    env.close()


def test_quadruped_uses_camera_2_others_camera_0():
    quad = make_env("dmc", "quadruped-walk", render="fast", size=16)
    walker = make_env("dmc", "walker-walk", render="fast", size=16)
    assert quad.camera == 2 and walker.camera == 0
    quad.close()
    walker.close()


def test_action_repeat_2_gives_500_step_episodes_ending_truncated():
    env = make_env("dmc", "cartpole-balance", seed=0, render="fast", size=16)
    env.reset()
    steps, done, total = 0, False, 0.0
    while not done:
        obs, reward, terminated, truncated, info = env.step(np.zeros(1, np.float32))
        done = terminated or truncated
        total += reward
        steps += 1
    assert steps == 500 and truncated and obs["is_last"] and not obs["is_terminal"]
    assert not info["success"]
    # Rewards of both repeated sub-steps are summed: at most 1 per sub-step, 1000 sub-steps.
    assert 0 < total <= 1000
    env.close()


def test_same_seed_same_pixels_different_seed_different_start():
    env = make_env("dmc", "walker-walk", render="fast", size=32)
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    c, _ = env.reset(seed=6)
    assert np.array_equal(a["image"], b["image"])
    assert not np.array_equal(a["image"], c["image"])
    env.close()
