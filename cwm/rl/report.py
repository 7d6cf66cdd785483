"""Aggregate evaluation curves over seeds, as the paper reports them.

Each run directory written by `cwm-rl` holds `config.json` (with `env`, `task`, `agent`, `seed`)
and `metrics.jsonl`, whose evaluation rows carry `step` (environment steps) and `eval_return`
(plus `eval_success` on Meta-world). Runs are grouped by (env, task, agent, pre-trained or
not: `arm_name`); at every evaluation step shared by the group we report the mean and the
interquartile mean (IQM, robust to one lucky or unlucky seed) with percentile-bootstrap 95%
intervals over seeds, and on Meta-world the first step whose IQM success reaches 0.5 and the
step from which it stays there (one lucky evaluation crosses the level too).
Published APV and DreamerV2 curves for the same task, shipped in `cwm/rl/reference/`, are
overlaid when present, and with `baseline_episodes` > 0 the scores of the fixed random and zero-action policies
(`cwm.rl.baselines`) are measured on each task and shown beside the curves.

`train_metrics` aggregates training rows the same way (e.g. `model_loss`, logged every
`log_every` agent steps as the mean since the last log): one CSV and one plot per metric, and in
`report.md` each arm's IQM early in training and at the end. This is how a pre-trained world
model's head start shows up before the returns can tell arms apart.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from cwm.atomic import atomic_open, atomic_path, read_json
from cwm.errors import UserError
from cwm.model.metrics import read_metrics

METRICS = {"metaworld": "eval_success", "dmc": "eval_return", "dmcr": "eval_return"}
_REFERENCE_FILES = {"metaworld": ("apv_metaworld_success.csv", "success"),
                    "dmc": ("apv_dmc_return.csv", "return"),
                    "dmcr": ("apv_dmc_return.csv", "return")}


@dataclass
class RunCurve:
    path: Path
    env: str
    task: str
    agent: str
    seed: int
    steps: np.ndarray = field(repr=False)
    values: np.ndarray = field(repr=False)


@dataclass
class Row:
    env: str
    task: str
    agent: str
    step: int
    seeds: int
    mean: float
    iqm: float
    iqm_low: float
    iqm_high: float


def interquartile_mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean of the middle 50% of values along `axis` (the middle half of the sorted samples)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    lo, hi = n // 4, n - n // 4
    return np.take(x, np.arange(lo, hi), axis=axis).mean(axis=axis)


def bootstrap_interval(x: np.ndarray, stat=interquartile_mean, reps: int = 2000,
                       level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of `stat` over the samples `x` (seeds)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2:
        v = float(stat(x)) if x.size else float("nan")
        return v, v
    rng = np.random.default_rng(seed)
    resamples = x[rng.integers(0, x.size, size=(reps, x.size))]
    return percentile_interval(stat(resamples, axis=-1), level)


def percentile_interval(stats: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """The central `level` share of bootstrap statistics `stats`: (low, high)."""
    tail = (1 - level) / 2 * 100
    return float(np.percentile(stats, tail)), float(np.percentile(stats, 100 - tail))


def load_run(path: str | Path, metric: str | None = None) -> RunCurve:
    """The curve of `metric` (default: the env family's evaluation score) in one run directory."""
    path = Path(path)
    cfg_file, metrics_file = path / "config.json", path / "metrics.jsonl"
    if not cfg_file.is_file() or not metrics_file.is_file():
        raise UserError(f"{path} is not a cwm-rl run directory (needs config.json and metrics.jsonl)")
    cfg = read_json(cfg_file)
    if cfg is None:
        raise UserError(f"{cfg_file} is damaged (not a JSON object)")
    env = cfg.get("env")
    if env not in METRICS:
        raise UserError(f"{path}: config.json names no known env ({env!r})")
    metric = metric or METRICS[env]
    points: dict[int, float] = {}
    for row in read_metrics(metrics_file):     # lines cut short by a kill are skipped
        if metric in row and "step" in row:
            points[int(row["step"])] = float(row[metric])
    steps = np.array(sorted(points), dtype=np.int64)
    values = np.array([points[s] for s in steps], dtype=np.float64)
    return RunCurve(path, env, str(cfg.get("task")), arm_name(cfg), int(cfg.get("seed", 0)),
                    steps, values)


def arm_name(cfg: dict) -> str:
    """The group a run belongs to: its agent, marked `+pretrained` when it started from a
    cwm-train checkpoint, so pre-trained and from-scratch runs of one agent stay apart."""
    agent = str(cfg.get("agent", "contextwm"))
    return f"{agent}+pretrained" if cfg.get("pretrained") else agent


# The success rate whose first crossing the Meta-world summary reports (frames to reach it).
SUCCESS_LEVEL = 0.5


def aggregate(runs: list[RunCurve]) -> list[Row]:
    """One row per (env, task, agent, step) at the evaluation steps every seed of the group has."""
    groups: dict[tuple[str, str, str], list[RunCurve]] = {}
    for run in runs:
        groups.setdefault((run.env, run.task, run.agent), []).append(run)
    rows = []
    for (env, task, agent), members in sorted(groups.items()):
        common = set(members[0].steps.tolist())
        for m in members[1:]:
            common &= set(m.steps.tolist())
        for step in sorted(common):
            vals = np.array([m.values[np.searchsorted(m.steps, step)] for m in members])
            low, high = bootstrap_interval(vals)
            rows.append(Row(env, task, agent, step, len(vals), float(vals.mean()),
                            float(interquartile_mean(vals)), low, high))
    return rows


def reference_curves(env: str, task: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Published per-method mean curves for `task` ({method: (env_steps, mean)}); {} if none."""
    if env not in _REFERENCE_FILES:
        return {}
    fname, column = _REFERENCE_FILES[env]
    wanted = f"{'metaworld' if env == 'metaworld' else 'dmc'}_{task.removesuffix('-v3').replace('-', '_')}"
    table: dict[str, dict[int, list[float]]] = {}
    with resources.files("cwm.rl").joinpath("reference", fname).open() as f:
        for rec in csv.DictReader(f):
            if rec["task"] == wanted:
                table.setdefault(rec["method"], {}).setdefault(int(rec["env_step"]), []).append(
                    float(rec[column]))
    out = {}
    for method, by_step in table.items():
        steps = np.array(sorted(by_step))
        out[method] = (steps, np.array([np.mean(by_step[s]) for s in steps]))
    return out


def write_report(run_dirs: list[str | Path], out_dir: str | Path,
                 baseline_episodes: int = 0, train_metrics: tuple[str, ...] = (),
                 window: tuple[int, int] | None = None) -> dict[str, Path]:
    """Write `report.csv`, `report.md` and `curves.png` to `out_dir`; returns their paths.

    With `baseline_episodes` > 0 each task's random and zero-action policies are run that many
    episodes (`cwm.rl.baselines`) and their scores go into `report.md` and the plot. Each name in
    `train_metrics` adds `train-NAME.csv` and `train-NAME.png` (keys `NAME.csv`, `NAME.png`).
    `window` = (start, end) frames adds each arm's per-seed means over that window and the
    differences between arms (`cwm.rl.window`), for the evaluation metric and every
    `train_metrics` name, to `report.md` and `window.csv` (key `window`).
    """
    if not run_dirs:
        raise UserError("give at least one run directory")
    runs = [load_run(p) for p in run_dirs]
    rows = aggregate(runs)
    if not rows:
        raise UserError("none of the runs has an evaluation yet (no eval rows in metrics.jsonl)")
    baselines: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    if baseline_episodes > 0:
        from cwm.rl.baselines import reference_scores

        for env, task in sorted({(r.env, r.task) for r in rows}):
            baselines[(env, task)] = reference_scores(env, task, baseline_episodes)
    trained: dict[str, tuple[list[RunCurve], list[Row]]] = {}
    for name in train_metrics:
        curves = [load_run(p, name) for p in run_dirs]
        metric_rows = aggregate(curves)
        if not metric_rows:
            raise UserError(f"no run logs the metric {name!r} (see the keys of "
                            "metrics.jsonl: model_loss, actor_loss, critic_loss, eval_return, ...)")
        trained[name] = (curves, metric_rows)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "report.csv", "md": out / "report.md", "png": out / "curves.png"}
    _write_csv(rows, paths["csv"])
    text = _markdown(rows, baselines, baseline_episodes)
    for name, (curves, metric_rows) in trained.items():
        paths[f"{name}.csv"] = out / f"train-{name}.csv"
        paths[f"{name}.png"] = out / f"train-{name}.png"
        _write_csv(metric_rows, paths[f"{name}.csv"])
        _plot(curves, metric_rows, _of_metric(baselines, name), paths[f"{name}.png"],
              ylabel=name)
        text += _train_markdown(name, metric_rows)
    if window is not None:
        from cwm.rl.window import window_csv, window_differences, window_markdown, window_summary

        summaries = {METRICS[runs[0].env] if len({r.env for r in runs}) == 1 else "evaluation":
                     window_summary(runs, *window)}
        for name, (curves, _) in trained.items():
            summaries[name] = window_summary(curves, *window)
        for name, arms in summaries.items():
            text += window_markdown(name, arms, window_differences(arms))
        paths["window"] = out / "window.csv"
        window_csv(summaries, paths["window"])
    with atomic_open(paths["md"], "w") as f:
        f.write(text)
    _plot(runs, rows, _of_metric(baselines), paths["png"])
    return paths


def _of_metric(baselines: dict[tuple[str, str], dict[str, dict[str, float]]],
               metric: str | None = None) -> dict[tuple[str, str], dict[str, float]]:
    """The reference policies' scores under one metric (default: each family's evaluation
    metric), for the tasks that have it."""
    return {(env, task): by_metric[metric or METRICS[env]]
            for (env, task), by_metric in baselines.items() if (metric or METRICS[env]) in by_metric}


def _write_csv(rows: list[Row], path: Path) -> None:
    fields = list(Row.__dataclass_fields__)
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(fields)
        for r in rows:
            writer.writerow([getattr(r, k) for k in fields])


# The training rows `_train_markdown` quotes besides the last: the first few logs show whether an
# arm starts ahead (a pre-trained model), the last where it ends up.
_EARLY_LOGS = 3


def _train_markdown(name: str, rows: list[Row]) -> str:
    lines = ["", f"Metric `{name}` (IQM [95% CI] over seeds; full curve in "
             f"train-{name}.csv / .png):", "",
             "| env | task | agent | " + " | ".join(f"log {i + 1}" for i in range(_EARLY_LOGS))
             + " | last |", "|---|---|---|" + "---|" * (_EARLY_LOGS + 1)]
    groups: dict[tuple[str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.env, r.task, r.agent), []).append(r)
    for (env, task, agent), sel in groups.items():
        cells = [f"{r.iqm:.4g} [{r.iqm_low:.4g}, {r.iqm_high:.4g}] @{r.step}"
                 for r in sel[:_EARLY_LOGS]]
        cells += [""] * (_EARLY_LOGS - len(cells))
        last = sel[-1]
        cells.append(f"{last.iqm:.4g} [{last.iqm_low:.4g}, {last.iqm_high:.4g}] @{last.step}")
        lines.append(f"| {env} | {task} | {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown(rows: list[Row], baselines: dict[tuple[str, str], dict[str, dict[str, float]]],
              episodes: int) -> str:
    lines = ["| env | task | agent | step | seeds | mean | IQM | IQM 95% CI |",
             "|---|---|---|---:|---:|---:|---:|---|"]
    last = {}
    for r in rows:
        last[(r.env, r.task, r.agent)] = r
    for r in rows:
        lines.append(f"| {r.env} | {r.task} | {r.agent} | {r.step} | {r.seeds} | {r.mean:.3f} | "
                     f"{r.iqm:.3f} | [{r.iqm_low:.3f}, {r.iqm_high:.3f}] |")
    lines += ["", "Final evaluation per group:", ""]
    for (env, task, agent), r in last.items():
        lines.append(f"- {env}/{task} {agent}: IQM {r.iqm:.3f} [{r.iqm_low:.3f}, {r.iqm_high:.3f}] "
                     f"at step {r.step} over {r.seeds} seeds")
        if env == "metaworld":
            curve = [x for x in rows if (x.env, x.task, x.agent) == (env, task, agent)]
            reached = [x.step for x in curve if x.iqm >= SUCCESS_LEVEL]
            # A single lucky evaluation crosses the level too: say also from when it holds.
            held = next((x.step for i, x in enumerate(curve)
                         if all(y.iqm >= SUCCESS_LEVEL for y in curve[i:])), None)
            lines[-1] += (f"; IQM success first >= {SUCCESS_LEVEL} at step {reached[0]}" if reached
                          else f"; IQM success not >= {SUCCESS_LEVEL} by step {r.step}")
            if reached:
                lines[-1] += (f", and stays there from step {held}" if held is not None
                              else f", but does not stay there (below at step {r.step})")
    if baselines:
        lines += ["", f"Fixed reference policies (mean of {episodes} episode(s) each):", ""]
        for (env, task), by_metric in baselines.items():
            for metric, scores in by_metric.items():
                lines.append(f"- {env}/{task} `{metric}`: "
                             + ", ".join(f"{p} {v:.3f}" for p, v in scores.items()))
    return "\n".join(lines) + "\n"


def _plot(runs: list[RunCurve], rows: list[Row],
          baselines: dict[tuple[str, str], dict[str, float]], path: Path,
          ylabel: str | None = None) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({(r.env, r.task) for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.6), squeeze=False)
    for ax, (env, task) in zip(axes[0], tasks):
        for agent in sorted({r.agent for r in rows if (r.env, r.task) == (env, task)}):
            sel = [r for r in rows if (r.env, r.task, r.agent) == (env, task, agent)]
            steps = [r.step for r in sel]
            line, = ax.plot(steps, [r.iqm for r in sel], label=f"{agent} (IQM)")
            ax.fill_between(steps, [r.iqm_low for r in sel], [r.iqm_high for r in sel], alpha=0.25)
            # Each seed's own curve, thin: an IQM can hide one seed that never left the start.
            for run in runs:
                if (run.env, run.task, run.agent) == (env, task, agent):
                    ax.plot(run.steps, run.values, color=line.get_color(), linewidth=0.6,
                            alpha=0.45)
        for method, (steps, mean) in ({} if ylabel else reference_curves(env, task)).items():
            ax.plot(steps, mean, "--", linewidth=1, label=f"{method} (published mean)")
        for (policy, score), style in zip(baselines.get((env, task), {}).items(), (":", "-.")):
            ax.axhline(score, color="grey", linestyle=style, linewidth=1, label=f"{policy} policy")
        ax.set_title(f"{env} / {task}")
        ax.set_xlabel("environment frames (agent steps x action repeat)")
        ax.set_ylabel(ylabel or ("success rate" if METRICS[env] == "eval_success" else "return"))
        if (ylabel and not ylabel.startswith("eval_")
                and all(r.iqm_low > 0 for r in rows if (r.env, r.task) == (env, task))):
            ax.set_yscale("log")       # losses fall by orders of magnitude early on
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
