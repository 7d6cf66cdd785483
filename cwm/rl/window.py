"""Compare arms over a window of frames, not at one evaluation.

A single evaluation of a few episodes is noisy (on Meta-world with 2 episodes a seed scores 0,
0.5 or 1), so arms are better told apart by each seed's mean over a stretch of evaluations: the
area under its curve. `window_summary` takes, for each (env, task), the evaluation steps inside
[start, end] that *every* run of the task has (so every arm is averaged over the same frames),
averages each run over them, and summarises each arm over its seeds (mean, IQM and a
percentile-bootstrap 95% interval). `window_differences` then gives every pair of arms of a task
the difference of their means with a bootstrap interval that resamples the seeds of each arm
independently, and the exact two-sided permutation p-value of that difference (every way of
splitting the pooled seeds into two arms of the same sizes).

With the few seeds RL budgets allow, the percentile bootstrap under-covers (with 3 seeds an arm's
interval is about its lowest to its highest seed), so "the interval excludes 0" is a description
of the seeds, not a test. The permutation p-value is the test, and it also says what the seeds can
support at all: with 3 seeds per arm the smallest two-sided p is 2 / C(6, 3) = 0.1, reached when
every seed of one arm beats every seed of the other; the report prints that floor beside p.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cwm.atomic import atomic_open
from cwm.errors import UserError
from cwm.rl.report import RunCurve, bootstrap_interval, interquartile_mean, percentile_interval


@dataclass
class WindowArm:
    env: str
    task: str
    agent: str
    steps: tuple[int, ...]          # the evaluation steps averaged, common to the task's runs
    seeds: tuple[int, ...]
    per_seed: tuple[float, ...]     # each seed's mean over `steps`
    mean: float
    iqm: float
    iqm_low: float
    iqm_high: float


@dataclass
class WindowDifference:
    env: str
    task: str
    first: str
    second: str
    difference: float               # mean of `first` minus mean of `second`
    low: float
    high: float
    p_value: float                  # exact two-sided permutation p of the difference
    p_floor: float                  # the smallest p these seed counts can give


def parse_window(text: str) -> tuple[int, int]:
    """`START:END` in frames (both included) -> (start, end); a one-line error otherwise."""
    parts = text.split(":")
    try:
        start, end = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"--window {text!r}: give START:END in frames, e.g. 6000:12000") from None
    if start < 0 or end < start:
        raise UserError(f"--window {text!r}: need 0 <= START <= END")
    return start, end


def window_summary(runs: list[RunCurve], start: int, end: int) -> list[WindowArm]:
    """Each arm's per-seed means over the task's common evaluation steps in [start, end]."""
    tasks: dict[tuple[str, str], list[RunCurve]] = {}
    for run in runs:
        tasks.setdefault((run.env, run.task), []).append(run)
    out = []
    for (env, task), members in sorted(tasks.items()):
        common = set.intersection(*({int(s) for s in m.steps if start <= s <= end}
                                    for m in members))
        if not common:
            continue
        steps = np.array(sorted(common))
        arms: dict[str, list[RunCurve]] = {}
        for m in members:
            arms.setdefault(m.agent, []).append(m)
        for agent, group in sorted(arms.items()):
            group = sorted(group, key=lambda r: r.seed)
            vals = np.array([r.values[np.searchsorted(r.steps, steps)].mean() for r in group])
            low, high = bootstrap_interval(vals)
            out.append(WindowArm(env, task, agent, tuple(int(s) for s in steps),
                                 tuple(r.seed for r in group), tuple(float(v) for v in vals),
                                 float(vals.mean()), float(interquartile_mean(vals)), low, high))
    if not out:
        raise UserError(f"no evaluation step in {start}:{end} is shared by all runs of a task "
                        "(see report.csv for the steps each run has)")
    return out


def difference_interval(a: np.ndarray, b: np.ndarray, reps: int = 2000, level: float = 0.95,
                        seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b), seeds resampled in each arm."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diffs = (a[rng.integers(0, a.size, size=(reps, a.size))].mean(axis=1)
             - b[rng.integers(0, b.size, size=(reps, b.size))].mean(axis=1))
    return percentile_interval(diffs, level)


def permutation_test(a: np.ndarray, b: np.ndarray, max_splits: int = 20_000,
                     seed: int = 0) -> tuple[float, float]:
    """Two-sided permutation p-value of mean(a) - mean(b), and the smallest p possible.

    Every split of the pooled values into groups of len(a) and len(b) when there are at most
    `max_splits` of them (exact: p is the share of splits whose absolute difference of means is
    at least the observed one, the observed split included), else that many random splits
    (Monte Carlo: (count + 1) / (max_splits + 1)).
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    pooled, k = np.concatenate([a, b]), a.size
    observed = abs(a.mean() - b.mean())
    total = math.comb(pooled.size, k)
    if total <= max_splits:
        splits = np.array(list(itertools.combinations(range(pooled.size), k)))
    else:
        rng = np.random.default_rng(seed)
        splits = np.argsort(rng.random((max_splits, pooled.size)), axis=1)[:, :k]
    mask = np.zeros((len(splits), pooled.size), dtype=bool)
    np.put_along_axis(mask, splits, True, axis=1)
    first = (mask * pooled).sum(1) / k
    second = (~mask * pooled).sum(1) / (pooled.size - k)
    count = int((np.abs(first - second) >= observed - 1e-12 * max(1.0, observed)).sum())
    if total > max_splits:
        return (count + 1) / (max_splits + 1), 1 / (max_splits + 1)
    # The observed split and its mirror (when the groups are the same size) always count.
    return count / total, (2 if 2 * k == pooled.size else 1) / total


