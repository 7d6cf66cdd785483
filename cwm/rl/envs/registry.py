"""`make_env`: the one entry point from an (env family, task name) to a pixel environment.

Families: `metaworld` (50 v3 tasks, `drawer-open`, `-v3` optional), `dmc` (`<domain>-<task>`),
`dmcr` (DMC with Remastered-style looks, same task names). Unknown names are a `UserError` that
lists the valid ones. `EnvConfig` is the same thing as a dataclass, for a run's `config.json`.

The factory is also registered with gymnasium as `cwm/Pixel-v0`, so
`gymnasium.make("cwm/Pixel-v0", family=..., task=...)` works, and a Minari dataset exported from
a replay can rebuild its environment (`dataset.recover_environment()`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym

from cwm.errors import UserError
from cwm.rl.envs.base import PixelEnv
from cwm.rl.envs.render import RENDER_MODES, RenderMode

FAMILIES: tuple[str, ...] = ("metaworld", "dmc", "dmcr")
GYM_ID = "cwm/Pixel-v0"


@dataclass
class EnvConfig:
    """Everything that defines an environment's observations; saved with every run.

    `action_repeat` None means the family's protocol (Meta-world 1, DMC 2). `visual_seed` and
    `vary_camera` only apply to `dmcr`.
    """

    family: str
    task: str
    seed: int = 0
    render: RenderMode = "default"
    size: int = 64
    action_repeat: int | None = None
    visual_seed: int = 0
    vary_camera: bool = False

    def make(self) -> PixelEnv:
        return make_env(**asdict(self))


def task_names(family: str) -> list[str]:
    """Valid task names of `family` (UserError for an unknown family)."""
    if family == "metaworld":
        from cwm.rl.envs import metaworld

        return metaworld.task_names()
    if family in ("dmc", "dmcr"):
        from cwm.rl.envs import dmc

        return dmc.task_names()
    raise UserError(f"unknown env family {family!r}; valid: {', '.join(FAMILIES)}")


def canonical_task(family: str, task: str) -> str:
    """`task` as the family spells it (`drawer-open-v3` -> `drawer-open`); UserError if unknown."""
    names = task_names(family)
    name = task.removesuffix("-v3") if family == "metaworld" else task
    if name not in names:
        raise UserError(f"unknown {family} task {task!r}; valid: {', '.join(names)}")
    return name


def make_env(
    family: str,
    task: str,
    seed: int = 0,
    render: RenderMode = "default",
    size: int = 64,
    action_repeat: int | None = None,
    visual_seed: int = 0,
    vary_camera: bool = False,
) -> PixelEnv:
    """A pixel environment with the conventions of `cwm.rl.envs.base` (dict obs, [-1, 1] actions)."""
    if render not in RENDER_MODES:
        raise UserError(f"unknown render mode {render!r}; valid: {', '.join(RENDER_MODES)}")
    task = canonical_task(family, task)
    common = dict(seed=seed, render=render, size=size)
    if action_repeat is not None:
        common["action_repeat"] = action_repeat
    if family == "metaworld":
        from cwm.rl.envs.metaworld import MetaWorldEnv

        return MetaWorldEnv(task, **common)
    if family == "dmc":
        from cwm.rl.envs.dmc import DMCEnv

        return DMCEnv(task, **common)
    from cwm.rl.envs.dmcr import DMCREnv

    return DMCREnv(task, visual_seed=visual_seed, vary_camera=vary_camera, **common)


if GYM_ID not in gym.registry:
    gym.register(id=GYM_ID, entry_point="cwm.rl.envs.registry:make_env", disable_env_checker=True)
