#!/usr/bin/env bash
# The fidelity evals (docs/fidelity.md) at a chosen size, one command each, in order of cost.
#   bash evals/run_fidelity.sh            # full sizes the issue asks for (hours on 2 shared cores)
#   SIZE=small bash evals/run_fidelity.sh # what fits about 30 minutes there
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
EVAL_ARGS=${EVAL_ARGS:-}
if [[ ${SIZE:-full} == small ]]; then
  $PY evals/eval_labels.py --per-source 4 --deadline 420 --tag labels_small $EVAL_ARGS
  $PY evals/eval_distractors.py --n 8 --pool 30 --max-chars 500 --budget 16000 --rounds 1 --deadline 600 \
    --tag distractors_small $EVAL_ARGS
  $PY evals/eval_calibrate.py --n 8 --budget 10000 --deadline 420 --tag calibrate_small $EVAL_ARGS
  $PY evals/eval_jsd_curve.py --n 30 --budgets 3000 8000 --rounds 1 --pilot-per-op 0 --deadline 600 \
    --tag jsd_curve_small $EVAL_ARGS
else
  $PY evals/eval_labels.py --per-source 12 $EVAL_ARGS
  $PY evals/eval_distractors.py --n 40 --pool 80 --budget 80000 $EVAL_ARGS
  $PY evals/eval_calibrate.py --n 40 --budget 40000 $EVAL_ARGS
  $PY evals/eval_jsd_curve.py --n 100 --budgets 5000 20000 50000 $EVAL_ARGS
fi
