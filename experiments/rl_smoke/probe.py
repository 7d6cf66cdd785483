"""One learning-check run with actor-critic settings the CLI does not expose (the probes of README.md).

    .venv/bin/python experiments/rl_smoke/probe.py OUT --task cartpole-swingup --seed 1 \
        --steps 12000 --actor-raw-bound 2 --actor-entropy 1e-2

Same run as `run.sh` (`small` preset, DMC, fast rendering, evaluation every 2,000 frames) with
`BehaviorConfig.actor_raw_bound` / `actor_entropy` and `LoopConfig.prefill_hold` replaced; rerunning resumes like `cwm-rl`.
"""

from __future__ import annotations

import argparse
import dataclasses

from cwm.rl.config import make_rl_config
from cwm.rl.loop import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--task", default="cartpole-swingup")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12000)
    parser.add_argument("--actor-raw-bound", type=float, default=0.0)
    parser.add_argument("--actor-entropy", type=float, default=None)
    parser.add_argument("--prefill-hold", type=float, default=1.0)
    args = parser.parse_args()
    cfg = make_rl_config("dmc", args.task, "small", seed=args.seed, render="fast",
                         steps=args.steps, eval_every=2000, prefill_hold=args.prefill_hold)
    behavior = dataclasses.replace(cfg.behavior, actor_raw_bound=args.actor_raw_bound)
    if args.actor_entropy is not None:
        behavior = dataclasses.replace(behavior, actor_entropy=args.actor_entropy)
    train(dataclasses.replace(cfg, behavior=behavior), args.out, progress=False)


if __name__ == "__main__":  # env worker processes are spawned: keep module import side-effect free
    main()
