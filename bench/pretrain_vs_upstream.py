"""Pre-training step of ours vs upstream thuml/ContextWM, side by side on this machine, same batch.

    python bench/pretrain_vs_upstream.py [--upstream /tmp/upstream] [--kinds contextwm,plain]
        [--modes reference,eager,default] [--steps 2] [--rounds 1] [--threads 2]

Upstream runs from its own checkout and virtual environment (`--upstream DIR` holds `src/` with
`wmlib` and `venv/bin/python`; set it up as DEVELOPERS.md describes); without one the upstream
side is skipped with a message and ours is still timed. Each measurement is a fresh process:
build the world model at the paper preset (batch 16 x 25, 64x64, RSSM 1024, depth 48; upstream's
`apv_pretraining.yaml` defaults + `metaworld_pretrain` + `contextualized` or `plainresnet`,
`--precision 32`), warm up, then time `--steps` whole training steps on one byte-identical uint8
batch saved as .npy (upstream's step: `next_batch`'s float conversion + `APV_Pretrain.train`;
ours: `cwm.model.train.train_step`). Per step it records wall time and the process's CPU time
(steadier than wall on a shared machine); per process, peak RSS and the parameter count, which
must agree between the two sides. The order of the processes alternates between kinds and
rounds, so a neighbour's load falls on every side alike; the machine's load average is recorded
before each process. Prints a Markdown table and writes every number as JSON.

Our modes are `cwm-train --speed` paths (`cwm.model.fast`): `reference` (eager, NCHW decoder,
for-loop Adam: the numerics yardstick), `eager` (channels-last, fused AdamW, no compilation) and
`default` (what `cwm-train` does without flags: at the paper preset `compiled`; its compiled code
comes from the persistent cache after the first run on a machine, and its warm-up column is that
process's compile time plus one step: cold on a fresh machine, warm after). Our processes run
under the allocator our commands choose (`cwm.allocator`: tcmalloc where installed, unless
CWM_ALLOCATOR says otherwise), upstream's under the system's malloc as it ships;
`--upstream-tcmalloc` adds upstream under tcmalloc too, for the like-for-like ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cwm.allocator import preload_env  # noqa: E402  (light: no torch)

KINDS = ("contextwm", "plain")
BATCH, LENGTH, SIZE = 16, 25, 64


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _time_steps(step, warmup: int, steps: int) -> dict:
    warm0 = time.perf_counter()
    for _ in range(warmup):
        step()
    warmup_s = time.perf_counter() - warm0
    wall, cpu, losses = [], [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        losses.append(step())
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return {"warmup_s": warmup_s, "step_s": wall, "cpu_s": cpu, "losses": losses,
            "rss_peak_mib": _peak_rss_mib()}


def worker_upstream(src: str, kind: str, batch_dir: str, warmup: int, steps: int) -> dict:
    """Upstream's paper-preset world model and training step (runs under upstream's venv)."""
    import numpy as np
    import torch

    sys.path.insert(0, src)
    import ruamel.yaml as yaml
    import wmlib
    import wmlib.agents as agents
    import wmlib.utils as utils

    configs = yaml.safe_load((Path(src) / "configs" / "apv_pretraining.yaml").read_text())
    config = utils.Config(configs["defaults"])
    for name in ("metaworld_pretrain", "contextualized" if kind == "contextwm" else "plainresnet"):
        config = config.update(configs[name])
    config = config.update({"precision": 32})
    torch.manual_seed(0)
    np.random.seed(0)

    class Space:
        def __init__(self, *shape):
            self.shape = shape

    obs_space = {"image": Space(SIZE, SIZE, 3), "reward": Space(), "is_first": Space(),
                 "is_last": Space(), "is_terminal": Space()}
    agent = agents.APV_Pretrain(config, obs_space, {"action": Space(1)}, utils.Counter(0))
    agent.init_optimizers()
    params = sum(p.numel() for p in agent.wm.parameters())

    frames = torch.from_numpy(np.load(Path(batch_dir) / "frames.npy"))
    # What upstream's replay loader hands over: uint8 [B, T, C, H, W] (its chunks are transposed
    # to channels-first and stacked by the DataLoader), booleans, zero actions.
    is_first = torch.zeros(BATCH, LENGTH, dtype=torch.bool)
    is_first[:, 0] = True
    raw = {"image": frames.permute(0, 1, 4, 2, 3).contiguous(), "is_first": is_first,
           "is_last": torch.zeros_like(is_first), "is_terminal": torch.zeros_like(is_first),
           "action": torch.zeros(BATCH, LENGTH, 1)}
    train = wmlib.CarryOverState(agent.train)

    def step() -> float:
        batch = {k: v.to(dtype=torch.float32) for k, v in raw.items()}  # its next_batch
        return float(train(batch)["model_loss"])

    return {"params": params, **_time_steps(step, warmup, steps)}


def worker_ours(kind: str, mode: str, batch_dir: str, warmup: int, steps: int) -> dict:
    import numpy as np
    import torch

    from cwm.model.config import make_config
    from cwm.model.fast import prepare, resolve_speed, uses_fused_optimizer, wrap
    from cwm.model.runtime import Runtime, resolve_device
    from cwm.model.train import make_optimizer, train_step
    from cwm.model.world_model import WorldModel, count_parameters

    torch.manual_seed(0)
    cfg = make_config("paper", kind)
    rt = Runtime(resolve_device("cpu"))
    model = WorldModel(cfg.model).to(rt.device)
    speed = resolve_speed("auto" if mode == "default" else mode, "paper")
    how = prepare(model, speed)
    net = wrap(model, speed)
    opt = make_optimizer(model, cfg, fused=uses_fused_optimizer(speed))
    frames = torch.from_numpy(np.load(Path(batch_dir) / "frames.npy"))
    ctx_index = torch.from_numpy(np.load(Path(batch_dir) / "context_index.npy"))
    context = frames[torch.arange(BATCH), ctx_index].clone()

    def step() -> float:
        return float(train_step(net, model, opt, frames, context, rt, cfg.train.grad_clip)["loss"])

    return {"params": count_parameters(model), "how": how, **_time_steps(step, warmup, steps)}


def make_batch(directory: Path, seed: int = 0) -> None:
    """One fixed batch: smooth moving blobs plus noise, uint8 [16, 25, 64, 64, 3], and the
    context frame index of each clip (upstream draws its own inside the model)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(LENGTH)[None, :, None, None, None]
    y, x = np.mgrid[:SIZE, :SIZE]
    phase = rng.uniform(0, 2 * np.pi, (BATCH, 1, 1, 1, 3))
    speed = rng.uniform(0.1, 0.4, (BATCH, 1, 1, 1, 1))
    wave = np.sin(x[None, None, :, :, None] / 6.0 + speed * t + phase) * \
        np.cos(y[None, None, :, :, None] / 9.0 - speed * t)
    frames = 127.5 + 100 * wave + rng.normal(0, 10, (BATCH, LENGTH, SIZE, SIZE, 3))
    np.save(directory / "frames.npy", frames.clip(0, 255).astype(np.uint8))
    np.save(directory / "context_index.npy", rng.integers(0, LENGTH, BATCH))


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--upstream", default=os.environ.get("CWM_UPSTREAM", "/tmp/upstream"),
                    help="directory with upstream's src/ (wmlib) and venv/bin/python")
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--modes", default="reference,eager,default",
                    help="our paths to time: reference, eager, compiled, default (cwm-train's)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2, help="timed steps per process")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps per process first")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="bench/pretrain_vs_upstream.json")
    ap.add_argument("--upstream-tcmalloc", action="store_true",
                    help="also time upstream under tcmalloc (the allocator our commands choose), "
                         "for a like-for-like ratio")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--kind", help=argparse.SUPPRESS)
    ap.add_argument("--batch-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:
        import torch

        torch.set_num_threads(args.threads)
        if args.worker == "upstream":
            out = worker_upstream(str(Path(args.upstream) / "src"), args.kind, args.batch_dir,
                                  args.warmup, args.steps)
        else:
            out = worker_ours(args.kind, args.worker, args.batch_dir, args.warmup, args.steps)
        print(json.dumps(out))
        return

    kinds = args.kinds.split(",")
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("reference", "eager", "compiled", "default"):
            sys.exit(f"error: unknown mode {m!r}; use any of reference, eager, compiled, default")
    up_python = Path(args.upstream) / "venv" / "bin" / "python"
    sides = list(modes)
    if (Path(args.upstream) / "src" / "wmlib").is_dir() and up_python.is_file():
        sides = ["upstream"] + (["upstream-tcmalloc"] if args.upstream_tcmalloc else []) + sides
    else:
        print(f"upstream not found at {args.upstream} (needs src/wmlib and venv/bin/python): "
              f"timing ours only", file=sys.stderr)

    root = Path(__file__).resolve().parents[1]
    runs = []
    with tempfile.TemporaryDirectory(prefix="cwm-bench-batch-") as batch_dir:
        make_batch(Path(batch_dir))
        n = 0
        for r in range(args.rounds):
            for kind in kinds:
                order = sides if n % 2 == 0 else sides[::-1]
                n += 1
                for side in order:
                    upstream = side.startswith("upstream")
                    python = str(up_python) if upstream else sys.executable
                    cmd = [python, str(Path(__file__).resolve()), "--worker",
                           "upstream" if upstream else side,
                           "--kind", kind, "--batch-dir", batch_dir, "--upstream", args.upstream,
                           "--steps", str(args.steps), "--warmup", str(args.warmup),
                           "--threads", str(args.threads)]
                    env = {**os.environ, "PYTHONPATH": str(root)}
                    if upstream:                 # as it ships: the system's malloc
                        env.pop("PYTHONPATH")
                        env.pop("LD_PRELOAD", None)
                    if side == "upstream-tcmalloc" or not upstream:
                        # ours as `cwm-train` runs (cwm.allocator: tcmalloc where installed)
                        env = preload_env({**env, "CWM_ALLOCATOR": "tcmalloc"} if upstream
                                          else env)
                    load = load_average()
                    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
                    if out.returncode != 0:
                        sys.exit(f"error: {side} {kind} failed:\n{out.stderr[-3000:]}")
                    res = json.loads(out.stdout.strip().splitlines()[-1])
                    res.update(side=side, kind=kind, round=r, load_before=load,
                               load_after=load_average(),
                               allocator="tcmalloc" if "tcmalloc" in env.get("LD_PRELOAD", "")
                               else "system")
                    runs.append(res)
                    Path(args.json).write_text(json.dumps(runs, indent=1) + "\n")  # so far
                    print(f"round {r} {kind:9s} {side:9s} wall {statistics.median(res['step_s']):6.2f}s "
                          f"cpu {statistics.median(res['cpu_s']):6.2f}s warm-up {res['warmup_s']:6.1f}s "
                          f"rss {res['rss_peak_mib'] / 1024:.2f} GiB params {res['params']:,} "
                          f"load {load:.1f}", file=sys.stderr, flush=True)

    print(report(runs, kinds, sides))


def report(runs: list[dict], kinds: list[str], sides: list[str]) -> str:
    lines = ["| model | side | allocator | params | step, wall (s) | rate vs upstream, wall | "
             "rate vs upstream under tcmalloc, wall | step, CPU (s) | rate vs upstream, CPU | "
             "peak RSS (GiB) | warm-up (s) | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in kinds:
        med = {}
        for side in sides:
            rs = [x for x in runs if x["kind"] == kind and x["side"] == side]
            med[side] = (statistics.median([s for x in rs for s in x["step_s"]]),
                         statistics.median([s for x in rs for s in x["cpu_s"]]))
        for side in sides:
            rs = [x for x in runs if x["kind"] == kind and x["side"] == side]
            wall, cpu = med[side]
            up, up_tc = med.get("upstream"), med.get("upstream-tcmalloc")
            rw = f"{up[0] / wall:.2f}x" if up else "-"
            rt = f"{up_tc[0] / wall:.2f}x" if up_tc else "-"
            rc = f"{up[1] / cpu:.2f}x" if up else "-"
            loads = [x["load_before"] for x in rs] + [x["load_after"] for x in rs]
            lines.append(
                f"| {kind} | {side} | {rs[0].get('allocator', '?')} | {rs[0]['params']:,} | "
                f"{wall:.2f} | {rw} | {rt} | {cpu:.2f} | {rc} | "
                f"{max(x['rss_peak_mib'] for x in rs) / 1024:.2f} | "
                f"{statistics.median(x['warmup_s'] for x in rs):.0f} | "
                f"{min(loads):.1f}-{max(loads):.1f} |")
        params = {x["params"] for x in runs if x["kind"] == kind}
        if len(params) > 1:
            lines.append(f"| {kind} | **parameter counts differ: {sorted(params)}** "
                         "| | | | | | | | | | |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
