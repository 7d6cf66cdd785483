"""Replay <-> Minari datasets (the Farama standard for offline RL data), so buffers leave the project.

Mapping of one complete replay episode of T+1 steps (s_0 is_first ... s_T is_last; each step holds
an observation and the action/reward that led to it, see `cwm.rl.replay`) to Minari's layout:
    observations  {"image", "is_first", "is_last", "is_terminal"}: [T+1, ...]  (s_0 .. s_T)
    actions       float32 [T, A]  = action of s_1 .. s_T
    rewards       [T]             = reward of s_1 .. s_T
    terminations  [T]             = is_terminal of s_1 .. s_T
    truncations   [T]             True only at the end when the last step is not terminal
    infos         {"success": [T]}
`load_minari` inverts it (zeros for the action and reward of s_0), so export then import gives
back the same steps. Images are stored losslessly (Minari's default JPEG encoding is turned off).
Episodes cut by eviction or by a crash are not exported. A dataset exported with an `EnvConfig`
records a gymnasium spec, so `minari.load_dataset(id).recover_environment()` rebuilds the env.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import asdict
from typing import Iterator

import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from cwm.errors import UserError
from cwm.rl.envs.base import observation_space
from cwm.rl.envs.registry import GYM_ID, EnvConfig
from cwm.rl.replay import Replay

OBS_KEYS = ("image", "is_first", "is_last", "is_terminal")


@contextlib.contextmanager
def _datasets_path(path: str | os.PathLike | None) -> Iterator[None]:
    """Point Minari at `path` for the duration (it reads MINARI_DATASETS_PATH on every call)."""
    if path is None:
        yield
        return
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path)
    try:
        yield
    finally:
        if old is None:
            del os.environ["MINARI_DATASETS_PATH"]
        else:
            os.environ["MINARI_DATASETS_PATH"] = old


def _episode_buffer(episode: dict[str, np.ndarray], index: int):
    from minari.data_collector import EpisodeBuffer

    terminal = bool(episode["is_terminal"][-1])
    truncations = np.zeros(len(episode["reward"]) - 1, bool)
    truncations[-1] = not terminal
    return EpisodeBuffer(
        id=index,
        observations={key: episode[key] for key in OBS_KEYS},
        actions=episode["action"][1:].astype(np.float32),
        rewards=episode["reward"][1:].astype(np.float64).tolist(),
        terminations=episode["is_terminal"][1:].tolist(),
        truncations=truncations.tolist(),
        infos={"success": episode["success"][1:].astype(bool)},
    )


def export_minari(
    replay_dir: str | os.PathLike,
    dataset_id: str,
    env: EnvConfig | None = None,
    datasets_path: str | os.PathLike | None = None,
    author: str | None = None,
    description: str | None = None,
) -> dict[str, int]:
    """Write every complete episode of the replay in `replay_dir` as Minari dataset `dataset_id`
    (`namespace/name-v0` form), under `datasets_path` (default: Minari's, MINARI_DATASETS_PATH
    or ~/.minari/datasets). Returns {"episodes", "steps"} exported.
    """
    import minari

    if not os.path.isdir(replay_dir):
        raise UserError(f"no replay directory at {replay_dir}")
    # A capacity no replay reaches: opening for export must never evict.
    replay = Replay(replay_dir, capacity=sys.maxsize)
    try:
        buffers = [_episode_buffer(ep, i) for i, ep in enumerate(replay.episodes()) if len(ep["reward"]) > 1]
    finally:
        replay.close()
    if not buffers:
        raise UserError(f"replay {replay_dir} holds no complete episode to export")
    image = buffers[0].observations["image"]
    obs_space = observation_space(image.shape[1])
    act_space = spaces.Box(-1.0, 1.0, buffers[0].actions.shape[1:], np.float32)
    spec = None
    if env is not None:
        spec = EnvSpec(
            id=GYM_ID, entry_point="cwm.rl.envs.registry:make_env", kwargs=asdict(env), disable_env_checker=True
        )
    with _datasets_path(datasets_path):
        try:
            minari.create_dataset_from_buffers(
                dataset_id,
                buffers,
                env=spec,
                observation_space=obs_space,
                action_space=act_space,
                algorithm_name="cwm-rl",
                author=author or "cwm-rl",
                description=description or f"cwm-rl replay buffer: {len(buffers)} pixel episodes",
                jpeg_encoding=False,
            )
        except ValueError as e:  # malformed id, or a dataset of that id already exists
            raise UserError(f"cannot export Minari dataset {dataset_id!r}: {e}") from None
    return {"episodes": len(buffers), "steps": sum(len(b.rewards) + 1 for b in buffers)}


def load_minari(
    dataset_id: str,
    replay: Replay,
    worker: int = 0,
    datasets_path: str | os.PathLike | None = None,
) -> dict[str, int]:
    """Append every episode of local Minari dataset `dataset_id` to `replay` as `worker`'s stream.

    Works for datasets exported here and for any Minari dataset whose observation is an image
    (uint8 [H, W, 3]) or a dict holding one under "image". Returns {"episodes", "steps"} added.
    """
    import minari

    with _datasets_path(datasets_path):
        try:
            dataset = minari.load_dataset(dataset_id)
        except (FileNotFoundError, ValueError) as e:
            raise UserError(f"cannot load Minari dataset {dataset_id!r} locally: {e}") from None
    episodes = steps = 0
    for ep in dataset.iterate_episodes():
        images = ep.observations["image"] if isinstance(ep.observations, dict) else ep.observations
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise UserError(f"Minari dataset {dataset_id!r} has no uint8 [H, W, 3] image observations")
        actions = np.asarray(ep.actions, np.float32)
        success = np.asarray((ep.infos or {}).get("success", np.zeros(len(actions), bool)), bool)
        n = len(actions)
        for t in range(n + 1):
            replay.add(
                {
                    "image": images[t],
                    "action": actions[t - 1] if t else np.zeros(actions.shape[1:], np.float32),
                    "reward": float(ep.rewards[t - 1]) if t else 0.0,
                    "is_first": t == 0,
                    "is_last": t == n,
                    "is_terminal": bool(ep.terminations[t - 1]) if t else False,
                    "success": bool(success[t - 1]) if t else False,
                },
                worker=worker,
            )
        episodes += 1
        steps += n + 1
    return {"episodes": episodes, "steps": steps}
