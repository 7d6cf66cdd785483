#!/usr/bin/env bash
# Issue 13: does pre-training on action-free video make Meta-world RL more sample-efficient?
#   1. videos: `cwm-ingest sim` episodes of every scripted Meta-world task except the targets,
#      plus a few held-out episodes of the targets (for prediction pictures only);
#   2. pre-training: ContextWM and the plain world model, `small` preset, on those videos;
#   3. fine-tuning: 4 arms x target tasks x seeds, cwm-rl `small` preset, --render fast:
#        contextwm-pre      ContextWM, --pretrained
#        contextwm-scratch  the same agent and sizes (--model-like), fresh weights
#        plain-pre          plain world model, --pretrained
#        dreamerv2          DreamerV2 from scratch (its preset sizes)
#   4. reports: `cwm-rl report --baselines` per task (success-rate curves, IQM, 95% intervals,
#      each arm's world-model loss), `cwm-train predict` on the held-out targets' videos and the
#      pre-training loss curves (pretrain_summary.py).
# Usage: bash experiments/pretrain_benefit/run.sh [RUNS_DIR]   (repository root, venv active)
#   Sizes from the environment: EPISODES (per pre-training task, 10), PRE_STEPS (pre-training
#   steps, 5000), FRAMES (fine-tuning frames = agent steps on Meta-world, 50000), SEEDS ("0 1 2"),
#   FINETUNE ("reach drawer-open"), ARMS (all four), JOBS (runs at once, 2), WINDOW (frames the
#   arms are compared over, START:END; the second half of FRAMES).
#   SMOKE=1: the whole pipeline at toy sizes (two pre-training tasks, tiny presets) in minutes.
#   Every stage resumes: rerun with the same RUNS_DIR (a larger FRAMES goes on from there).
set -euo pipefail
RUNS=${1:-runs/pretrain_benefit}
HERE=$(cd "$(dirname "$0")" && pwd)
export MUJOCO_GL=${MUJOCO_GL:-egl}
TARGETS=reach,drawer-open,door-lock,button-press-topdown     # never in the pre-training videos
FINETUNE=${FINETUNE:-reach drawer-open}
SEEDS=${SEEDS:-0 1 2}
ARMS=${ARMS:-contextwm-pre contextwm-scratch plain-pre dreamerv2}
JOBS=${JOBS:-2}
if [[ ${SMOKE:-0} == 1 ]]; then
  PRE_TASKS=(--tasks window-open,faucet-close); EPISODES=1; MAXSTEPS=(--max-steps 40)
  PRE=(--preset tiny --steps 4 --ckpt-every 4 --picture-every 4 --log-every 2)
  RL=(--preset tiny --steps 120 --eval-every 60 --eval-episodes 1); HELDOUT_EPISODES=1
  WINDOW=0:120
  REPORT=$RUNS/report
else
  PRE_TASKS=(--tasks all --exclude "$TARGETS"); EPISODES=${EPISODES:-10}; MAXSTEPS=()
  # The pre-trained models take the `small` RL preset's own sizes (CNN depth 8, one residual
  # block, deter/hidden 200, no attention dropout): every arm then trains the same shape as
  # DreamerV2 from scratch, and a fine-tuning update costs ~2.6x less than at cwm-train's `small`
  # sizes (bench/RESULTS.md, "Fine-tuning a cwm-train --preset small checkpoint").
  PRE=(--preset small --steps "${PRE_STEPS:-5000}" --set model.cnn_depth=8
       --set model.res_blocks=1 --set model.deter=200 --set model.hidden=200
       --set model.attn_dropout=0)
  RL=(--preset small --steps "${FRAMES:-50000}"); HELDOUT_EPISODES=4
  WINDOW=${WINDOW:-$(( ${FRAMES:-50000} / 2 )):${FRAMES:-50000}}  # arms compared over the second half
  REPORT=$HERE
fi
mkdir -p "$RUNS"
RUNS=$(cd "$RUNS" && pwd)
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

log "1. videos"
cwm-ingest sim "${PRE_TASKS[@]}" --episodes "$EPISODES" "${MAXSTEPS[@]}" --render fast \
  --no-progress --out "$RUNS/videos/pretrain"
cwm-ingest sim --tasks "$TARGETS" --episodes "$HELDOUT_EPISODES" "${MAXSTEPS[@]}" --render fast \
  --seed 1000 --no-progress --out "$RUNS/videos/heldout"

log "2. pre-training"
ckpt() { ls "$RUNS/pretrain/$1/checkpoints/"*.pt | sort | tail -1; }
for model in contextwm plain; do
  cwm-train --shards "$RUNS/videos/pretrain" --model "$model" "${PRE[@]}" --no-progress \
    --out "$RUNS/pretrain/$model" > "$RUNS/pretrain-$model.log" 2>&1
  # The held-out predictions of the newest checkpoint, once (a resumed session skips them).
  step=$(basename "$(ckpt "$model")" .pt); step=${step#step-}
  [[ -e $RUNS/pretrain/$model/heldout/eval-$step.json ]] ||
    cwm-train predict "$RUNS/pretrain/$model" --shards "$RUNS/videos/heldout" \
      --out "$RUNS/pretrain/$model/heldout" >> "$RUNS/pretrain-$model.log" 2>&1
done

log "3. fine-tuning"
arm_args() {
  case $1 in
    contextwm-pre)     echo "--agent contextwm --pretrained $(ckpt contextwm)" ;;
    contextwm-scratch) echo "--agent contextwm --model-like $(ckpt contextwm)" ;;
    plain-pre)         echo "--agent plain --pretrained $(ckpt plain)" ;;
    dreamerv2)         echo "--agent dreamerv2" ;;
  esac
}
# Seed-major: each seed's arms run next to each other, so a run stopped part-way (the budget is
# spread over sessions) has complete comparisons for the seeds it reached.
for task in $FINETUNE; do
  for seed in $SEEDS; do
    for arm in $ARMS; do
      out=$RUNS/rl/$task/$arm/seed$seed
      mkdir -p "$(dirname "$out")"
      # shellcheck disable=SC2046  # arm_args is a word list
      cwm-rl --env metaworld --task "$task" --render fast --seed "$seed" "${RL[@]}" \
        $(arm_args "$arm") --no-progress --out "$out" >> "$out.log" 2>&1 &
      while (( $(jobs -rp | wc -l) >= JOBS )); do wait -n || log "a run failed: see its .log"; done
    done
  done
done
wait

log "4. reports"
python "$HERE/pretrain_summary.py" "$RUNS/pretrain" --out "$REPORT/pretrain"
for task in $FINETUNE; do
  cwm-rl report "$RUNS/rl/$task"/*/seed*/ --out "$REPORT/$task" --baselines 5 \
    --train-metric model_loss --train-metric eval_return --window "$WINDOW"
done
log "done: $REPORT"
