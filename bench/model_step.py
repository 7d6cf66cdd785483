"""Train-step time, peak memory and data wait of the `paper` preset (16 x 25 clips, 64x64).

    python bench/model_step.py --shards 'DIR/*.tar' [--rounds 2] [--steps 2] [--speeds eager,compiled]

Each (model kind, round) runs in a fresh subprocess so its peak RSS is its own: build the model,
one warm-up step, then `--steps` timed steps of the real training step (`cwm.model.train.
train_step`: forward, backward, clip 100, Adam) fed by the real shard loader (2 workers), for
each `--speeds` path of `cwm-train --speed` (`cwm.model.fast`).
Rounds alternate the order of the kinds, so a neighbour's load on the machine falls on all of
them alike; process CPU time per step is reported beside wall time because on a shared machine
it is the steadier measure of the work a step does. Prints a Markdown table and writes the raw numbers as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("contextwm", "plain", "dreamerv2")


def worker(kind: str, shards: str, steps: int, speed: str, threads: int) -> dict:
    import torch

    from cwm.model.config import make_config
    from cwm.model.fast import prepare, resolve_speed, uses_fused_optimizer, wrap
    from cwm.model.runtime import Runtime, resolve_device
    from cwm.model.train import make_optimizer, peak_rss_mib, train_step
    from cwm.model.world_model import WorldModel, count_parameters
    from cwm.shards.loader import make_clip_loader

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = make_config("paper", kind)
    rt = Runtime(resolve_device("auto"))
    model = WorldModel(cfg.model).to(rt.device)
    speed = resolve_speed(speed, cfg.preset)
    prepare(model, speed)
    opt = make_optimizer(model, cfg, fused=uses_fused_optimizer(speed))
    net = wrap(model, speed)
    loader = make_clip_loader(shards, batch_size=cfg.train.batch_size, seq_len=cfg.train.seq_len,
                              num_workers=2, seed=0)
    batches = iter(loader)
    step_s, wait_s, cpu_s = [], [], []
    warmup_s = None
    for i in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        batch = next(batches)
        t1 = time.perf_counter()
        train_step(net, model, opt, batch["frames"].to(rt.device), batch["context"].to(rt.device),
                   rt, cfg.train.grad_clip)
        t2, c2 = time.perf_counter(), time.process_time()
        if i == 0:
            warmup_s = t2 - t0
        else:
            step_s.append(t2 - t0)
            wait_s.append(t1 - t0)
            cpu_s.append(c2 - c0)
    return {"kind": kind, "speed": speed, "params": count_parameters(model),
            "warmup_s": warmup_s, "step_s": step_s, "wait_s": wait_s, "cpu_s": cpu_s,
            "rss_peak_mib": peak_rss_mib(), "threads": threads, "device": str(rt.device)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", required=True)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per (kind, round)")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--speeds", default="auto", help="comma-separated cwm-train --speed values")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench/model_step.json")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-speed", default="auto", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        print(json.dumps(worker(args.worker, args.shards, args.steps, args.worker_speed,
                                args.threads)))
        return

    kinds = args.kinds.split(",")
    from cwm.model.fast import resolve_speed

    modes = [resolve_speed(m, "paper") for m in args.speeds.split(",")]
    runs = []
    for r in range(args.rounds):
        order = kinds if r % 2 == 0 else kinds[::-1]
        for mode in modes:
            for kind in order:
                cmd = [sys.executable, __file__, "--worker", kind, "--shards", args.shards,
                       "--steps", str(args.steps), "--threads", str(args.threads),
                       "--worker-speed", mode]
                out = subprocess.run(cmd, capture_output=True, text=True,
                                     env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
                if out.returncode != 0:
                    sys.exit(f"{kind} (speed {mode}) failed:\n{out.stderr[-3000:]}")
                res = json.loads(out.stdout.strip().splitlines()[-1])
                res["round"] = r
                runs.append(res)
                print(f"round {r} {kind:10s} speed={res['speed']:9s} step "
                      f"{statistics.median(res['step_s']):.2f}s  warm-up {res['warmup_s']:.1f}s  "
                      f"rss {res['rss_peak_mib']:.0f} MiB", file=sys.stderr)

    Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")
    print("| model | speed | params | median step, wall (s) | wall vs plain | "
          "median step, CPU time (s) | CPU time vs plain | data wait | peak RSS (GiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for mode in modes:
        med, cpu = {}, {}
        for kind in kinds:
            rs = [x for x in runs if x["kind"] == kind and x["speed"] == mode]
            med[kind] = statistics.median([s for x in rs for s in x["step_s"]])
            cpu[kind] = statistics.median([s for x in rs for s in x["cpu_s"]])
        for kind in kinds:
            rs = [x for x in runs if x["kind"] == kind and x["speed"] == mode]
            wait = sum(w for x in rs for w in x["wait_s"]) / sum(s for x in rs for s in x["step_s"])
            rss = max(x["rss_peak_mib"] for x in rs) / 1024
            ratio = med[kind] / med["plain"] if "plain" in med else float("nan")
            cratio = cpu[kind] / cpu["plain"] if "plain" in cpu else float("nan")
            print(f"| {kind} | {mode} | {rs[0]['params']:,} | {med[kind]:.2f} | "
                  f"{ratio:.2f}x | {cpu[kind]:.2f} | {cratio:.2f}x | {100 * wait:.1f}% | {rss:.2f} |")


if __name__ == "__main__":
    main()
