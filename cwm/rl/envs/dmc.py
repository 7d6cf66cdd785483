"""DeepMind Control Suite tasks from pixels (`walker-walk`, `cartpole-balance`, ...).

Camera 2 for quadruped (the others' camera 0 loses the body), action repeat 2, the suite's own
1,000-control-step limit (500 agent steps at repeat 2) which ends episodes with `truncated`; a
zero discount from the suite is a true terminal (`terminated`). No success signal: always False.
"""

from __future__ import annotations

import numpy as np

from cwm.rl.envs.base import PixelEnv
from cwm.rl.envs.render import Renderer, RenderMode, select_backend

ACTION_REPEAT = 2


def task_names() -> list[str]:
    """Every suite task as `<domain>-<task>`, sorted."""
    select_backend()
    from dm_control import suite

    return sorted(f"{domain}-{task}" for domain, task in suite.ALL_TASKS)



def default_camera(domain: str) -> int:
    return 2 if domain == "quadruped" else 0


class DMCEnv(PixelEnv):
    """A dm_control suite task as a `PixelEnv` (observation and action conventions in base.py)."""

    def __init__(
        self,
        task: str,
        seed: int = 0,
        render: RenderMode = "default",
        size: int = 64,
        action_repeat: int = ACTION_REPEAT,
        camera: int | None = None,
    ):
        # dm_control picks its GL backend when imported, so the choice must come first.
        select_backend()
        from dm_control import suite

        self.task = task
        domain, name = task.split("-", 1)
        self._env = suite.load(domain, name, task_kwargs={"random": seed})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.physics = self._env.physics
        self.camera = default_camera(domain) if camera is None else camera
        self._renderer = Renderer(self.physics.model.ptr, size, camera=self.camera, mode=render)
        fps = 1.0 / (self._env.control_timestep() * action_repeat)
        super().__init__(
            action_dim=spec.shape[0], size=size, action_repeat=action_repeat, seed=seed, fps=fps
        )

    def _reset_sim(self, seed: int | None) -> None:
        if seed is not None:
            self._env.task.random.seed(seed)
        self._env.reset()

    def _step_sim(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        scaled = self._low + (action.astype(np.float64) + 1.0) * 0.5 * (self._high - self._low)
        ts = self._env.step(scaled)
        terminated = ts.last() and ts.discount == 0.0
        truncated = ts.last() and not terminated
        return float(ts.reward or 0.0), terminated, truncated, False

    def _render(self) -> np.ndarray:
        return self._renderer.render(self.physics.data.ptr)

    def close(self) -> None:
        self._renderer.close()
        self._env.close()
