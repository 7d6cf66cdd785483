#!/usr/bin/env bash
# The whole pipeline end to end on generated video, no download. Called by `make demo`;
# rerunning resumes every stage (each command skips what its --out already holds).
set -euo pipefail
OUT=${1:-demo}
TRAIN_STEPS=${DEMO_TRAIN_STEPS:-150}
RL_STEPS=${DEMO_RL_STEPS:-300}   # agent steps (x2 frames on DMC)
mkdir -p "$OUT"
step() { printf '\n== %s\n' "$*"; }

step "1/5 ingest: generate 24 real encoded videos and shard them (embedded dask cluster); render 2 Meta-world episodes"
cwm-ingest synthetic --out "$OUT/shards"
# Rendered simulator videos, sharded the same way: two short Meta-world expert episodes (~15 s)
cwm-ingest sim --tasks drawer-open,button-press-topdown --episodes 1 --max-steps 50 \
  --render fast --out "$OUT/sim" --no-progress

step "2/5 shards: inspect (contact sheet) and verify every sample"
cwm-ingest inspect "$OUT/shards" --sheet "$OUT/contact_sheet.png"
cwm-ingest verify "$OUT/shards"
cwm-ingest inspect "$OUT/sim" --sheet "$OUT/sim_sheet.png" --rows 2

step "3/5 model: pre-train ContextWM (tiny preset, $TRAIN_STEPS steps) from the card's angle-form spec"
n=$(ls "$OUT"/shards/synthetic-*.tar | wc -l)
last=$(printf '%06d' $((n - 1)))
cwm-train --shards "$OUT/shards/synthetic-<000000..$last>.tar" --out "$OUT/train" \
  --preset tiny --steps "$TRAIN_STEPS" --picture-every "$TRAIN_STEPS" --no-progress
cwm-train predict "$OUT/train" --shards "$OUT/shards" --out "$OUT/train/pictures"

step "4/5 rl: fine-tune the pre-trained model on DMC cartpole-balance (tiny preset, $RL_STEPS agent steps = $((RL_STEPS * 2)) frames)"
ckpt=$(ls "$OUT"/train/checkpoints/*.pt | sort | tail -n 1)
cwm-rl --env dmc --task cartpole-balance --preset tiny --steps "$RL_STEPS" --render fast \
  --pretrained "$ckpt" --out "$OUT/rl" --no-progress

step "5/5 report: learning curve over seeds with the published reference curves"
cwm-rl report "$OUT/rl" --out "$OUT/report"

step "done: look at"
ls -1 "$OUT/contact_sheet.png" "$OUT/sim_sheet.png" "$OUT"/train/pictures/* "$OUT"/rl/*.png "$OUT"/report/* 2>/dev/null
