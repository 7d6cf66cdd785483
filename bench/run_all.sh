#!/usr/bin/env bash
# Every benchmark in one go (`make bench`), each printing ratios measured within its own run.
# The figures in bench/RESULTS.md come from these commands. Needs ~30-60 min on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
export MUJOCO_GL=${MUJOCO_GL:-egl}
work=${BENCH_WORK:-/tmp/cwm_bench}
mkdir -p "$work"
python bench/ingest_speed.py --reps 5 --work "$work/ingest_speed"
python bench/ingest_startup.py --reps 5
python bench/ingest_scale.py --reps 3 --work "$work/ingest_speed"
python bench/ingest_threads.py --reps 3 --work "$work/ingest_speed"
python bench/ingest_probe.py --reps 2 --work "$work/ingest_speed"
python bench/ingest_projection.py --reps 3 --work "$work/ingest_speed"
python bench/ingest_sim.py --episodes 2 --steps 100 --repeats 3
python bench/shards_loader.py --repeats 5 --clips 4000 --workdir "$work/shards"
python bench/rl_env_speed.py --steps 60 --repeats 3
cwm-ingest synthetic --out "$work/model_shards" --no-progress
python bench/model_step.py --shards "$work/model_shards" --rounds 2 --steps 2 --speeds eager,auto
python bench/pretrain_vs_upstream.py --steps 2  # upstream side skipped without ${CWM_UPSTREAM:-/tmp/upstream}
python bench/rl_loop_speed.py --env-steps 100 --updates 1 --policy-steps 30 --batch-size 8
# Needs upstream's set-up (experiments/rl_parity/README.md); skipped without it.
if [ -x "${UPSTREAM:-/tmp/upstream}/venv/bin/python" ]; then
  python bench/rl_vs_upstream.py --upstream "${UPSTREAM:-/tmp/upstream}" --reps 3 --updates 10 \
         --paper-updates 1 --loop-steps 1250 --loop-pretrain 10
fi
