#!/usr/bin/env bash
# `make evals`: every paper-reproduction eval and the benchmarks in their quick sizes, on the embedded
# model by default, each under a wall-clock deadline so the whole thing is bounded on 2 cores (worst case
# about 45 minutes on a loaded machine; model responses are cached, so a re-run is much faster).
# Results: evals/results/*_quick.{json,md}, bench_*_quick.*, summary_quick.md.
#
#   bash evals/run_quick.sh
#   EVAL_ARGS="--endpoint http://host:8000/v1 --model my-model" bash evals/run_quick.sh   # any endpoint
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EVAL_ARGS=${EVAL_ARGS:-}
RESULTS=evals/results
mkdir -p "$RESULTS"
started=$(date +%s)
failed=()

step() {  # step NAME COMMAND...: run, time, and keep going on failure (the summary says what is missing)
  local name=$1; shift
  local t0=$(date +%s)
  echo "== $name: $*"
  if "$@"; then
    echo "== $name: done in $(( $(date +%s) - t0 )) s"
  else
    echo "== $name: FAILED (exit $?) after $(( $(date +%s) - t0 )) s"
    failed+=("$name")
  fi
}

# Benchmarks first: no model, seconds each.
step bench_planner bash -c "$PY evals/bench_planner.py --quick | tee $RESULTS/bench_planner_quick.txt"
step bench_sandbox bash -c "$PY evals/bench_sandbox.py --warm 30 --cold 3 --e2b 10 | tee $RESULTS/bench_sandbox_quick.txt"
step bench_retrieval $PY evals/bench_retrieval.py --n 5000 --queries 50 --real-size 0 --no-embed \
  --json "$RESULTS/bench_retrieval_quick.json"

# 3. Error detection P/R/F1 on MMLU-Redux dev (the existing eval): every row on the free deterministic
# stage, and a small stratified sample with the model panel (answers kept in a persistent work dir).
# Own tags, so the figures the profiling doc cites (error_screening_*.md from its cold runs) stay as they are.
step error_screening_all $PY evals/eval_error_screening.py --stages deterministic --n 0 \
  --tag error_screening_all_quick
step error_screening_quick $PY evals/eval_error_screening.py --quick --n 8 --panel-deadline 150 \
  --work-dir runs/evals/error-screening-quick --tag error_screening_panel_quick

# 1, 6, 2, 5, 4: the refinement evals (real runs on the model).
step jsd_curve $PY evals/eval_jsd_curve.py --quick --deadline 600 $EVAL_ARGS
step modes $PY evals/eval_modes.py --quick --deadline 480 $EVAL_ARGS
step correction $PY evals/eval_correction.py --quick --deadline 600 $EVAL_ARGS
step panel $PY evals/eval_panel.py --quick --deadline 360 $EVAL_ARGS
step distractors $PY evals/eval_distractors.py --quick --deadline 420 $EVAL_ARGS
# Fidelity (docs/fidelity.md): label separation on mixed sources, measured calibrations.
step labels $PY evals/eval_labels.py --quick --deadline 420 $EVAL_ARGS
step calibrate $PY evals/eval_calibrate.py --quick --deadline 420 $EVAL_ARGS

elapsed=$(( $(date +%s) - started ))
echo
$PY evals/common.py summary _quick "$elapsed"
echo
echo "make evals: ${elapsed} s; results in $RESULTS/"
if (( ${#failed[@]} )); then
  echo "failed steps: ${failed[*]}"
  exit 1
fi
