"""What an RL checkpoint's world model predicts for each constant action (collapse diagnosis).

    .venv/bin/python experiments/rl_smoke/action_probe.py RUN/checkpoints/rl-XXXXXXXXXX.pt RUN/replay

Samples replay sequences, takes their s posteriors as starting states, imagines `--horizon` steps
of a constant action through the s-RSSM prior and prints the reward heads' mean prediction per
action, with the policy's mode at the same states.
"""

from __future__ import annotations

import argparse

import torch

from cwm.model.rssm import RSSMState
from cwm.rl.agent import make_agent
from cwm.rl.config import RLConfig
from cwm.rl.loop import _to_torch
from cwm.rl.replay import Replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint")
    parser.add_argument("replay")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--horizon", type=int, default=15)
    args = parser.parse_args()
    ckpt = torch.load(args.checkpoint, weights_only=False)
    cfg = RLConfig.from_dict(ckpt["config"])
    torch.manual_seed(0)
    with Replay(args.replay, capacity=10**9, chunk_len=cfg.loop.replay_chunk) as replay:
        batch = _to_torch(replay.sample(args.batch, cfg.loop.seq_len), torch.device("cpu"))
    agent = make_agent(cfg, batch["action"].shape[-1], torch.device("cpu"))
    agent.load_state_dict(ckpt["agent"])
    agent.eval()
    with torch.no_grad():
        _, _, s_post = agent.world_model_loss(batch, augment=False, update_bonus=False)
        start = RSSMState(*(x.flatten(0, 1) for x in s_post))
        print(f"real reward per step in the batch: {batch['reward'].float().mean():.3f}")
        for a in (-1.0, -0.5, 0.0, 0.5, 1.0):
            state, beh, task = start, [], []
            action = torch.full((start.deter.shape[0], batch["action"].shape[-1]), a)
            for _ in range(args.horizon):
                state = agent.s_rssm.img_step(state, action)
                feat = state.feature()
                beh.append(agent.reward_beh(feat).squeeze(-1))
                if agent.reward_rep is not None:
                    task.append(agent.reward_rep(feat).squeeze(-1))
            task_mean = f"{torch.stack(task).mean():.3f}" if task else "-"
            print(f"constant action {a:+.1f}: behavioural head {torch.stack(beh).mean():.3f}, "
                  f"task head {task_mean}")
        mode = agent.behavior.policy(start.feature()).mode()
        print(f"policy mode at the start states: mean {mode.mean():+.3f}, "
              f"|mode| > 0.99 in {(mode.abs() > 0.99).float().mean():.0%}")


if __name__ == "__main__":
    main()
