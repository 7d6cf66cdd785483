"""The RL fine-tuning loop, as a plain function over factories: `train(cfg, run_dir, factories)`.

One call collects experience, trains and evaluates one run directory (or resumes it):

    <run>/config.json         the RLConfig (+ parameter counts, device)
    <run>/metrics.jsonl       rows with `step` = env frames (agent steps x action repeat):
                              training losses and speed every `log_every` agent steps,
                              `train_return` per finished episode, `eval_return`
                              (+ `eval_success` on Meta-world) per evaluation
    <run>/tb/                 the same scalars as TensorBoard events
    <run>/replay/             the HDF5 replay (`cwm.rl.replay`)
    <run>/checkpoints/rl-<frames:010d>.pt   agent, optimisers, counters, RNG, replay position
    <run>/eval/eval-<frames>.gif            the first evaluation episode of every evaluation
    <run>/curve.png           the learning curve so far

Order of a run (counts in agent steps, summed over the training envs, as upstream counts them;
`cwm.rl.config`): `prefill` agent steps of uniform random actions (each held for `prefill_hold`
agent steps on average, `cwm.rl.exploration`), then `pretrain_updates` updates, then one update
per `train_every` agent steps through an accumulator (so N parallel envs keep the same ratio),
evaluation every `eval_every` agent steps (and at the start and the end), a checkpoint every
`ckpt_every`. Updates run while the env processes render the next step, so on a CPU the two
overlap. The counters themselves are kept in frames, the unit of everything the run writes.

Resume: a rerun loads the newest checkpoint (counters, accumulator, weights, optimisers, torch
and numpy RNG, the replay's sampler RNG) and re-opens the replay directory after removing the
chunk files written after that checkpoint, so the replay holds exactly the data the counters
describe: nothing is loaded twice, the update ratio continues from the saved accumulator (no
catch-up burst), and the episodes that were in flight start afresh. Ctrl-C and SIGTERM save a
checkpoint first; a kill -9 loses at most the frames since the last checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from cwm.allocator import in_use as allocator_in_use
from cwm.atomic import atomic_path, remove_stale_tmp, write_json
from cwm.errors import UserError
from cwm.model.checkpoint import safe_load, save_atomic
from cwm.model.metrics import MetricsLogger, read_metrics
from cwm.model.pictures import save_gif
from cwm.rl.agent import Agent, count_parameters, make_agent
from cwm.rl.config import RLConfig, format_config
from cwm.rl.envs.registry import EnvConfig
from cwm.rl.exploration import PrefillActions
from cwm.rl.replay import Replay
from cwm.signals import interrupts_deferred, sigterm_as_interrupt

CHECKPOINT_KIND = "cwm-rl"
# 2: the loop's counts in the saved config are agent steps (1: env frames). A format-1 run is
# refused rather than resumed with its counts silently reinterpreted.
FORMAT_VERSION = 2
_COUNTS = "steps, prefill, train_every, eval_every, log_every, ckpt_every"
_CKPT = re.compile(r"^rl-(\d{10,})\.pt$")


# -- factories ----------------------------------------------------------------------------------

def env_seed(cfg: RLConfig, *parts: int) -> int:
    """A 31-bit seed from the run seed and `parts` (a resumed run draws fresh, reproducible episodes)."""
    return int(np.random.SeedSequence([cfg.seed, *parts]).generate_state(1)[0] & 0x7FFFFFFF)


def env_config(cfg: RLConfig, seed: int) -> EnvConfig:
    """The env a run of `cfg` acts in, seeded `seed`."""
    return EnvConfig(cfg.env, cfg.task, seed=seed, render=cfg.render,
                     action_repeat=cfg.action_repeat)


def default_envs(cfg: RLConfig, seed: int):
    """cfg.envs training envs, one spawned process each (`cwm.rl.envs.parallel`)."""
    from cwm.rl.envs.parallel import make_parallel_envs

    return make_parallel_envs([env_config(cfg, seed + i) for i in range(cfg.envs)])


def default_eval_env(cfg: RLConfig):
    """One evaluation env in its own process (Meta-world keeps one env per process)."""
    from cwm.rl.envs.parallel import make_parallel_envs

    return make_parallel_envs([env_config(cfg, env_seed(cfg, 1))])


def default_replay(directory: Path, cfg: RLConfig, discard_after: int | None = None) -> Replay:
    return Replay(directory, capacity=cfg.loop.replay_capacity, chunk_len=cfg.loop.replay_chunk,
                  seed=cfg.seed, prioritize_ends=cfg.loop.prioritize_ends,
                  discard_after=discard_after)


@dataclass
class Factories:
    """How the loop builds its parts; tests and benchmarks swap any of them.

    make_envs(cfg, seed) -> gymnasium VectorEnv of cfg.envs pixel envs (NEXT_STEP autoreset)
    make_eval_env(cfg)   -> VectorEnv of one env
    make_replay(dir, cfg, discard_after) -> Replay
    make_agent(cfg, action_dim, device) -> Agent
    """

    make_envs: Callable = default_envs
    make_eval_env: Callable = default_eval_env
    make_replay: Callable = default_replay
    make_agent: Callable = make_agent


# -- checkpoints --------------------------------------------------------------------------------

def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    d = Path(run_dir) / "checkpoints"
    if not d.is_dir():
        return []
    return sorted((int(m.group(1)), p) for p in d.iterdir() if (m := _CKPT.match(p.name)))


def load_rl_checkpoint(path: Path) -> dict:
    ckpt = safe_load(path, resuming=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != CHECKPOINT_KIND:
        raise UserError(f"{path} is not a cwm-rl checkpoint")
    if ckpt.get("format") == 1:
        raise UserError(f"{path} predates the unit change: its loop counts ({_COUNTS}) are env "
                        f"frames, and since checkpoint format 2 they are agent steps (frames / "
                        f"action repeat); it cannot be resumed, start a new run with another --out")
    if ckpt.get("format") != FORMAT_VERSION:
        raise UserError(f"{path} has format {ckpt.get('format')!r}; this version reads "
                        f"{FORMAT_VERSION}")
    return ckpt


# Budget, cadence and the update's path (the same numerics either way): the loop settings a
# resumed run may change.
_RESUME_FREE = ("steps", "eval_every", "eval_episodes", "log_every", "ckpt_every", "fast_update")


def resume_config(cfg: RLConfig, saved: RLConfig, where: Path) -> RLConfig:
    """The saved run's config, with this invocation's budget and cadence; a different run -> error.

    Every other setting must match: a resumed run that kept other settings than the ones asked
    for (another --task or --set, say) would mislabel what it measures.
    """
    loop = replace(saved.loop, **{k: getattr(cfg.loop, k) for k in _RESUME_FREE})
    pairs = [(name, getattr(cfg, name), getattr(saved, name))
             for name in ("env", "task", "agent", "preset", "seed", "render", "action_repeat")]
    for section, mine, theirs in (("learn", cfg.learn, saved.learn),
                                  ("behavior", cfg.behavior, saved.behavior),
                                  ("loop", cfg.loop, loop)):
        pairs += [(f"{section}.{f.name}", getattr(mine, f.name), getattr(theirs, f.name))
                  for f in fields(mine)]
    for name, asked, held in pairs:
        if asked != held:
            raise UserError(f"{where} holds a run with {name} = {held!r}, not {asked!r}: rerun "
                            f"with the same settings to resume it, or choose another --out")
    return replace(saved, loop=loop, envs=cfg.envs)


# -- the loop -----------------------------------------------------------------------------------



def _to_torch(batch: dict[str, np.ndarray], device: torch.device) -> dict[str, torch.Tensor]:
    keys = ("image", "action", "reward", "is_first")
    return {k: torch.from_numpy(batch[k]).to(device, non_blocking=True) for k in keys}


class _Window:
    """Sums of update metrics and timings between two log rows."""

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.updates = 0
        self.time = {"policy": 0.0, "train": 0.0, "env_wait": 0.0, "eval": 0.0}
        self.env_time = {"physics": 0.0, "render": 0.0}
        self.frames = 0
        self.start = time.perf_counter()

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for k, v in metrics.items():
            self.sums[k] = self.sums.get(k, 0.0) + float(v)
        self.updates += 1

    def row(self) -> dict[str, float]:
        row = {k: v / self.updates for k, v in self.sums.items()} if self.updates else {}
        # Evaluation episodes are not training frames: their time is left out of the speed.
        wall = time.perf_counter() - self.start - self.time["eval"]
        row["fps"] = self.frames / wall if wall > 0 else 0.0
        row["updates_per_s"] = self.updates / self.time["train"] if self.time["train"] > 0 else 0.0
        for k in ("policy", "train", "env_wait"):
            row[f"time_{k}_frac"] = self.time[k] / wall if wall > 0 else 0.0
        # Physics and rendering run in the env processes, overlapping the training above;
        # seconds summed over env processes, per wall second.
        for k, v in self.env_time.items():
            row[f"time_{k}_frac"] = v / wall if wall > 0 else 0.0
        return row


class Run:
    """State and steps of one run; `train()` below drives it."""

    def __init__(self, cfg: RLConfig, run_dir: Path, factories: Factories, device: torch.device,
                 echo: Callable[[str], None], replay_from: str | None = None):
        self.run_dir, self.factories, self.device, self.echo = run_dir, factories, device, echo
        if device.type == "cpu":
            # Each env process renders on a core of its own; torch threads beyond the rest only
            # spin against them (measured: a tiny update took 0.86 s with 2 threads next to one
            # rendering env on 2 busy cores, 0.06 s with 1).
            torch.set_num_threads(max(1, (os.cpu_count() or 1) - cfg.envs))
        found = list_checkpoints(run_dir)
        ckpt = load_rl_checkpoint(found[-1][1]) if found else None
        if ckpt is not None:
            cfg = resume_config(cfg, RLConfig.from_dict(ckpt["config"]), found[-1][1])
        self.cfg = cfg
        run_dir.mkdir(parents=True, exist_ok=True)
        # env_steps and next_* are frames; accumulator is agent steps.
        repeat = cfg.action_repeat
        self.counters = {"env_steps": 0, "updates": 0, "accumulator": 0, "episodes": 0,
                         "pretrained": False, "next_eval": 0,
                         "next_log": cfg.loop.log_every * repeat,
                         "next_ckpt": cfg.loop.ckpt_every * repeat, "replay_last_seq": -1}
        if ckpt is not None:
            self.counters.update(ckpt["counters"])
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)

        steps = self.counters["env_steps"]
        # The evaluation env's process starts now, beside the training envs' and the agent's
        # construction, instead of when the first evaluation needs it (~1.3 s of wall time).
        self.eval_env = None
        self._eval_env_pending = None
        if steps < cfg.loop.steps * repeat:
            pool = ThreadPoolExecutor(1, thread_name_prefix="eval-env")
            self._eval_env_pending = pool.submit(factories.make_eval_env, cfg)
            pool.shutdown(wait=False)
        try:
            self.envs = factories.make_envs(cfg, env_seed(cfg, 0, steps))
            self.n = self.envs.num_envs
            self.action_dim = int(self.envs.single_action_space.shape[0])
            self.agent: Agent = factories.make_agent(cfg, self.action_dim, device)
            replay_dir = run_dir / "replay"
            last_seq = self.counters["replay_last_seq"] if ckpt is not None else None
            self.replay: Replay = factories.make_replay(replay_dir, cfg, discard_after=last_seq)
            if self.replay.stats()["discarded_files"]:
                echo(f"replay: dropped {self.replay.stats()['discarded_files']} chunk(s) written "
                     "after the checkpoint")
            if ckpt is not None:
                echo(f"replay: {self.replay.stats()['loaded_steps']} steps loaded from "
                     f"{replay_dir} (checkpoint: {ckpt['replay_steps']})")
            if ckpt is not None:
                self.agent.load_state_dict(ckpt["agent"])
                self.agent.load_optim_state(ckpt["optim"])
                torch.set_rng_state(ckpt["rng"]["torch"])
                self.rng.bit_generator.state = ckpt["rng"]["numpy"]
                self.replay.load_state_dict(ckpt["replay"])
            elif replay_from:
                self._load_minari(replay_from)
            self.ckpt_path = found[-1][1] if found else None
            self.start_steps = steps
            write_json(run_dir / "config.json", {**cfg.to_dict(), "device": str(device),
                                                 "parameters": count_parameters(self.agent),
                                                 "replay_from": replay_from})
        except BaseException:       # e.g. a pretrained model of other sizes: no env left behind
            if getattr(self, "envs", None) is not None:
                self.envs.close()
            self._close_eval_env()
            raise

    # -- data ------------------------------------------------------------------------------------

    def _load_minari(self, dataset_id: str) -> None:
        from cwm.rl.minari_io import load_minari

        got = load_minari(dataset_id, self.replay, worker=self.n)
        dims = {c.data["action"].shape[-1] for c in self.replay.chunks()}
        if dims != {self.action_dim}:
            raise UserError(f"Minari dataset {dataset_id!r} has {sorted(dims)}-dim actions; "
                            f"{self.cfg.env}/{self.cfg.task} takes {self.action_dim}")
        self.echo(f"replay: {got['episodes']} episode(s), {got['steps']} steps from Minari "
                  f"dataset {dataset_id}")

    def record(self, obs: dict, reward: np.ndarray, success: np.ndarray, prev_action: np.ndarray,
               ) -> None:
        """Store each env's newest observation with the action and reward that led to it."""
        for i in range(self.n):
            first = bool(obs["is_first"][i])
            self.replay.add({
                "image": obs["image"][i],
                "action": np.zeros(self.action_dim, np.float32) if first else prev_action[i],
                "reward": 0.0 if first else float(reward[i]),
                "is_first": first,
                "is_last": bool(obs["is_last"][i]),
                "is_terminal": bool(obs["is_terminal"][i]),
                "success": False if first else bool(success[i]),
            }, worker=i)

    def sample(self) -> dict[str, torch.Tensor]:
        loop = self.cfg.loop
        return _to_torch(self.replay.sample(loop.batch_size, loop.seq_len), self.device)

    def update(self) -> dict[str, torch.Tensor]:
        self.agent.set_frozen(self.counters["updates"] < self.cfg.loop.freeze_updates)
        metrics = self.agent.update(self.sample())
        self.counters["updates"] += 1
        return metrics

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """`eval_episodes` episodes with the actor's mode (latents sampled unless
        `behavior.eval_state_mean`); the first one saved as a GIF."""
        cfg, steps = self.cfg, self.counters["env_steps"]
        if self.eval_env is None:
            pending, self._eval_env_pending = self._eval_env_pending, None
            self.eval_env = pending.result() if pending else self.factories.make_eval_env(cfg)
        env = self.eval_env
        obs, _ = env.reset(seed=[env_seed(cfg, 2, steps)])
        state, returns, successes, lengths = None, [], [], []
        ret, succ, length, frames = 0.0, False, 0, [obs["image"][0]]
        while len(returns) < cfg.loop.eval_episodes:
            image = torch.from_numpy(obs["image"]).to(self.device)
            first = torch.from_numpy(obs["is_first"]).to(self.device)
            action, state = self.agent.act(image, first, state, explore=False)
            obs, reward, _, _, info = env.step(action.cpu().numpy())
            ret += float(reward[0])
            succ = succ or bool(info["success"][0])
            length += 1
            if not returns:
                frames.append(obs["image"][0])
            if obs["is_last"][0]:
                returns.append(ret)
                successes.append(succ)
                lengths.append(length)
                ret, succ, length = 0.0, False, 0
                obs, *_ = env.step(np.zeros((1, self.action_dim), np.float32))  # autoreset
        fps = env.metadata.get("render_fps") or 20
        (self.run_dir / "eval").mkdir(exist_ok=True)
        save_gif(self.run_dir / "eval" / f"eval-{steps:010d}.gif", np.stack(frames), fps=min(fps, 50))
        row = {"eval_return": float(np.mean(returns)), "eval_length": float(np.mean(lengths)),
               "eval_episodes": len(returns)}
        if cfg.env == "metaworld":
            row["eval_success"] = float(np.mean(successes))
        return row

    # -- checkpoint -----------------------------------------------------------------------------

    def save(self) -> Path:
        self.replay.flush()  # every step the counters count is on disk before they are saved
        self.counters["replay_last_seq"] = max((c.seq for c in self.replay.chunks()), default=-1)
        steps = self.counters["env_steps"]
        ckpt = {
            "kind": CHECKPOINT_KIND,
            "format": FORMAT_VERSION,
            "config": self.cfg.to_dict(),
            "counters": dict(self.counters),
            "agent": self.agent.state_dict(),
            "optim": self.agent.optim_state(),
            "rng": {"torch": torch.get_rng_state(), "numpy": self.rng.bit_generator.state},
            "replay": self.replay.state_dict(),
            "replay_steps": len(self.replay),
        }
        path = save_atomic(ckpt, self.run_dir / "checkpoints" / f"rl-{steps:010d}.pt")
        for _, old in list_checkpoints(self.run_dir)[:-self.cfg.loop.keep_checkpoints]:
            old.unlink(missing_ok=True)
        remove_stale_tmp(path.parent)
        self.ckpt_path = path
        return path

    def env_timings(self) -> dict[str, float]:
        """Seconds of physics and rendering so far, summed over the training env processes."""
        per_env = self.envs.get_attr("timings")
        return {k: float(sum(t[k] for t in per_env)) for k in ("physics", "render")}

    def _close_eval_env(self) -> None:
        pending, self._eval_env_pending = self._eval_env_pending, None
        if pending is not None:
            try:
                self.eval_env = pending.result()
            except Exception:       # it was never used: its failure is nobody's concern now
                pass
        if self.eval_env is not None:
            self.eval_env.close()
            self.eval_env = None

    def close(self) -> None:
        self.replay.close()
        self.envs.close()
        self._close_eval_env()


