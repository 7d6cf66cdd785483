"""cwm-rl's DreamerV2 beside upstream thuml/ContextWM's own, at equal settings: update rate and
whole-loop frames/s, each side in fresh subprocesses, alternating.

    MUJOCO_GL=egl python bench/rl_vs_upstream.py [--sizes small,paper] [--reps 3]
        [--updates 20] [--paper-reps 1] [--paper-updates 1] [--loop-reps 1] [--loop-steps 1500]
        [--loop-prefill 1000] [--loop-pretrain 10] [--threads 1] [--profile] [--reference]
        [--upstream /tmp/upstream]

(a) update: one process per side and repetition builds the agent at the named sizes, takes one
    fixed batch (seeded random pixels, actions, rewards; `is_first` at the start of every
    sequence) and times `--updates` updates after 2 warm-up updates (1 at `paper`, where an
    update takes ~25 CPU-s): updates/s of wall time and
    CPU seconds per update (`time.process_time`, all threads). Ours is `Agent.update`, upstream's
    is `DreamerV2.train` with its state carried over as its loop does. Sizes:
        small  `cwm-rl --preset small --agent dreamerv2` (CNN depth 8, RSSM 200, 16 x 16 latents,
               heads 2 x 200, batch 8 x 24, horizon 15);
        paper  `--preset dmc --agent dreamerv2` (CNN depth 48, RSSM 1024, 32 x 32 latents,
               heads 4 x 400, batch 16 x 50) - upstream's DreamerV2 network sizes.
    Upstream gets the same sizes through its flags (experiments/rl_parity/README.md translates
    them; at `paper` its `dmc_vision` RSSM 200 is raised to ours, 1024).
(b) loop: both training scripts on DMC cartpole-balance, same pixels (`--render fast` /
    `WMLIB_FAST_RENDER=1`), `small` sizes, a short budget: `--loop-prefill` agent steps of random
    prefill, `--loop-pretrain` pre-train updates, one update per 4 agent steps up to
    `--loop-steps`, one evaluation episode at the start and the end. Reported: training frames
    (agent steps x 2) per second of the whole command's wall time, and the CPU seconds of the
    command and its children (env processes included).
`--profile` adds one profiled update per side after the timed ones (`torch.profiler`, CPU ms by
phase: ours world model / imagine / actor / critic, upstream world model / imagine / behaviour,
where behaviour includes its imagination; the profiler's own overhead inflates small ops, so read
the phases as shares).

Allocators: ours runs under the one `cwm-rl` chooses (`cwm.allocator`: tcmalloc where installed),
upstream under the system's malloc as it ships; `--upstream-tcmalloc` adds upstream under
tcmalloc as a third side, for the like-for-like ratio.

Every process runs torch with `--threads` threads (default 1, as both loops run next to their env
processes on a 2-core machine). Prints one JSON object; the ratios are ours / upstream's.
Upstream is prepared outside this repository as experiments/rl_parity/README.md describes.
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

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
from cwm.allocator import preload_env  # noqa: E402  (light: no torch)

SIZES = {
    # ours: (preset, batch, seq_len); upstream: the flags giving the same networks and batch.
    "small": ("small", 8, 24, ["--rssm.deter", "200", "--rssm.hidden", "200", "--rssm.stoch", "16",
                               "--rssm.discrete", "16", "--encoder.cnn_depth", "8",
                               "--decoder.cnn_depth", "8", "--reward_head.layers", "2",
                               "--reward_head.units", "200", "--actor.layers", "2",
                               "--actor.units", "200", "--critic.layers", "2",
                               "--critic.units", "200", "--dataset.batch", "8",
                               "--dataset.length", "24"]),
    "paper": ("dmc", 16, 50, ["--rssm.deter", "1024", "--rssm.hidden", "1024", "--rssm.stoch", "32",
                              "--rssm.discrete", "32", "--encoder.cnn_depth", "48",
                              "--decoder.cnn_depth", "48", "--reward_head.layers", "4",
                              "--reward_head.units", "400", "--actor.layers", "4",
                              "--actor.units", "400", "--critic.layers", "4",
                              "--critic.units", "400", "--dataset.batch", "16",
                              "--dataset.length", "50"]),
}
# Settings both sides share whatever the sizes (upstream's names; ours are the presets' values).
UPSTREAM_COMMON = ["--configs", "dmc_vision", "--task", "dmc_cartpole_balance", "--precision", "32",
                   "--clip_rewards", "identity", "--pred_discount", "False", "--kl.free", "1.0"]


def fixed_batch(batch: int, length: int, action_dim: int, seed: int = 0) -> dict:
    """The numpy batch both sides train on: uint8 pixels, actions in [-1, 1], rewards, flags."""
    import numpy as np

    rng = np.random.default_rng(seed)
    is_first = np.zeros((batch, length), bool)
    is_first[:, 0] = True
    return {"image": rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8),
            "action": rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32),
            "reward": rng.uniform(0, 1, (batch, length)).astype(np.float32),
            "is_first": is_first, "is_last": np.zeros((batch, length), bool),
            "is_terminal": np.zeros((batch, length), bool)}


def _timed(step, updates: int, warmup: int) -> dict:
    for _ in range(warmup):
        step()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(updates):
        step()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"updates": updates, "updates_per_s": updates / wall,
            "wall_s_per_update": wall / updates,
            "cpu_s_per_update": cpu / updates}


def _profile(step, phases: dict[str, str] | None = None) -> dict:
    """CPU ms of one update by top-level op, and by `record_function` phase when named."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = prof.key_averages()
    out = {"top_ops_self_ms": {e.key: round(e.self_cpu_time_total / 1000, 1) for e in
                               sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]}}
    if phases:
        totals = {e.key: e.cpu_time_total / 1000 for e in events}
        out["phases_ms"] = {name: round(totals.get(label, 0.0), 1)
                            for name, label in phases.items()}
    return out


