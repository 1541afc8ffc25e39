#!/usr/bin/env bash
# The main job on the embedded model: refine a small MMLU slice under a token budget.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${REFINELAB_DATA:-../shared/data}
echo "== embedded model check"
$BIN/refinelab model check
echo "== dataset check"
$BIN/refinelab data validate "$DATA/mmlu/test/astronomy_test.csv"
if $BIN/refinelab refine --help >/dev/null 2>&1; then
  echo "== refine (5 subjects, 60 items, 30k tokens)"
  $BIN/refinelab refine "$DATA/mmlu/test" \
    --subjects astronomy,virology,college_chemistry,high_school_world_history,econometrics \
    --limit 60 --budget 30000 --run-id demo
fi
