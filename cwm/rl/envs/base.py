"""What every pixel environment of `cwm` looks like to the agent (a gymnasium.Env).

Observation (a dict, `observation_space` is a `spaces.Dict`):
    image        uint8 [size, size, 3]  RGB, top row first (right side up)
    is_first     bool []                True only on the observation returned by `reset`
    is_last      bool []                True on the final observation of an episode
    is_terminal  bool []                True when the episode ended in a true terminal state
                                        (time limits are `is_last` without `is_terminal`)
Action: float32 [A] in [-1, 1] (each family rescales to its own bounds).
Step: `(obs, reward, terminated, truncated, info)` as gymnasium; `reward` is summed over the
action repeat, `info["success"]` is True when any repeated sub-step reported success (always
False for families without a success signal). Episode boundaries travel in the observation as
well as in `terminated/truncated`, so replay and world model need no control flow to see them.

Seeding: the constructor's `seed` seeds the first `reset()`; `reset(seed=s)` reseeds everything
(physics noise, goals, looks), so the same seed replays the same episode.

Subclasses implement three small hooks (`_reset_sim`, `_step_sim`, `_render`); this class owns
the action-repeat loop (which stops early when an episode ends: Meta-world raises if stepped past
its limit) and the split of time between physics and rendering that the benchmark reports.
"""

from __future__ import annotations

import abc
import time
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


def observation_space(size: int) -> spaces.Dict:
    flag = spaces.Box(0, 1, (), bool)
    return spaces.Dict(
        {
            "image": spaces.Box(0, 255, (size, size, 3), np.uint8),
            "is_first": flag,
            "is_last": flag,
            "is_terminal": flag,
        }
    )


class PixelEnv(gym.Env, abc.ABC):
    """Base class: action repeat, observation dict, timing. See the module docstring."""

    metadata = {"render_modes": ["rgb_array"]}
    render_mode = "rgb_array"

    def __init__(self, action_dim: int, size: int, action_repeat: int, seed: int, fps: float):
        # Agent steps per second of simulated time: the frame rate of a video of the episode.
        self.metadata = {**self.metadata, "render_fps": fps}
        self.observation_space = observation_space(size)
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.size = size
        self.action_repeat = action_repeat
        self._next_seed: int | None = seed
        self._image: np.ndarray | None = None
        self._done = True
        # Seconds spent in physics and in rendering since construction (read by the benchmark).
        self.timings = {"physics": 0.0, "render": 0.0}

    # Hooks for subclasses -------------------------------------------------------------------
    @abc.abstractmethod
    def _reset_sim(self, seed: int | None) -> None:
        """Start a new episode; reseed every source of randomness first when `seed` is given."""

    @abc.abstractmethod
    def _step_sim(self, action: np.ndarray) -> tuple[float, bool, bool, bool]:
        """One sub-step with a float32 [A] action in [-1, 1] -> (reward, terminated, truncated, success)."""

    @abc.abstractmethod
    def _render(self) -> np.ndarray:
        """uint8 [size, size, 3] of the current state."""

    # gymnasium API ----------------------------------------------------------------------------
    def _observe(self, first: bool, last: bool, terminal: bool) -> dict[str, Any]:
        t = time.perf_counter()
        self._image = self._render()
        self.timings["render"] += time.perf_counter() - t
        return {
            "image": self._image,
            "is_first": np.array(first),
            "is_last": np.array(last),
            "is_terminal": np.array(terminal),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        t = time.perf_counter()
        self._reset_sim(seed)
        self.timings["physics"] += time.perf_counter() - t
        self._done = False
        return self._observe(True, False, False), {"success": False}

    def step(self, action):
        if self._done:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        action = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        reward, terminated, truncated, success = 0.0, False, False, False
        t = time.perf_counter()
        for _ in range(self.action_repeat):
            r, terminated, truncated, s = self._step_sim(action)
            reward += r
            success = success or s
            if terminated or truncated:
                break
        self.timings["physics"] += time.perf_counter() - t
        self._done = terminated or truncated
        obs = self._observe(False, self._done, terminated)
        return obs, float(reward), bool(terminated), bool(truncated), {"success": bool(success)}

    def render(self) -> np.ndarray:
        """The current observation image, uint8 [size, size, 3]."""
        if self._image is None:
            raise RuntimeError("render() before reset()")
        return self._image
