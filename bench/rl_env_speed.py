"""Env steps/s from pixels: physics vs render time, `--render fast` vs default, 2 processes vs 1.

    MUJOCO_GL=egl .venv/bin/python bench/rl_env_speed.py [--steps 100] [--repeats 3]

Single env (in this process): for Meta-world drawer-open and DMC walker-walk, each render mode
steps `--steps` random actions; reported: steps/s and ms per step in physics and in rendering.
Parallel: `make_parallel_envs` with 1 and with 2 Meta-world envs (one process each), total env
steps/s. On a shared machine absolute numbers wander, so every repeat measures the compared
settings back to back and the figures are medians over repeats, ratios included.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np

from cwm.rl.envs.parallel import make_parallel_envs
from cwm.rl.envs.registry import EnvConfig

TASKS = (("metaworld", "drawer-open"), ("dmc", "walker-walk"))


def single_env(config: EnvConfig, steps: int) -> dict[str, float]:
    env = config.make()
    rng = np.random.default_rng(0)
    env.reset()
    env.timings.update(physics=0.0, render=0.0)
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
        if terminated or truncated:
            env.reset()
    wall = time.perf_counter() - start
    timings = dict(env.timings)
    env.close()
    return {
        "steps_per_s": steps / wall,
        "physics_ms": 1000 * timings["physics"] / steps,
        "render_ms": 1000 * timings["render"] / steps,
    }


def parallel(configs: list[EnvConfig], steps: int) -> float:
    """Total env steps/s of len(configs) processes stepping `steps` times together."""
    envs = make_parallel_envs(configs)
    try:
        envs.reset()
        rng = np.random.default_rng(0)
        shape = envs.action_space.shape
        envs.step(rng.uniform(-1, 1, shape).astype(np.float32))  # first step pays lazy set-up
        start = time.perf_counter()
        for _ in range(steps):
            envs.step(rng.uniform(-1, 1, shape).astype(np.float32))
        return len(configs) * steps / (time.perf_counter() - start)
    finally:
        envs.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--parallel-render", default="default", choices=("default", "fast"))
    args = p.parse_args()
    print(f"# cpus={os.cpu_count()} load={os.getloadavg()[0]:.1f} MUJOCO_GL={os.environ.get('MUJOCO_GL')}")

    rows = []
    for family, task in TASKS:
        runs = {"default": [], "fast": []}
        for _ in range(args.repeats):
            for mode in runs:
                runs[mode].append(single_env(EnvConfig(family, task, render=mode), args.steps))
        ratios = [f["steps_per_s"] / d["steps_per_s"] for d, f in zip(runs["default"], runs["fast"])]
        for mode, results in runs.items():
            row = {k: statistics.median(r[k] for r in results) for k in results[0]}
            rows.append({"env": f"{family} {task}", "render": mode, **row})
        rows.append({"env": f"{family} {task}", "fast_over_default": statistics.median(ratios), "all": ratios})

    one, two = [], []
    for _ in range(args.repeats):
        configs = [EnvConfig("metaworld", "drawer-open", seed=s, render=args.parallel_render) for s in (0, 1)]
        one.append(parallel(configs[:1], args.steps))
        two.append(parallel(configs, args.steps))
    ratios = [b / a for a, b in zip(one, two)]
    rows.append(
        {
            "parallel": f"metaworld drawer-open, render {args.parallel_render}",
            "1_proc_steps_per_s": statistics.median(one),
            "2_proc_steps_per_s": statistics.median(two),
            "speedup": statistics.median(ratios),
            "all": ratios,
        }
    )
    for row in rows:
        print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}))


if __name__ == "__main__":
    main()