def write_curve(run_dir: Path, env: str) -> Path:
    """curve.png: evaluation (and training episode) returns or success against env frames."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(run_dir / "metrics.jsonl")
    key = "eval_success" if env == "metaworld" else "eval_return"
    fig, ax = plt.subplots(figsize=(5, 3.4))
    train = [(r["step"], r["train_return"]) for r in rows if "train_return" in r]
    evals = [(r["step"], r[key]) for r in rows if key in r]
    if train and key == "eval_return":
        ax.plot(*zip(*train), ".", alpha=0.4, label="training episodes")
    if evals:
        ax.plot(*zip(*evals), "o-", label="evaluation")
    ax.set_xlabel("environment frames")
    ax.set_ylabel("success rate" if key == "eval_success" else "return")
    ax.set_title(run_dir.name)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = run_dir / "curve.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path


def train(cfg: RLConfig, run_dir: str | Path, factories: Factories | None = None, *,
          device: str | torch.device = "auto", progress: bool = True,
          replay_from: str | None = None, echo: Callable[[str], None] = print) -> dict:
    """Run (or resume) the RL run in `run_dir` until `cfg.loop.steps` agent steps; summary dict."""
    from cwm.model.runtime import resolve_device

    dev = device if isinstance(device, torch.device) else resolve_device(device)
    run = Run(cfg, Path(run_dir), factories or Factories(), dev, echo, replay_from)
    try:
        return _drive(run, progress)
    finally:
        run.close()


def _drive(run: Run, progress: bool) -> dict:
    cfg, loop, c, echo = run.cfg, run.cfg.loop, run.counters, run.echo
    repeat = cfg.action_repeat
    # The loop's counts are agent steps (cwm.rl.config); the counters are frames.
    total, prefill = loop.steps * repeat, loop.prefill * repeat
    eval_every, log_every, ckpt_every = (loop.eval_every * repeat, loop.log_every * repeat,
                                         loop.ckpt_every * repeat)
    echo(format_config(cfg))
    echo(f"device = {run.device}; parameters = {count_parameters(run.agent)['total']:,}; "
         f"allocator = {allocator_in_use()}")
    echo(f"resuming {run.run_dir} at {c['env_steps']} frames, {c['updates']} updates "
         f"({run.ckpt_path})" if run.ckpt_path else f"starting {run.run_dir}")
    if c["env_steps"] >= total:
        echo(f"already at {c['env_steps']} frames (--steps {loop.steps} agent steps = {total} "
             f"frames): nothing to do")
        return {"run_dir": str(run.run_dir), "env_steps": c["env_steps"], "updates": c["updates"],
                "steps_run": 0}
    logger = MetricsLogger(run.run_dir, c["env_steps"])
    bar = tqdm(total=total, initial=c["env_steps"], unit="frame", dynamic_ncols=True,
               disable=not progress, file=sys.stderr)
    window = _Window()
    last_eval: dict[str, float] = {}
    ep_return = np.zeros(run.n)
    ep_length = np.zeros(run.n, np.int64)
    ep_success = np.zeros(run.n, bool)
    session_start, saved_at = time.perf_counter(), c["env_steps"]
    policy_state = None
    obs, _ = run.envs.reset()
    env_clock = run.env_timings()
    reward = np.zeros(run.n)
    success = np.zeros(run.n, bool)
    prev_action = np.zeros((run.n, run.action_dim), np.float32)
    prefill_actions = PrefillActions(run.n, run.action_dim, loop.prefill_hold, run.rng)

    try:
        with sigterm_as_interrupt():
            # Evaluate before checkpointing, so a resumed run never repeats an evaluation.
            def maybe_evaluate(force: bool = False) -> None:
                nonlocal last_eval
                if force or c["env_steps"] >= c["next_eval"]:
                    t = time.perf_counter()
                    last_eval = run.evaluate()
                    window.time["eval"] += time.perf_counter() - t
                    # The row and the counter that says it is done go together, or a resume
                    # would evaluate this step a second time.
                    with interrupts_deferred():
                        logger.log(c["env_steps"], last_eval)
                        c["next_eval"] = (c["env_steps"] // eval_every + 1) * eval_every
                    write_curve(run.run_dir, cfg.env)

            maybe_evaluate()
            # Every frame the counters count is in the replay whenever a checkpoint is saved
            # (periodic, final, or after Ctrl-C): each observation is recorded in the same
            # uninterruptible block that counts the step which led to it.
            with interrupts_deferred():
                run.record(obs, reward, success, prev_action)
            while c["env_steps"] < total:
                for i in np.flatnonzero(obs["is_last"]):
                    c["episodes"] += 1
                    row = {"train_return": ep_return[i], "train_length": ep_length[i] * repeat}
                    if cfg.env == "metaworld":
                        row["train_success"] = float(ep_success[i])
                    logger.log(c["env_steps"], row)
                    bar.set_postfix(ret=f"{ep_return[i]:.1f}", eval=f"{last_eval.get('eval_return', float('nan')):.1f}")

                t0 = time.perf_counter()
                if c["env_steps"] < prefill:
                    action = prefill_actions.next()
                else:
                    image = torch.from_numpy(obs["image"]).to(run.device)
                    first = torch.from_numpy(obs["is_first"]).to(run.device)
                    act, policy_state = run.agent.act(image, first, policy_state, explore=True)
                    action = act.cpu().numpy()
                window.time["policy"] += time.perf_counter() - t0

                # Envs that just ended ignore their action and reset (NEXT_STEP autoreset).
                stepping = ~obs["is_last"].astype(bool)
                agent_steps = int(stepping.sum())
                frames = agent_steps * repeat
                run.envs.step_async(action)
                t1 = time.perf_counter()
                # Train while the env processes simulate and render the step just sent.
                if c["env_steps"] >= prefill:
                    if not c["pretrained"]:
                        run.replay.flush()
                        for _ in range(loop.pretrain_updates):
                            window.add(run.update())
                        c["pretrained"] = True
                    # Counted in whole agent steps (upstream's `train_every` unit), so the
                    # ratio is exact and survives a resume.
                    c["accumulator"] += agent_steps
                    while c["accumulator"] >= loop.train_every:
                        window.add(run.update())
                        c["accumulator"] -= loop.train_every
                t2 = time.perf_counter()
                window.time["train"] += t2 - t1
                new_obs, new_reward, _, _, info = run.envs.step_wait()
                window.time["env_wait"] += time.perf_counter() - t2

                with interrupts_deferred():     # the step's bookkeeping, all of it or none
                    reward = new_reward
                    ep_return = np.where(obs["is_last"], 0.0,
                                         ep_return + np.where(stepping, reward, 0))
                    ep_length = np.where(obs["is_last"], 0, ep_length + stepping)
                    success = np.asarray(info.get("success", np.zeros(run.n, bool)), bool)
                    ep_success = np.where(obs["is_last"], False, ep_success | success)
                    prev_action, obs = action, new_obs
                    c["env_steps"] += frames
                    run.record(obs, reward, success, prev_action)
                window.frames += frames
                bar.update(frames)

                if c["env_steps"] >= c["next_log"] or c["env_steps"] >= total:
                    now = run.env_timings()
                    window.env_time = {k: now[k] - env_clock[k] for k in now}
                    env_clock = now
                    row = window.row()
                    row.update(updates=c["updates"], episodes=c["episodes"],
                               replay_steps=len(run.replay))
                    logger.log(c["env_steps"], row)
                    window = _Window()
                    c["next_log"] = (c["env_steps"] // log_every + 1) * log_every
                if c["env_steps"] < total:
                    maybe_evaluate()
                if c["env_steps"] >= c["next_ckpt"]:
                    run.save()
                    saved_at = c["env_steps"]
                    c["next_ckpt"] = (c["env_steps"] // ckpt_every + 1) * ckpt_every
            maybe_evaluate(force=True)
    except KeyboardInterrupt:
        bar.close()
        if c["env_steps"] > saved_at:
            run.save()
        echo(f"interrupted at {c['env_steps']} frames: saved {run.ckpt_path}; rerun the same "
             f"command to resume")
        raise
    finally:
        bar.close()
        logger.close()
    run.save()
    elapsed = time.perf_counter() - session_start
    done = c["env_steps"] - run.start_steps
    summary = {"run_dir": str(run.run_dir), "env": cfg.env, "task": cfg.task, "agent": cfg.agent,
               "env_steps": c["env_steps"], "updates": c["updates"], "episodes": c["episodes"],
               "steps_run": done, "seconds": round(elapsed, 1),
               "frames_per_s": round(done / elapsed, 2) if elapsed > 0 else None,
               **{k: round(v, 4) for k, v in last_eval.items()},
               "checkpoint": str(run.ckpt_path)}
    echo("summary: " + json.dumps(summary))
    return summary
