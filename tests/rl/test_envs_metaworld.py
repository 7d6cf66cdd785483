"""Meta-world from pixels: gymnasium contract, orientation, fresh goals, episode end, success."""

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from cwm.rl.envs.registry import make_env


@pytest.fixture(scope="module")
def reach():
    env = make_env("metaworld", "reach-v3", seed=3, render="fast")
    yield env
    env.close()


def test_passes_gymnasium_env_checker(reach):
    check_env(reach, skip_render_check=False)


def _brownness(rows: np.ndarray) -> float:
    """How much the wooden table's colour (red well above blue) dominates these rows."""
    rows = rows.astype(np.float32)
    return float((rows[..., 0] - rows[..., 2]).mean())


def test_image_is_right_side_up():
    env = make_env("metaworld", "drawer-open", seed=0)
    obs, _ = env.reset()
    image = obs["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    # Upright, the table fills the bottom of the picture and the grey floor the top.
    assert _brownness(image[-16:]) > _brownness(image[:16]) + 10
    # The camera itself is rolled over: its image-up axis points down in the world.
    model, data = env.unwrapped._env.model, env.unwrapped._env.data
    cam_up = data.cam_xmat[model.camera("corner2").id].reshape(3, 3)[:, 1]
    assert cam_up[2] < 0
    env.close()


def test_fresh_goal_every_reset_and_seed_reproduces(reach):
    goals = []
    for _ in range(3):
        reach.reset()
        goals.append(reach.goal)
    assert not np.allclose(goals[0], goals[1]) and not np.allclose(goals[1], goals[2])
    reach.reset(seed=11)
    a = reach.goal
    reach.reset(seed=11)
    assert np.allclose(a, reach.goal)


def test_episode_is_500_substeps_and_repeat_stops_on_truncation():
    # 500 is not a multiple of 3: the last agent step must stop after 2 sub-steps, not raise.
    env = make_env("metaworld", "reach", seed=0, render="fast", size=16, action_repeat=3)
    obs, _ = env.reset()
    steps, truncated = 0, False
    while not truncated:
        obs, _, terminated, truncated, _ = env.step(np.zeros(4, np.float32))
        assert not terminated
        steps += 1
    assert steps == 167 and obs["is_last"] and not obs["is_terminal"]
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.zeros(4, np.float32))
    env.close()


def test_success_is_reported_when_any_substep_succeeds():
    from metaworld.policies import SawyerReachV3Policy

    env = make_env("metaworld", "reach", seed=0, render="fast", size=16, action_repeat=2)
    policy = SawyerReachV3Policy()
    env.reset()
    inner = env.unwrapped._env
    success = False
    for _ in range(100):
        action = policy.get_action(inner._get_obs()).astype(np.float32)
        _, _, _, _, info = env.step(action)
        if info["success"]:
            success = True
            break
    assert success
    env.close()
