"""Speed of the cwm-rl loop at the `metaworld` preset on this machine: where a frame's time goes.

    MUJOCO_GL=egl .venv/bin/python bench/rl_loop_speed.py [--task reach] [--preset metaworld]
        [--env-steps 200] [--updates 2] [--policy-steps 100] [--model-preset small]
        [--renders default,fast]

Builds the loop's own parts (`cwm.rl.loop.Run`: spawned env process, HDF5 replay, agent at the
preset's sizes) and times, for `--render default` and `--render fast`:
  - env: steps/s of the training env process with the policy's actions replaced by random ones,
    split into physics and rendering (measured inside the env process) and IPC;
  - policy: ms per `Agent.act` (encoder + z and s filtering + actor) for one env;
  - training: world-model + actor-critic updates at the preset's batch (50 x 50, or
    `--batch-size` sequences of 50), updates/s.
Then the loop's frames/s follows from its schedule (one update per `train_every` agent steps,
= frames on Meta-world; the loop trains while the env process renders, so env and training
overlap):
    serial     1 / (env + policy + update / train_every)
    overlapped 1 / (policy + max(env, update / train_every))
A full preset run (5,000 prefill frames, 255k frames) is out of reach on a CPU; these parts are
what it is made of. `--model-preset P` also measures, in the same run and render mode, the world
model sized as `cwm-train --preset P` sizes it (what a fine-tuning run with `--pretrained` or
`--model-like` of such a checkpoint trains) and reports its update time as a ratio to the RL
preset's own sizes. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cwm.model.config import make_config as make_model_config
from cwm.rl.config import make_rl_config
from cwm.rl.loop import Factories, Run


def measure(preset: str, task: str, render: str, env_steps: int, updates: int,
            policy_steps: int, batch_size: int | None, model_preset: str | None = None) -> dict:
    model = make_model_config(model_preset, "contextwm").model if model_preset else None
    cfg = make_rl_config("metaworld", task, preset, render=render, model=model,
                         prefill=max(env_steps, 50), pretrain_updates=0, batch_size=batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(cfg, Path(tmp) / "run", Factories(), torch.device("cpu"), lambda s: None)
        try:
            rng = np.random.default_rng(0)
            obs, _ = run.envs.reset()
            reward = np.zeros(run.n)
            success = np.zeros(run.n, bool)
            action = np.zeros((run.n, run.action_dim), np.float32)
            t0, clock = time.perf_counter(), run.env_timings()
            for _ in range(env_steps):
                run.record(obs, reward, success, action)
                action = rng.uniform(-1, 1, (run.n, run.action_dim)).astype(np.float32)
                obs, reward, _, _, info = run.envs.step(action)
                success = np.asarray(info["success"], bool)
            env_wall = (time.perf_counter() - t0) / env_steps
            inner = {k: (v - clock[k]) / env_steps for k, v in run.env_timings().items()}
            run.replay.flush()

            image = torch.from_numpy(obs["image"])
            first = torch.from_numpy(obs["is_first"])
            state = None
            for _ in range(3):
                _, state = run.agent.act(image, first, state, explore=True)
            t0 = time.perf_counter()
            for _ in range(policy_steps):
                _, state = run.agent.act(image, first, state, explore=True)
            policy = (time.perf_counter() - t0) / policy_steps

            times = []
            for _ in range(updates):
                t0 = time.perf_counter()
                run.update()
                times.append(time.perf_counter() - t0)
            update = float(np.median(times))
        finally:
            run.close()
    per_frame_train = update / cfg.loop.train_every
    return {
        "render": render,
        "model_preset": model_preset,
        "env_steps_per_s": 1 / env_wall,
        "env_ms": 1000 * env_wall,
        "physics_ms": 1000 * inner["physics"],
        "render_ms": 1000 * inner["render"],
        "policy_ms": 1000 * policy,
        "update_s": update,
        "updates_per_s": 1 / update,
        "batch": f"{cfg.loop.batch_size}x{cfg.loop.seq_len}",
        "train_every": cfg.loop.train_every,
        "loop_frames_per_s_serial": 1 / (env_wall + policy + per_frame_train),
        "loop_frames_per_s_overlapped": 1 / (policy + max(env_wall, per_frame_train)),
        "loop_frames_per_s_without_training": 1 / (env_wall + policy),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="reach")
    ap.add_argument("--preset", default="metaworld")
    ap.add_argument("--env-steps", type=int, default=200)
    ap.add_argument("--updates", type=int, default=2)
    ap.add_argument("--policy-steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=None,
                    help="Sequences per update (preset default; 50 x 50 frames at the paper sizes "
                         "needs more memory than a small machine has)")
    ap.add_argument("--model-preset", default=None,
                    help="Also measure the world model at this cwm-train preset's sizes (what "
                         "--pretrained loads), beside the RL preset's own, in the same run")
    ap.add_argument("--renders", default="default,fast",
                    help="Comma-separated render modes to measure")
    args = ap.parse_args()
    out = {"preset": args.preset, "task": args.task, "torch_threads": None, "results": []}
    renders = args.renders.split(",")
    sizes = [None, args.model_preset] if args.model_preset else [None]
    for render in renders:
        for model_preset in sizes:
            out["results"].append(measure(args.preset, args.task, render, args.env_steps,
                                          args.updates, args.policy_steps, args.batch_size,
                                          model_preset))
        out["torch_threads"] = torch.get_num_threads()
    own = {r["render"]: r for r in out["results"] if r["model_preset"] is None}
    if args.model_preset:
        out["update_ratio_model_preset_vs_own"] = {
            r["render"]: round(r["update_s"] / own[r["render"]]["update_s"], 2)
            for r in out["results"] if r["model_preset"] is not None}
    if renders == ["default", "fast"]:
        out["fast_vs_default_env"] = round(own["fast"]["env_steps_per_s"]
                                           / own["default"]["env_steps_per_s"], 2)
    out["results"] = [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                      for r in out["results"]]
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
