#!/usr/bin/env bash
# CPU learning check of cwm-rl: ContextWM from scratch, `small` preset, a DMC cartpole task with
# fast rendering, three seeds side by side, then the seed report (mean, IQM, bootstrap CI) into
# experiments/rl_smoke/TASK/.
# Usage: bash experiments/rl_smoke/run.sh [RUNS_DIR] [FRAMES] [TASK]   (repository root, venv active)
# Rerunning with a larger FRAMES resumes each run from its newest checkpoint and goes on.
set -euo pipefail
RUNS=${1:-runs/rl_smoke}
FRAMES=${2:-50000}
TASK=${3:-cartpole-swingup}
HERE=$(dirname "$0")
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$RUNS" "$HERE/$TASK"
for seed in 0 1 2; do
  cwm-rl --env dmc --task "$TASK" --preset small --steps "$FRAMES" --render fast \
         --seed "$seed" --eval-every 2000 --out "$RUNS/seed$seed" --no-progress \
         >> "$RUNS/seed$seed.log" 2>&1 &
done
wait
cwm-rl report "$RUNS"/seed0 "$RUNS"/seed1 "$RUNS"/seed2 --out "$HERE/$TASK" --baselines 5
