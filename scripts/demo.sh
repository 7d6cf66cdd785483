#!/usr/bin/env bash
# The whole pipeline end to end on generated video; no download. Called by `make demo`.
set -euo pipefail
OUT=${1:-demo}
mkdir -p "$OUT"
echo "== demo: outputs in $OUT/"