def worker_ours(size: str, updates: int, warmup: int, profile: bool, fast: bool) -> dict:
    import torch

    from cwm.rl.agent import make_agent
    from cwm.rl.config import make_rl_config

    preset, b, t, _ = SIZES[size]
    cfg = make_rl_config("dmc", "cartpole-balance", preset, agent="dreamerv2", fast_update=fast)
    agent = make_agent(cfg, action_dim=1, device=torch.device("cpu"))
    batch = {k: torch.from_numpy(v) for k, v in fixed_batch(b, t, 1).items()
             if k in ("image", "action", "reward", "is_first")}
    out = _timed(lambda: agent.update(batch), updates, warmup)
    if profile:
        out["profile"] = _profile(lambda: agent.update(batch),
                                  {name: f"cwm.update.{name}" for name in
                                   ("world_model", "imagine", "actor", "critic")})
    return out


def worker_upstream(size: str, updates: int, warmup: int, profile: bool, upstream: str) -> dict:
    sys.path.insert(0, str(Path(upstream) / "src"))
    import ruamel.yaml as yaml
    import torch

    import wmlib
    import wmlib.agents as agents
    import wmlib.envs as envs
    import wmlib.utils as utils

    src = Path(upstream) / "src"
    configs = yaml.safe_load((src / "configs" / "dreamerv2.yaml").read_text())
    argv = UPSTREAM_COMMON + SIZES[size][3]
    parsed, remaining = utils.Flags(configs=["defaults"]).parse(argv, known_only=True)
    config = utils.Config(configs["defaults"])
    for name in parsed.configs:
        config = config.update(configs[name])
    config = utils.Flags(config).parse(remaining)
    torch.manual_seed(0)
    env = envs.NormalizeAction(envs.DMC("cartpole_balance", 2, (64, 64), -1))
    agent = agents.DreamerV2(config, env.obs_space, env.act_space, utils.Counter(0))
    agent.init_optimizers()
    _, b, t, _ = SIZES[size]
    # As its replay and its loop's `next_batch` hand it over: channels-first pixels (its replay
    # transposes when sampling), every entry as float32.
    data = fixed_batch(b, t, 1)
    data["image"] = data["image"].transpose(0, 1, 4, 2, 3)
    batch = {k: torch.from_numpy(v).float() for k, v in data.items()}
    train = wmlib.CarryOverState(agent.train)
    out = _timed(lambda: train(batch), updates, warmup)
    if profile:
        # Its phases, labelled by wrapping its methods (its code has no labels of its own):
        # world model = `wm.train_iter` (loss, backward, step), imagine = `wm.imagine` (forward),
        # behaviour = `ActorCritic.train` (imagination, actor and critic losses, backward, steps).
        from torch.profiler import record_function

        def label(obj, name, tag):
            fn = getattr(obj, name)

            def wrapped(*a, **k):
                with record_function(tag):
                    return fn(*a, **k)
            setattr(obj, name, wrapped)

        label(agent.wm, "train_iter", "upstream.world_model")
        label(agent.wm, "imagine", "upstream.imagine")
        label(agent._task_behavior, "train", "upstream.behavior")
        out["profile"] = _profile(lambda: train(batch),
                                  {name: f"upstream.{name}" for name in
                                   ("world_model", "imagine", "behavior")})
    return out


