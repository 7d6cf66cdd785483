#!/usr/bin/env bash
# Parity check: cwm-rl's DreamerV2 beside upstream thuml/ContextWM's own DreamerV2
# (examples/train_dreamerv2.py), `small` settings, DMC cartpole-balance, same pixels
# (--render fast / WMLIB_FAST_RENDER=1), seeds 0-2, 20k frames, then the parity table.
# Usage: bash experiments/rl_parity/run.sh [RUNS_DIR] [FRAMES]
#        (repository root, venv active; upstream prepared under $UPSTREAM as README.md says).
#        WHICH="ours upstream" picks the sides (default both, ours first; the three seeds of a
#        side run side by side), SEEDS="0 1 2", UPSTREAM=/tmp/upstream.
#        Rerunning resumes each run (both sides resume from their run directories).
set -euo pipefail
RUNS=${1:-runs/rl_parity}
FRAMES=${2:-20000}
STEPS=$(( FRAMES / 2 ))            # both sides count agent steps; DMC repeats each action twice
HERE=$(dirname "$0")
SEEDS=${SEEDS:-0 1 2}
WHICH=${WHICH:-ours upstream}
UPSTREAM=${UPSTREAM:-/tmp/upstream}
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$RUNS/ours" "$RUNS/upstream"
RUNS=$(cd "$RUNS" && pwd)

ours() {   # small preset: prefill 1000, 50 pre-train updates, 1 update / 4 steps, batch 8 x 24
  cwm-rl --env dmc --task cartpole-balance --agent dreamerv2 --preset small --render fast \
         --seed "$1" --steps "$STEPS" --eval-every 1000 --out "$RUNS/ours/seed$1" --no-progress
}

upstream() {   # the same protocol in upstream's flags (README.md: the translation, flag by flag)
  ( cd "$UPSTREAM/src" && WMLIB_FAST_RENDER=1 OMP_NUM_THREADS=1 PYTHONPATH= \
    "$UPSTREAM/venv/bin/python" examples/train_dreamerv2.py \
      --logdir "$RUNS/upstream/seed$1" --configs dmc_vision --task dmc_cartpole_balance \
      --seed "$1" --precision 32 --steps $(( STEPS + 1 )) --stop_steps "$STEPS" \
      --prefill 1000 --pretrain 49 --train_every 4 --eval_every 1000 --eval_eps 2 \
      --log_every 250 --dataset.batch 8 --dataset.length 24 --replay.minlen 24 \
      --replay.maxlen 24 --replay.capacity 1e6 --encoder.cnn_depth 8 --decoder.cnn_depth 8 \
      --rssm.deter 200 --rssm.hidden 200 --rssm.stoch 16 --rssm.discrete 16 \
      --reward_head.layers 2 --reward_head.units 200 --actor.layers 2 --actor.units 200 \
      --critic.layers 2 --critic.units 200 --clip_rewards identity --pred_discount False \
      --kl.free 1.0 )
}

if [[ " $WHICH " == *" upstream "* && ! -x "$UPSTREAM/venv/bin/python" ]]; then
  echo "error: no upstream set-up at $UPSTREAM (see experiments/rl_parity/README.md)" >&2
  exit 2
fi
for side in $WHICH; do
  for seed in $SEEDS; do
    "$side" "$seed" >> "$RUNS/$side/seed$seed.log" 2>&1 &
  done
  wait
done
python "$HERE/compare.py" --ours "$RUNS"/ours/seed*/ --upstream "$RUNS"/upstream/seed*/ \
       --out "$HERE/cartpole-balance"
