#!/usr/bin/env bash
# CPU learning check of cwm-rl: ContextWM from scratch, `small` preset, a DMC task (cartpole-swingup,
# cartpole-balance, walker-stand, ...) with fast rendering, three seeds side by side, then the
# seed report (mean, IQM, bootstrap CI) into experiments/rl_smoke/TASK/.
# Usage: bash experiments/rl_smoke/run.sh [RUNS_DIR] [FRAMES] [TASK] [cwm-rl options...]
#        (repository root, venv active; options such as --set behavior.actor_raw_bound=2 go to
#        every seed's run). Rerunning with a larger FRAMES resumes each run and goes on.
#        SEEDS="0 1 2 3" picks the seeds (default 0 1 2); REPORT=DIR the report's folder
#        (default experiments/rl_smoke/TASK); REPEAT=4 the action repeat (default 2, DMC's).
set -euo pipefail
RUNS=${1:-runs/rl_smoke}
FRAMES=${2:-50000}
TASK=${3:-cartpole-swingup}
shift $(( $# < 3 ? $# : 3 ))
HERE=$(dirname "$0")
SEEDS=${SEEDS:-0 1 2}
REPEAT=${REPEAT:-2}       # env frames per agent step (--action-repeat; DMC's protocol is 2)
REPORT=${REPORT:-$HERE/$TASK}
export MUJOCO_GL=${MUJOCO_GL:-egl}
mkdir -p "$RUNS" "$REPORT"
runs=()
for seed in $SEEDS; do
  runs+=("$RUNS/seed$seed")
  # cwm-rl counts agent steps; DMC repeats each action REPEAT times (FRAMES / REPEAT steps,
  # an evaluation every 2,000 frames). The runs in this folder were made before that unit change.
  cwm-rl --env dmc --task "$TASK" --preset small --steps "$(( FRAMES / REPEAT ))" --render fast \
         --action-repeat "$REPEAT" --seed "$seed" --eval-every "$(( 2000 / REPEAT ))" \
         --out "$RUNS/seed$seed" --no-progress "$@" \
         >> "$RUNS/seed$seed.log" 2>&1 &
done
wait
cwm-rl report "${runs[@]}" --out "$REPORT" --baselines 5
