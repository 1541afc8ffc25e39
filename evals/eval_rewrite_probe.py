"""Would a two-order probe of an assembled distractor rewrite have told which rewrites the solver refuses?

The validator's answer check has an independent solver answer a rewritten item; a distractor rewrite fails
when the solver picks one of the new distractors ("no new distractor judged correct"). The refiner chose
those distractors after a probe of the judge over all candidates at once (ten options), where a 1.5B
model's mass is spread thin. This eval takes every rewrite a finished distractor eval sent to the solver,
asks the judge the item as it was validated (four options, the panel's two orders, one token each through
logprobs, the shipped `panel_probe` prompt), and reports, for several margins, how many of the
solver-refused and of the passed rewrites have a new distractor as the judge's favourite, ahead of the key
by at least that margin. The refiner's rule (`candidate_probe.REWRITE_LEAD`) is one of the margins.
Direct calls to the embedded server; no run store is written, no budget.

  .venv/bin/python evals/eval_rewrite_probe.py --run runs/evals/distractors-distractors_s30-20261204-123227 \
      --tag rewrite_probe_s30
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from common import log, table, write_results
from eval_probe_format import embedded_prober, two_order_probe

from refinelab.agents.candidate_probe import REWRITE_LEAD
from refinelab.run_layout import STORE
from refinelab.schema import LETTERS, QAItem, normalise_text

MARGINS = (0.0, 0.02, REWRITE_LEAD, 0.10)


def validated_rewrites(store: Path) -> list[dict[str, Any]]:
    """Every rewrite attempt the solver answered: the item as validated, its original, and the pick."""
    rows = []
    with sqlite3.connect(store) as db:
        for item_id, attempt, before, after, verdict, evidence in db.execute(
                "select item_id, attempt, before, after, verdict, evidence from edits "
                "where operation = 'rewrite_distractors' and after is not null order by item_id, attempt"):
            picked = json.loads(evidence).get("validator_answer")
            if not picked or not before:
                continue  # refused before the solver (unchanged, structural) or the solver gave no answer
            rows.append({"item_id": item_id, "attempt": attempt, "verdict": verdict, "picked": picked,
                         "before": QAItem.model_validate(json.loads(before)),
                         "after": QAItem.model_validate(json.loads(after))})
    return rows


def kind(item: QAItem, original: QAItem, index: int) -> str:
    """'key', 'old' (a distractor the original had) or 'new'."""
    if index == item.answer:
        return "key"
    return "old" if normalise_text(item.choices[index]) in {normalise_text(c) for c in original.choices} else "new"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a distractor eval's run folder")
    parser.add_argument("--tag", default="rewrite_probe")
    args = parser.parse_args()
    rows = validated_rewrites(args.run / STORE)
    client, pack = embedded_prober()
    log(f"{len(rows)} validated rewrites from {args.run}")
    started, tokens = time.monotonic(), 0
    for row in rows:
        item: QAItem = row["after"]
        n = len(item.choices)
        mean, used = two_order_probe(client, pack, item)
        tokens += used
        favourite = max(range(n), key=mean.__getitem__)
        row.update(p=[round(p, 4) for p in mean], favourite=kind(item, row["before"], favourite),
                   favourite_text=item.choices[favourite], lead=round(mean[favourite] - mean[item.answer], 4),
                   solver=kind(item, row["before"], LETTERS.index(row["picked"])))
    refused = [r for r in rows if r["solver"] == "new"]
    passed = [r for r in rows if r["verdict"] == "pass"]

    def flagged(group: list[dict[str, Any]], margin: float) -> int:
        return sum(r["favourite"] == "new" and r["lead"] >= margin for r in group)

    by_margin = [{"margin": m, "refused_flagged": flagged(refused, m), "passed_flagged": flagged(passed, m)}
                 for m in MARGINS]
    result = {"run": str(args.run), "rewrites": len(rows), "solver_refused": len(refused), "passed": len(passed),
              "tokens": tokens, "seconds": round(time.monotonic() - started, 1), "rule_margin": REWRITE_LEAD,
              "by_margin": by_margin,
              "rows": [{k: v for k, v in r.items() if k not in ("before", "after")} for r in rows]}
    md = [f"# A two-order probe of assembled distractor rewrites ({args.tag})\n",
          f"Run: `{args.run}`. {len(rows)} rewrites reached the validator's solver: it picked a new distractor "
          f"on {len(refused)} (refused), and {len(passed)} passed. Each was asked of the embedded judge as "
          f"validated (four options, two orders); {tokens:,} tokens, {result['seconds']} s.\n",
          "A rewrite is flagged at a margin when the judge's favourite is a new distractor that leads the key "
          f"by at least that margin. The refiner's rule is {REWRITE_LEAD}.\n",
          table(["margin", "solver-refused flagged", "passed flagged"],
                [[m["margin"], f"{m['refused_flagged']} of {len(refused)}", f"{m['passed_flagged']} of {len(passed)}"]
                 for m in by_margin]),
          "\n## Rows flagged at the rule's margin\n",
          table(["item", "attempt", "verdict", "solver picked", "favourite", "lead"],
                [[r["item_id"], r["attempt"], r["verdict"], r["solver"], r["favourite_text"][:80], r["lead"]]
                 for r in rows if r["favourite"] == "new" and r["lead"] >= REWRITE_LEAD])]
    write_results(args.tag, result, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
