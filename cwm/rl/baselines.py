"""Scores of fixed reference policies on a task: the floor a learning curve is read against.

    random   a uniform action in [-1, 1] every step
    zero     the zero action every step

Both matter: on DMC cartpole-balance doing nothing keeps the pole up for most of an episode
(~770 of 1,000) while random actions score ~300, so a curve that ends at 450 beats random and
still learned less than doing nothing. `cwm-rl report --baselines N` measures both on each
task of the report with N episodes each and draws them as horizontal lines.

Each policy is scored under the evaluation keys of `metrics.jsonl`: `eval_return` on every
family, and `eval_success` (whether the episode ever succeeded) on Meta-world too, so that a
report's success curve and its `--train-metric eval_return` curve each get their own floor.
Rendering changes neither, so the fast renderer is used.
"""

from __future__ import annotations

import numpy as np

POLICIES = ("random", "zero")


def reference_scores(family: str, task: str, episodes: int,
                     seed: int = 0) -> dict[str, dict[str, float]]:
    """{metric: {policy: mean over `episodes` episodes}} for every reference policy, on one env
    (episode k of each policy starts from env seed seed + k); the metrics are `eval_return`,
    and on Meta-world also `eval_success`."""
    from cwm.rl.envs.registry import make_env

    env = make_env(family, task, seed=seed, render="fast")
    try:
        scores = {p: _mean_scores(env, p, episodes, seed) for p in POLICIES}
    finally:
        env.close()
    metrics = ("eval_success", "eval_return") if family == "metaworld" else ("eval_return",)
    return {m: {p: scores[p][m] for p in POLICIES} for m in metrics}


def _mean_scores(env, policy: str, episodes: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    shape = env.action_space.shape
    returns, successes = [], []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, success, done = 0.0, False, False
        while not done:
            if policy == "random":
                action = rng.uniform(-1.0, 1.0, shape).astype(np.float32)
            else:
                action = np.zeros(shape, np.float32)
            _, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            success = success or bool(info.get("success", False))
            done = terminated or truncated
        returns.append(total)
        successes.append(float(success))
    return {"eval_return": float(np.mean(returns)), "eval_success": float(np.mean(successes))}
