"""`sim`: action-free videos rendered from simulator episodes (Meta-world, DMC) for pre-training.

An input is an episode to play and render, not a file: `cwm.ingest.simulate` renders it on a
worker through the RL stage's own environment classes, so the videos show exactly what `cwm-rl`
observes (camera, orientation, render mode, 64x64, action repeat). The rest of the ingest is
unchanged: segments, shards, stats, resume.

Policies: Meta-world's scripted expert policies (`metaworld.policies`; Meta-world 3.1.1 ships one
for each of its 50 v3 tasks) with Gaussian noise on every action, plus a share of episodes played
by a uniformly random policy. DMC ships no scripted policies, so its episodes are random ones.
The random episodes of a task are spread evenly over its episode indices and number exactly
floor(episodes x share).

Seeds: each episode's seed (environment reset and its policy's noise) is derived from `seed`,
the env family, the task and the episode index only, so adding tasks or episodes leaves the
existing episodes as they were, and every episode is a pure function of its spec.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from cwm.errors import UserError
from cwm.ingest.sources.base import VideoInput

ENVS = ("metaworld", "dmc")
POLICIES = ("scripted", "random")
DEFAULT_NOISE = 0.1
# Share of random-policy episodes when none is given: DMC has nothing else.
DEFAULT_RANDOM_SHARE = {"metaworld": 0.1, "dmc": 1.0}
# Agent steps of a whole episode (Meta-world: 500 at action repeat 1; the DMC suite: 1,000
# control steps at action repeat 2): only for the work estimate, the env ends the episode.
EPISODE_STEPS = {"metaworld": 500, "dmc": 500}
# Rendered agent steps per second and core at 64x64, measured here (SPEC section 7): the work
# estimate that decides how many workers a run starts and how episodes are packed into tasks.
RENDER_RATES = {("metaworld", "default"): 11.0, ("metaworld", "fast"): 130.0,
                ("dmc", "default"): 46.0, ("dmc", "fast"): 339.0}


@dataclass(frozen=True)
class Episode:
    """One episode to render; every field goes into the meta.json of its segments."""

    env: str                  # "metaworld" or "dmc"
    task: str                 # as the RL stage spells it: `drawer-open`, `walker-walk`
    episode: int              # index among this task's episodes
    seed: int                 # seeds the env's reset and the policy's noise
    policy: str               # "scripted" (Meta-world's expert) or "random"
    noise: float              # std of the Gaussian noise on scripted actions (in [-1, 1] units)
    max_steps: int | None     # agent steps at most; None: the env's own episode length
    render: str               # "default" or "fast", as `cwm-rl --render`

    @property
    def estimated_frames(self) -> int:
        return (self.max_steps or EPISODE_STEPS[self.env]) + 1

    @property
    def render_rate(self) -> float:
        return RENDER_RATES[self.env, self.render]


def task_names(env: str) -> list[str]:
    """Every task of `env`, as the RL stage spells them."""
    check_env(env)
    from cwm.rl.envs.registry import task_names as all_tasks

    return all_tasks(env)


def scripted_tasks(env: str) -> list[str]:
    """The tasks of `env` that have a scripted expert policy (none on DMC)."""
    check_env(env)
    if env != "metaworld":
        return []
    from metaworld.policies import ENV_POLICY_MAP

    return sorted(name.removesuffix("-v3") for name in ENV_POLICY_MAP)


def check_env(env: str) -> None:
    if env not in ENVS:
        raise UserError(f"unknown sim env {env!r}; valid: {', '.join(ENVS)}")


def _names(text: str | list[str] | tuple[str, ...]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else text
    return [t.strip() for t in items if t.strip()]


def resolve_tasks(env: str, tasks: str | list[str], exclude: str | list[str] = ()) -> list[str]:
    """`tasks` ("all" or names, comma-separated) minus `exclude`, sorted; "all" on Meta-world is
    the tasks with a scripted policy, a DMC domain (`walker`) its tasks. A misspelt name in
    either list is a UserError."""
    from cwm.rl.envs.registry import canonical_task

    valid = task_names(env)

    def expand(name: str) -> list[str]:
        domain = [t for t in valid if env == "dmc" and t.startswith(f"{name}-")]
        if domain:
            return domain
        try:
            return [canonical_task(env, name)]
        except UserError:
            raise UserError(f"unknown {env} task {name!r}; valid: {', '.join(valid)}") from None

    wanted = _names(tasks)
    if wanted == ["all"]:
        chosen = scripted_tasks(env) if env == "metaworld" else valid
    elif not wanted:
        raise UserError("--tasks is empty: name tasks (comma-separated) or pass 'all'")
    else:
        chosen = [task for name in wanted for task in expand(name)]
    dropped = {task for name in _names(exclude) for task in expand(name)}
    left = sorted(set(chosen) - dropped)
    if not left:
        raise UserError("no task left after --exclude")
    return left


def episode_seed(seed: int, env: str, task: str, episode: int) -> int:
    """A 32-bit seed (DMC's generator takes no more) from the run seed and the episode's name."""
    entropy = [seed, zlib.crc32(f"{env}/{task}".encode()), episode]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def is_random(episode: int, share: float) -> bool:
    """Whether episode `episode` of a task plays randomly: floor(n x share) of the first n do."""
    return math.floor((episode + 1) * share + 1e-9) > math.floor(episode * share + 1e-9)


def plan_episodes(env: str, tasks: str | list[str], episodes: int, seed: int = 0,
                  noise: float = DEFAULT_NOISE, random_share: float | None = None,
                  max_steps: int | None = None, render: str = "default",
                  exclude: str | list[str] = ()) -> list[Episode]:
    """Every episode of the run, task by task; UserError for anything a user can get wrong."""
    from cwm.rl.envs.render import RENDER_MODES

    check_env(env)
    if episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {episodes}")
    if noise < 0 or not math.isfinite(noise):
        raise UserError(f"--noise must be a finite number >= 0, got {noise}")
    share = DEFAULT_RANDOM_SHARE[env] if random_share is None else random_share
    if not 0 <= share <= 1:
        raise UserError(f"--random-share must be in [0, 1], got {share}")
    if max_steps is not None and max_steps < 1:
        raise UserError(f"--max-steps must be >= 1, got {max_steps}")
    if render not in RENDER_MODES:
        raise UserError(f"unknown render mode {render!r}; valid: {', '.join(RENDER_MODES)}")
    names = resolve_tasks(env, tasks, exclude)
    scripted = set(scripted_tasks(env))
    plan = []
    for task in names:
        for i in range(episodes):
            policy = "random" if is_random(i, share) else "scripted"
            if policy == "scripted" and task not in scripted:
                where = ("DMC ships none" if env == "dmc"
                         else f"tasks with one: {', '.join(sorted(scripted))}")
                raise UserError(f"{env} task {task!r} has no scripted policy ({where}); "
                                f"pass --random-share 1 for random-policy episodes only")
            plan.append(Episode(env=env, task=task, episode=i,
                                seed=episode_seed(seed, env, task, i), policy=policy,
                                noise=noise if policy == "scripted" else 0.0,
                                max_steps=max_steps, render=render))
    return plan


def camera(env: str, task: str) -> str | int:
    """The camera the RL stage renders `task` from (recorded in meta.json)."""
    if env == "metaworld":
        from cwm.rl.envs.metaworld import CAMERA

        return CAMERA
    from cwm.rl.envs.dmc import default_camera

    return default_camera(task.split("-", 1)[0])


def list_videos(root: Path, env: str = "metaworld", tasks: str | list[str] = "all",
                episodes: int = 10, seed: int = 0, noise: float = DEFAULT_NOISE,
                random_share: float | None = None, max_steps: int | None = None,
                render: str = "default", exclude: str | list[str] = ()) -> list[VideoInput]:
    """One input per episode, named `<env>/<task>/<episode>`; `root` is unused (nothing is read).

    The GL backend is chosen here, in the driver, before any worker starts: the workers inherit
    it, and a machine without one fails at once with one line instead of once per episode.
    """
    from cwm.rl.envs.render import select_backend

    plan = plan_episodes(env, tasks, episodes, seed, noise, random_share, max_steps, render,
                         exclude)
    select_backend()
    cameras = {task: camera(env, task) for task in {e.task for e in plan}}
    return [VideoInput(video_id=f"{e.env}-{e.task}-{e.episode:05d}",
                       path=f"{e.env}/{e.task}/{e.episode:05d}", episode=e,
                       meta={**asdict(e), "camera": cameras[e.task], "crop": "none"})
            for e in plan]
