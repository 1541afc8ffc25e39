#!/usr/bin/env bash
# The main job on the embedded model: refine a small MMLU slice under a token budget.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DATA=${REFINELAB_DATA:-../shared/data}
RUN_ID=${RUN_ID:-demo-$(date +%Y%m%d-%H%M%S)}
echo "== embedded model check (first run assembles the 1.1 GB model once)"
$BIN/refinelab model check
echo "== refine: 5 MMLU subjects, 30 items, 40k-token budget, on the embedded model"
echo "   (profiling labels each item and measures difficulty from how the judge answers: ~800 tokens per item, ~24k of the budget)"
echo "   (the first run embeds the retrieval corpus once, a few minutes; later runs reuse the index)"
$BIN/refinelab refine "$DATA/mmlu/test" \
  --subjects astronomy,virology,college_chemistry,high_school_world_history,econometrics \
  --limit 30 --budget 40000 --run-id "$RUN_ID" --rag-corpus wikipedia:mmlu_redux --distractors
$BIN/refinelab report "$RUN_ID" >/dev/null && echo "HTML report: runs/$RUN_ID/report.html"
echo "== outputs in runs/$RUN_ID (refined.jsonl, changes.jsonl, report.json, trace.jsonl)"
echo "   inspect the agents' decisions: .venv/bin/refinelab trace $RUN_ID"