def side_env(side: str, env: dict[str, str]) -> dict[str, str]:
    """The allocator of each side: ours as `cwm-rl` runs (cwm.allocator: tcmalloc where
    installed), upstream's as it ships (the system's malloc), `upstream-tcmalloc` under tcmalloc."""
    env = {k: v for k, v in env.items() if k != "LD_PRELOAD"}
    if side == "ours":
        return preload_env(env)
    if side == "upstream-tcmalloc":
        return preload_env({**env, "CWM_ALLOCATOR": "tcmalloc"})
    return env


def run_worker(side: str, size: str, args) -> dict:
    """One fresh process of `side`; its JSON result with the load average at its start."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    if side.startswith("upstream"):
        python, cwd = f"{args.upstream}/venv/bin/python", f"{args.upstream}/src"
        env["PYTHONPATH"] = ""
        env.setdefault("MUJOCO_GL", "egl")
    else:
        python, cwd = sys.executable, str(ROOT)
        env["PYTHONPATH"] = str(ROOT)
    env = side_env(side, env)
    updates, warmup = (args.updates, 2) if size == "small" else (args.paper_updates, 1)
    cmd = [python, str(HERE), "_worker", side.split("-")[0], size, str(updates), str(warmup),
           str(args.threads),
           args.upstream, "1" if args.profile else "0", "0" if args.reference else "1"]
    load = os.getloadavg()[0]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: the {side} worker failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load": load}


# -- (b) whole loop -------------------------------------------------------------------------------

def loop_commands(args, out: Path) -> dict[str, tuple[list[str], dict, str]]:
    steps, prefill, pretrain = args.loop_steps, args.loop_prefill, args.loop_pretrain
    ours = [sys.executable, "-m", "cwm.cli.rl", "--env", "dmc", "--task", "cartpole-balance",
            "--agent", "dreamerv2", "--preset", "small", "--render", "fast", "--seed", "0",
            "--steps", str(steps), "--eval-every", str(steps), "--out", str(out / "ours"),
            "--no-progress", "--set", f"loop.prefill={prefill}",
            "--set", f"loop.pretrain_updates={pretrain}", "--set", "loop.eval_episodes=1"]
    if args.reference:
        ours += ["--set", "loop.fast_update=false"]
    # Upstream's loop runs one extra update before its pre-train ones (its benchmarking pass).
    upstream = [f"{args.upstream}/venv/bin/python", "examples/train_dreamerv2.py",
                "--logdir", str(out / "upstream"), *UPSTREAM_COMMON, "--seed", "0",
                "--steps", str(steps + 1), "--stop_steps", str(steps), "--prefill", str(prefill),
                "--pretrain", str(max(pretrain - 1, 0)), "--train_every", "4",
                "--eval_every", str(steps - prefill), "--eval_eps", "1", "--log_every", "250",
                "--replay.minlen", "24", "--replay.maxlen", "24", *SIZES["small"][3]]
    base = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MUJOCO_GL": "egl"}
    return {"ours": (ours, {**base, "PYTHONPATH": str(ROOT)}, str(ROOT)),
            "upstream": (upstream, {**base, "PYTHONPATH": "", "WMLIB_FAST_RENDER": "1"},
                         f"{args.upstream}/src")}


def run_loop(side: str, args, tmp: Path) -> dict:
    cmd, env, cwd = loop_commands(args, tmp / f"{side}-{time.monotonic_ns()}")[side.split("-")[0]]
    env = side_env(side, env)      # ours: cwm-rl would re-execute itself into the same
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"error: the {side} loop failed:\n{proc.stdout[-2000:]}\n"
                         f"{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    frames = 2 * args.loop_steps
    return {"frames": frames, "wall_s": wall, "frames_per_s": frames / wall, "cpu_s": cpu,
            "load": load}


def _median(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_worker":
        side, size, updates, warmup, threads, upstream, profile, fast = sys.argv[2:10]
        import torch

        torch.set_num_threads(int(threads))
        if side == "ours":
            out = worker_ours(size, int(updates), int(warmup), profile == "1", fast == "1")
        else:
            out = worker_upstream(size, int(updates), int(warmup), profile == "1", upstream)
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="small,paper")
    ap.add_argument("--reps", type=int, default=3, help="processes per side at small")
    ap.add_argument("--paper-reps", type=int, default=1, help="processes per side at paper")
    ap.add_argument("--updates", type=int, default=20, help="timed updates per process at small")
    ap.add_argument("--paper-updates", type=int, default=1,
                    help="timed updates per process at paper (after one warm-up update)")
    ap.add_argument("--loop-reps", type=int, default=1, help="whole-loop runs per side (0: none)")
    ap.add_argument("--loop-steps", type=int, default=1500)
    ap.add_argument("--loop-prefill", type=int, default=1000)
    ap.add_argument("--loop-pretrain", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--reference", action="store_true", help="ours on its reference path")
    ap.add_argument("--upstream", default="/tmp/upstream")
    ap.add_argument("--upstream-tcmalloc", action="store_true",
                    help="also run upstream under tcmalloc (the allocator cwm-rl chooses), for a "
                         "like-for-like ratio")
    args = ap.parse_args()
    if not Path(args.upstream, "venv", "bin", "python").exists():
        raise SystemExit(f"error: no upstream set-up at {args.upstream} "
                         "(experiments/rl_parity/README.md)")
    result: dict = {"threads": args.threads, "reference": args.reference, "update": {}, "loop": {}}
    sides = ["ours", "upstream"] + (["upstream-tcmalloc"] if args.upstream_tcmalloc else [])
    for size in [s for s in args.sizes.split(",") if s]:
        if size not in SIZES:
            raise SystemExit(f"error: unknown size {size!r}; choose from {', '.join(SIZES)}")
        rows = {side: [] for side in sides}
        for rep in range(args.reps if size == "small" else args.paper_reps):
            for side in (sides if rep % 2 == 0 else sides[::-1]):
                rows[side].append(run_worker(side, size, args))
                row = rows[side][-1]
                print(f"update {size} {side} rep {rep}: {row['updates_per_s']:.3f} updates/s, "
                      f"{row['cpu_s_per_update']:.3f} CPU-s/update, load {row['load']:.1f}",
                      file=sys.stderr)
        med = {side: {k: _median(r, k) for k in ("updates_per_s", "cpu_s_per_update")}
               for side, r in rows.items()}
        result["update"][size] = {
            "runs": rows, "median": med,
            "ours_vs_upstream_updates_per_s": med["ours"]["updates_per_s"]
            / med["upstream"]["updates_per_s"],
            "upstream_vs_ours_cpu_s": med["upstream"]["cpu_s_per_update"]
            / med["ours"]["cpu_s_per_update"]}
        if "upstream-tcmalloc" in med:
            result["update"][size]["ours_vs_upstream_tcmalloc_updates_per_s"] = (
                med["ours"]["updates_per_s"] / med["upstream-tcmalloc"]["updates_per_s"])
    with tempfile.TemporaryDirectory() as tmp:
        rows = {side: [] for side in sides}
        for rep in range(args.loop_reps):
            for side in (sides if rep % 2 == 0 else sides[::-1]):
                rows[side].append(run_loop(side, args, Path(tmp)))
                row = rows[side][-1]
                print(f"loop {side} rep {rep}: {row['frames_per_s']:.1f} frames/s, "
                      f"{row['cpu_s']:.1f} CPU-s, load {row['load']:.1f}", file=sys.stderr)
        if args.loop_reps:
            med = {side: {k: _median(r, k) for k in ("frames_per_s", "cpu_s")}
                   for side, r in rows.items()}
            result["loop"] = {"runs": rows, "median": med,
                              "ours_vs_upstream_frames_per_s": med["ours"]["frames_per_s"]
                              / med["upstream"]["frames_per_s"],
                              "upstream_vs_ours_cpu_s": med["upstream"]["cpu_s"]
                              / med["ours"]["cpu_s"]}
            if "upstream-tcmalloc" in med:
                result["loop"]["ours_vs_upstream_tcmalloc_frames_per_s"] = (
                    med["ours"]["frames_per_s"] / med["upstream-tcmalloc"]["frames_per_s"])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
