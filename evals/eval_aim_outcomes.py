"""What became of the expands of one refinement run by the difficulty bucket each was asked for
(`RunOptions.expand_aims_difficulty`): committed, and then in which bucket the panel measured the new item,
or refused, and by which check. Reads a finished run folder; calls no model.

The aims are read from the trace, where each dispatched task carries its batch's aims (`EditTask.aims`)
and its position (`EditTask.batch`); outcomes from changes.jsonl (each expand's last attempt); measured
buckets from refined.jsonl under the run's targets; the check that refused an attempt from the method
its verdict's evidence records.

    .venv/bin/python evals/eval_aim_outcomes.py runs/evals/<run> --tag aim_outcomes_50k
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from common import UNIFORM_TARGETS, last_attempts, measured_buckets, table, write_results

from refinelab.agents.difficulty_aims import split_aims
from refinelab.agents.expand_batches import DraftSlot
from refinelab.metrics.targets import load_targets
from refinelab.operations import Op
from refinelab.run_layout import TRACE

# the validator's `evidence.method` of a refused attempt, as the table names it
CHECKS = {"answer": "answer check (solver)", "measured": "labelled into another cell",
          "structural": "structural checks"}


def _tasks(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        if "edit_id" in value and "aims" in value:
            yield value
        for inner in value.values():
            yield from _tasks(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _tasks(inner)


def aims_by_edit(run_dir: Path) -> dict[str, str]:
    """edit id -> the bucket its draft was asked for."""
    out: dict[str, str] = {}
    for line in (run_dir / TRACE).read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        for task in _tasks([run.get("inputs"), run.get("outputs")]):
            aims = split_aims(str(task.get("aims") or ""))
            slot = DraftSlot.parse(str(task.get("batch") or ""))
            position = slot.position if slot is not None else 0
            if position < len(aims):
                out[str(task["edit_id"])] = aims[position]
    return out


def refusal_check(change: dict[str, Any]) -> str:
    """The check that refused an attempt, as its verdict recorded it (`evidence.method`)."""
    method = str((change.get("evidence") or {}).get("method") or "unrecorded")
    return CHECKS.get(method, method)


def outcomes(run_dir: Path, targets_path: Path) -> dict[str, dict[str, int]]:
    """aim -> outcome -> expands (outcome: "committed, reads <bucket>" or "refused: <check>")."""
    targets = load_targets(targets_path)
    aims = aims_by_edit(run_dir)
    measured = {item_id: bucket for item_id, (_, bucket) in measured_buckets(run_dir, targets).items()}
    table_: dict[str, Counter[str]] = defaultdict(Counter)
    for edit_id, change in last_attempts(run_dir, {Op.EXPAND.value}).items():
        aim = aims.get(edit_id, "no aim")
        if change.get("outcome") == "committed":
            item_id = (change.get("after") or {}).get("id", "")
            table_[aim][f"committed, reads {measured.get(item_id, 'not in the set')}"] += 1
        else:
            table_[aim][f"refused: {refusal_check(change)}"] += 1
    return {aim: dict(counts) for aim, counts in sorted(table_.items())}


def markdown(result: dict[str, Any]) -> str:
    columns = sorted({k for counts in result["outcomes"].values() for k in counts})
    rows = [[aim, sum(counts.values()), *[counts.get(c, 0) for c in columns]]
            for aim, counts in result["outcomes"].items()]
    return "\n".join([f"# Expands by the difficulty they were asked for ({result['tag']})", "",
                      f"Run: `{result['run']}`; targets: {result['targets']}.", "",
                      table(["asked for", "expands", *columns], rows), "",
                      "Each expand's last attempt. 'reads' is the bucket the panel measured for the committed new "
                      "item under the targets' edges; a refusal names the check that refused it (its verdict's evidence.method)."])


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--targets", type=Path, default=UNIFORM_TARGETS)
    parser.add_argument("--tag", default="aim_outcomes")
    args = parser.parse_args(argv)
    result = {"tag": args.tag, "run": str(args.run_dir), "targets": args.targets.name,
              "outcomes": outcomes(args.run_dir, args.targets)}
    text = markdown(result)
    write_results(args.tag, result, text)
    print(text)
    return result


if __name__ == "__main__":
    main()
