"""Rendering one simulator episode (`cwm.ingest.sources.sim.Episode`) into frames, on a worker.

The environment is built exactly as `cwm-rl` builds it (`cwm.rl.envs.registry.EnvConfig` with the
family's own camera, orientation, size and action repeat, and the episode's render mode), and the
frames are its observation images: a video frame is, pixel for pixel, what the agent observes in
the same state. One frame per agent step (the reset observation first), so a video runs at the
agent's frame rate: 80 fps on Meta-world (repeat 1), 1 / (2 x control step) on DMC (repeat 2).

One env per process (Meta-world corrupts frames when two render in one process): it is kept for
the next episode of the same task and replaced when the task changes. `reset(seed=...)` reseeds
every source of randomness, so an episode's frames do not depend on what the process rendered
before, nor on how episodes were cut into tasks. Anything that goes wrong while building the env
or playing the episode is an `InputError`: the episode is recorded as failed, the task goes on.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
import warnings
from typing import Callable, Iterator

import numpy as np

from cwm.ingest.decode import DecodedVideo, InputError
from cwm.ingest.sources.sim import Episode

_current: dict = {}       # {"key": (env, task, render, size, thread), "env": PixelEnv}
_exit_hook = [False]      # registered after the first env: exit hooks run last-registered first


def close_env() -> None:
    """Close this process's env, if any. Freeing its GL context needs the context current in
    this thread, which fails at interpreter exit in a dask worker (the env was made in the task
    thread): the process is ending and loses nothing then, so a failure to free is ignored."""
    env = _current.pop("env", None)
    _current.pop("key", None)
    if env is not None:
        with contextlib.suppress(Exception):
            env.close()


def episode_env(episode: Episode, size: int):
    """This process's env for `episode`, built as `cwm-rl` builds it (see the module doc).

    A GL context can be current in one thread only: a task that runs on another thread than
    the one that made the env gets an env of its own."""
    key = (episode.env, episode.task, episode.render, size, threading.get_ident())
    if _current.get("key") != key:
        close_env()
        from cwm.rl.envs.registry import EnvConfig

        # Each worker renders on one core, as cwm-rl's env processes do (cwm.rl.envs.parallel).
        os.environ.setdefault("LP_NUM_THREADS", "1")
        env = EnvConfig(episode.env, episode.task, seed=episode.seed, render=episode.render,
                        size=size).make()
        if not _exit_hook[0]:
            # Free the GL context before the backend's own exit hook tears the display down.
            atexit.register(close_env)
            _exit_hook[0] = True
        _current.update(key=key, env=env)
    return _current["env"]


def policy(episode: Episode, env) -> Callable[[], np.ndarray]:
    """The episode's policy: next action, float32 [A] in [-1, 1], from the env's current state."""
    rng = np.random.default_rng([episode.seed, 1])     # not the env's own stream of `seed`
    shape = env.action_space.shape
    if episode.policy == "random":
        return lambda: rng.uniform(-1.0, 1.0, shape).astype(np.float32)
    from metaworld.policies import ENV_POLICY_MAP

    expert = ENV_POLICY_MAP[f"{episode.task}-v3"]()

    def act() -> np.ndarray:
        with warnings.catch_warnings():     # "Constant(s) may be too high": it clips anyway
            warnings.simplefilter("ignore")
            action = expert.get_action(env.state)
        return np.clip(action + rng.normal(0.0, episode.noise, shape), -1.0, 1.0).astype(np.float32)

    return act


def play(env, episode: Episode) -> Iterator[tuple[np.ndarray, float, bool]]:
    """Play `episode` in `env`: yields (image, reward, success) per observation, the reset one
    first (reward 0); ends when the env ends the episode or after `max_steps` agent steps."""
    obs, _ = env.reset(seed=episode.seed)
    act = policy(episode, env)
    yield obs["image"], 0.0, False
    steps = 0
    while not obs["is_last"] and (episode.max_steps is None or steps < episode.max_steps):
        obs, reward, _, _, info = env.step(act())
        steps += 1
        yield obs["image"], reward, info["success"]


def render_episode(episode: Episode, size: int, timeout: float) -> DecodedVideo:
    """All frames of `episode` at `size` x `size`; InputError (the reason) when it fails."""
    deadline = time.monotonic() + timeout
    frames, total, success = [], 0.0, False
    try:
        env = episode_env(episode, size)
        for image, reward, succeeded in play(env, episode):
            frames.append(image)
            total += reward
            success = success or succeeded
            if time.monotonic() > deadline:
                raise InputError(f"render timeout: over {timeout:g} s after {len(frames)} frames")
    except InputError:
        close_env()
        raise
    except Exception as e:  # noqa: BLE001  (a broken env or render fails this episode only)
        close_env()         # its state is unknown: the next episode starts from a fresh env
        raise InputError(f"render failed after {len(frames)} frames: "
                         f"{type(e).__name__}: {e}") from None
    fps = float(env.metadata["render_fps"])
    return DecodedVideo(
        frames=np.stack(frames), source_indices=np.arange(len(frames)), source_fps=fps,
        sampled_fps=fps, width=size, height=size, rotation=0, codec="mujoco",
        decoded=len(frames),
        meta={"action_repeat": env.action_repeat, "steps": len(frames) - 1,
              "episode_return": round(total, 4), "episode_success": success})
