#!/usr/bin/env bash
# Screen of issue 12's small-budget options on a DMC task: each variant is the `small` preset
# plus --set options, 3 seeds side by side (experiments/rl_smoke/run.sh), its report (IQM, 95%
# bootstrap interval, random and zero-action baselines) in experiments/cpu_preset/TASK/VARIANT/.
# Usage: bash experiments/cpu_preset/run.sh [RUNS_DIR] [FRAMES] [TASK] [VARIANT...]
#        (repository root, venv active). Rerunning with a larger FRAMES resumes every run.
#        The variants run one after another; `frames_per_s` in each run's metrics gives the cost.
set -euo pipefail
RUNS=${1:-runs/cpu_preset}
FRAMES=${2:-20000}
TASK=${3:-cartpole-balance}
shift $(( $# < 3 ? $# : 3 ))
HERE=$(dirname "$0")
declare -A SETTINGS=(
  [small]=""                                                  # upstream's protocol, small sizes
  [replay4x]="loop.train_every=1"                             # 96 replayed steps per frame (paper: 80)
  [freenats]="learn.free_nats=0.1"                            # the s prior gets gradient sooner
  [v3returns]="learn.reward_transform=symlog behavior.return_norm=percentile"
  [actordelay]="behavior.actor_delay=500"                     # the actor waits 500 updates
  [rawbound]="behavior.actor_raw_bound=2"                     # actor outputs kept out of saturation
  [reinforce]="behavior.actor_grad=reinforce"                # score-function actor gradient
  [repeat4]=""                                                # action repeat 4 (REPEATS below)
  [unimix]="learn.unimix=0.01"                                # DreamerV3's 1% uniform in the s latent
  [rawbound-unimix]="behavior.actor_raw_bound=2 learn.unimix=0.01"   # --preset cpu + unimix
  [rawbound-replay4x]="behavior.actor_raw_bound=2 loop.train_every=1"  # --preset cpu at the paper's ratio
  [rawbound-entropy]="behavior.actor_raw_bound=2 behavior.actor_entropy=0.01"  # --preset cpu, 100x the entropy bonus
)
# Env frames per agent step where a variant differs from DMC's 2: the imagination's 15 steps
# then span 60 frames (0.6 s of cartpole) instead of 30, and an update comes every 20 frames.
declare -A REPEATS=([repeat4]=4)
VARIANTS=("$@")
[[ ${#VARIANTS[@]} -gt 0 ]] || VARIANTS=(small freenats v3returns actordelay rawbound reinforce repeat4 replay4x unimix rawbound-unimix rawbound-replay4x rawbound-entropy)
for v in "${VARIANTS[@]}"; do
  [[ -v "SETTINGS[$v]" ]] || { echo "error: unknown variant $v (${!SETTINGS[*]})" >&2; exit 2; }
  args=()
  for s in ${SETTINGS[$v]}; do args+=(--set "$s"); done
  REPEAT=${REPEATS[$v]:-2} REPORT="$HERE/$TASK/$v" bash "$HERE/../rl_smoke/run.sh" "$RUNS/$TASK/$v" "$FRAMES" "$TASK" \
    ${args[@]+"${args[@]}"}
done