def window_differences(arms: list[WindowArm]) -> list[WindowDifference]:
    """Every pair of arms of one task: difference of means with its bootstrap interval and its
    permutation p-value."""
    out = []
    by_task: dict[tuple[str, str], list[WindowArm]] = {}
    for arm in arms:
        by_task.setdefault((arm.env, arm.task), []).append(arm)
    for (env, task), group in by_task.items():
        for x, y in itertools.combinations(group, 2):
            a, b = np.array(x.per_seed), np.array(y.per_seed)
            low, high = difference_interval(a, b)
            p, floor = permutation_test(a, b)
            out.append(WindowDifference(env, task, x.agent, y.agent, x.mean - y.mean, low, high,
                                        p, floor))
    return out


def window_markdown(metric: str, arms: list[WindowArm], diffs: list[WindowDifference]) -> str:
    """The section of report.md for one metric."""
    lines = ["", f"Window of `{metric}`: each seed's mean over the evaluations listed (the steps "
             "every run of the task has inside the window), then IQM [95% CI] over seeds:", "",
             "| env | task | agent | steps | per seed | IQM [95% CI] |", "|---|---|---|---|---|---|"]
    for a in arms:
        per_seed = ", ".join(f"s{s} {v:.4g}" for s, v in zip(a.seeds, a.per_seed))
        lines.append(f"| {a.env} | {a.task} | {a.agent} | {a.steps[0]}-{a.steps[-1]} "
                     f"({len(a.steps)}) | {per_seed} | {a.iqm:.4g} [{a.iqm_low:.4g}, "
                     f"{a.iqm_high:.4g}] |")
    if diffs:
        lines += ["", "Differences: bootstrap interval (seeds resampled in each arm; with few "
                  "seeds it spans little more than the seeds themselves) and the exact "
                  "permutation p-value, two-sided, with the smallest p these seed counts allow:",
                  "", "| env | task | arms | difference of means [95% CI] | permutation p "
                  "(smallest possible) |", "|---|---|---|---|---|"]
        for d in diffs:
            lines.append(f"| {d.env} | {d.task} | {d.first} - {d.second} | {d.difference:.4g} "
                         f"[{d.low:.4g}, {d.high:.4g}] | {d.p_value:.3g} ({d.p_floor:.3g}) |")
    return "\n".join(lines) + "\n"


def window_csv(summaries: dict[str, list[WindowArm]], path: Path) -> None:
    """One row per (metric, arm, seed): the seed's mean over the window, for other tools."""
    with atomic_open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "env", "task", "agent", "first_step", "last_step",
                         "evaluations", "seed", "window_mean"])
        for metric, arms in summaries.items():
            for a in arms:
                for seed, value in zip(a.seeds, a.per_seed):
                    writer.writerow([metric, a.env, a.task, a.agent, a.steps[0], a.steps[-1],
                                     len(a.steps), seed, value])
