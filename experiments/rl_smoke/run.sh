#!/usr/bin/env bash
# CPU learning check of cwm-rl: ContextWM from scratch, `small` preset, DMC cartpole-balance with
# fast rendering, 6,000 frames (the preset has 10,000: cut to fit an hour on a shared 2-core
# CPU), three seeds side by side, then the seed report (mean, IQM, bootstrap CI).
# Usage: bash experiments/rl_smoke/run.sh [RUNS_DIR]   (from the repository root, venv active)
set -euo pipefail
RUNS=${1:-runs/rl_smoke}
HERE=$(dirname "$0")
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$RUNS"
for seed in 0 1 2; do
  cwm-rl --env dmc --task cartpole-balance --preset small --steps 6000 --render fast --seed "$seed" \
         --out "$RUNS/seed$seed" --no-progress >> "$RUNS/seed$seed.log" 2>&1 &
done
wait
cwm-rl report "$RUNS"/seed0 "$RUNS"/seed1 "$RUNS"/seed2 --out "$HERE"
