"""`cwm-ingest sim` throughput: the whole ingest vs bare rendering of the same episodes.

    MUJOCO_GL=egl .venv/bin/python bench/ingest_sim.py [--episodes 2] [--steps 100] [--repeats 3]

For each render mode, Meta-world drawer-open: (a) bare: the same episodes played in one env in
this process, the RL env stepped by the scripted policy, frames only kept in memory (what
rendering costs at least); (b) ingest: `ingest()` inline of those episodes (env build, render,
segments, parts, shards, stats). Reported: frames/s of each and their ratio, medians over
repeats that measure both back to back (absolute numbers wander on a shared machine).
`default` mode runs a quarter of the steps (it renders ~10x slower).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")

from cwm.ingest.config import FrameOptions, IngestConfig  # noqa: E402
from cwm.ingest.run import ingest  # noqa: E402
from cwm.ingest.simulate import close_env, episode_env, play  # noqa: E402
from cwm.ingest.sources import sim  # noqa: E402

TASK = "drawer-open"


def bare(episodes: list[sim.Episode]) -> float:
    start, frames = time.perf_counter(), 0
    for episode in episodes:
        env = episode_env(episode, 64)
        frames += sum(1 for _ in play(env, episode))
    close_env()
    return frames / (time.perf_counter() - start)


def whole(episodes: int, steps: int, render: str, out: Path) -> float:
    options = {"env": "metaworld", "tasks": [TASK], "episodes": episodes, "max_steps": steps,
               "render": render, "random_share": 0.0}
    cfg = IngestConfig(dataset="sim", src="", out=str(out), frames=FrameOptions(),
                       source_options=options, scheduler="inline", progress=False)
    start = time.perf_counter()
    summary = ingest(cfg, log=lambda _: None)
    assert summary.ok
    return summary.totals["frames"] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for render in ("fast", "default"):
            steps = args.steps if render == "fast" else max(1, args.steps // 4)
            plan = sim.plan_episodes("metaworld", [TASK], args.episodes, max_steps=steps,
                                     render=render, random_share=0.0)
            runs = []
            for r in range(args.repeats):
                b = bare(plan)
                w = whole(args.episodes, steps, render, Path(work) / f"{render}-{r}")
                runs.append({"bare_fps": b, "ingest_fps": w, "ratio": w / b})
            results[render] = {
                "steps": steps,
                **{k: round(statistics.median(run[k] for run in runs), 3) for k in runs[0]},
                "runs": [{k: round(v, 2) for k, v in run.items()} for run in runs],
            }
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
