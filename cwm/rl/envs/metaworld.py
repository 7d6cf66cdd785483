"""Meta-world v3 manipulation tasks from 64x64 pixels, with the paper's protocol.

- Task names as `drawer-open` (the `-v3` suffix is accepted too); all 50 v3 tasks.
- Camera `corner2` moved to [0.75, 0.075, 0.7] as upstream did; the corner cameras see the
  scene upside down, so the image is turned by 180 degrees (the table ends up at the bottom).
- A fresh goal and object placement on every reset, drawn from the env's own seeded generator
  (upstream draws from the global numpy generator; seeding it per env makes runs repeatable).
- 500-step episodes that end with `truncated` (never `terminated`); success = any
  `info["success"]` of the sub-steps; action repeat 1 by default.
- One Meta-world env per process: Meta-world's own renderer corrupts frames when several envs
  share a process. This module renders through `render.Renderer`, which makes its context
  current on every frame, but the run loop still keeps one env per process (see `parallel.py`).
"""

from __future__ import annotations

import numpy as np

from cwm.rl.envs.base import PixelEnv
from cwm.rl.envs.render import Renderer, RenderMode, select_backend

CAMERA = "corner2"
CAMERA_POS = (0.75, 0.075, 0.7)
EPISODE_STEPS = 500


def task_names() -> list[str]:
    """The 50 v3 task names without their `-v3` suffix, sorted."""
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return sorted(name.removesuffix("-v3") for name in ALL_V3_ENVIRONMENTS)


def canonical(task: str) -> str:
    return task.removesuffix("-v3")


class MetaWorldEnv(PixelEnv):
    """A Meta-world task as a `PixelEnv` (observation and action conventions in base.py)."""

    def __init__(
        self,
        task: str,
        seed: int = 0,
        render: RenderMode = "default",
        size: int = 64,
        action_repeat: int = 1,
        camera: str = CAMERA,
    ):
        select_backend()
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS

        self.task = canonical(task)
        env = ALL_V3_ENVIRONMENTS[f"{self.task}-v3"]()
        # What `set_task` would do, minus the frozen goal: the task's only per-task argument
        # (`task_id`) is unused by v3 envs, so no benchmark object (50 resets) is needed.
        env._set_task_called = True
        env._partially_observable = False
        env._freeze_rand_vec = False
        env.seeded_rand_vec = True
        env.max_path_length = EPISODE_STEPS
        if camera == CAMERA:
            env.model.cam_pos[env.model.camera(CAMERA).id] = CAMERA_POS
        self._env = env
        self._state: np.ndarray | None = None
        self._renderer = Renderer(env.model, size, camera=camera, mode=render)
        fps = 1.0 / (env.dt * action_repeat)
        super().__init__(action_dim=4, size=size, action_repeat=action_repeat, seed=seed, fps=fps)

    def _reset_sim(self, seed: int | None) -> None:
        if seed is not None:
            self._env.seed(seed)
        self._state, _ = self._env.reset()

    def _step_sim(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        self._state, reward, terminated, truncated, info = self._env.step(action)
        return float(reward), bool(terminated), bool(truncated), bool(info["success"])

    def _render(self) -> np.ndarray:
        # Upside down from the corner cameras: a 180-degree turn, not a mirror.
        return np.ascontiguousarray(self._renderer.render(self._env.data)[::-1, ::-1])

    @property
    def state(self) -> np.ndarray:
        """The task's own 39-float observation of the current step (hand, objects, goal): what
        Meta-world's scripted policies (`metaworld.policies`) act on; the agent sees only pixels."""
        if self._state is None:
            raise RuntimeError("state before reset()")
        return self._state

    @property
    def goal(self) -> np.ndarray:
        """The goal/placement vector drawn at the last reset (differs between resets)."""
        return np.array(self._env._last_rand_vec)

    def close(self) -> None:
        self._renderer.close()
        self._env.close()
