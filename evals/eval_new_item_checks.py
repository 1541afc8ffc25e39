"""Do a new item's two key checks measure the same thing? The answer check against the panel's key check.

An expand draft that passes the structural checks and its placement is answered by the validator's
independent solver (the answer check: a generated answer, ~180 tokens); one the solver agrees with is then
asked of the panel in two option orders (one token each through logprobs, ~240 tokens) and refused when
another option leads its key by `NEW_KEY_LEAD`. Both are the same 1.5B model. On the 100k JSD run they
cost 25.9k and 12.1k of its 92k tokens. This eval takes every draft a finished JSD run sent to the
solver, asks the panel's probe of each (the refused ones were never probed), and reports how the two
checks' refusals overlap: whether one of them could be dropped, and what that would save. Direct calls
to the embedded server; no run store is written, no budget.

  .venv/bin/python evals/eval_new_item_checks.py \
      --run runs/evals/jsd_curve_100k-ilp-b100000-20261205-113303-b993 --tag new_item_checks_100k
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

from refinelab.agents.validation.measured import NEW_KEY_LEAD
from refinelab.run_layout import STORE
from refinelab.schema import LETTERS, QAItem

SOLVER_REFUSED = "an independent solver chose"
PANEL_REFUSED = "the panel prefers option"


def solved_drafts(store: Path) -> list[dict[str, Any]]:
    """Every expand attempt the solver answered: the draft, the solver's pick, and how it ended."""
    rows = []
    with sqlite3.connect(store) as db:
        for edit_id, attempt, after, verdict, reason, evidence, tokens in db.execute(
                "select edit_id, attempt, after, verdict, reason, evidence, tokens from edits "
                "where operation = 'expand' and after is not null order by edit_id, attempt"):
            picked = json.loads(evidence).get("validator_answer")
            if not picked:
                continue  # refused before the solver: structural, placement, no draft
            item = QAItem.model_validate(json.loads(after))
            if picked not in LETTERS[:len(item.choices)]:
                continue
            outcome = ("solver" if reason.startswith(SOLVER_REFUSED) else "panel" if reason.startswith(PANEL_REFUSED)
                       else "passed" if verdict == "pass" else "other")
            rows.append({"edit_id": edit_id, "attempt": attempt, "item": item, "picked": LETTERS.index(picked),
                         "outcome": outcome, "tokens": tokens})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a JSD eval's run folder (its store.sqlite)")
    parser.add_argument("--tag", default="new_item_checks")
    args = parser.parse_args()
    rows = solved_drafts(args.run / STORE)
    client, pack = embedded_prober()
    log(f"{len(rows)} expand drafts the solver answered, from {args.run}")
    started, tokens = time.monotonic(), 0
    for n, row in enumerate(rows, 1):
        item: QAItem = row["item"]
        pooled, used = two_order_probe(client, pack, item)
        tokens += used
        favourite = max(range(len(pooled)), key=pooled.__getitem__)
        lead = pooled[favourite] - pooled[item.answer]
        row.update(pooled=[round(p, 4) for p in pooled], favourite=favourite, lead=round(lead, 4),
                   panel_refuses=favourite != item.answer and lead >= NEW_KEY_LEAD,
                   solver_refuses=row["picked"] != item.answer)
        if n % 20 == 0:
            log(f"{n}/{len(rows)} probed, {tokens:,} tokens")
    both = sum(r["solver_refuses"] and r["panel_refuses"] for r in rows)
    solver_only = sum(r["solver_refuses"] and not r["panel_refuses"] for r in rows)
    panel_only = sum(r["panel_refuses"] and not r["solver_refuses"] for r in rows)
    neither = sum(not r["solver_refuses"] and not r["panel_refuses"] for r in rows)
    same_pick = sum(r["favourite"] == r["picked"] for r in rows)
    result = {"run": str(args.run), "drafts": len(rows), "lead": NEW_KEY_LEAD, "probe_tokens": tokens,
              "probe_tokens_per_draft": round(tokens / max(1, len(rows)), 1),
              "seconds": round(time.monotonic() - started, 1), "both_refuse": both, "solver_only": solver_only,
              "panel_only": panel_only, "neither": neither, "same_favourite": same_pick,
              "rows": [{k: v for k, v in r.items() if k != "item"} | {"question": r["item"].question[:200],
                                                                      "choices": r["item"].choices,
                                                                      "key": r["item"].answer} for r in rows]}
    md = [f"# A new item's answer check against the panel's key check ({args.tag})\n",
          f"Run: `{args.run}`. {len(rows)} expand drafts reached the validator's solver (the answer check). "
          f"Each was asked of the panel as the key check asks it (the shipped `panel_probe` prompt, two option "
          f"orders, one token each): {tokens:,} tokens ({result['probe_tokens_per_draft']} a draft), "
          f"{result['seconds']} s. The panel refuses when another option leads the key by {NEW_KEY_LEAD}.\n",
          table(["", "panel refuses", "panel accepts"],
                [["solver refuses", both, solver_only], ["solver accepts", panel_only, neither]]),
          f"\nThe solver's pick and the panel's favourite are the same option on {same_pick} of {len(rows)} drafts.\n"]
    write_results(args.tag, result, "\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
