"""How often is the panel's favourite right, by how far it leads? The bar for moving a key.

A key fix moves the key to the panel's favourite, and the fix evidence bar counts a model source as
agreeing when the new key leads the other options by `key_correction.MOVE_MARGIN`. That lead should be
the one at which the favourite is right nearly always. On MMLU-Redux dev's ok rows (the key is right) the
panel's stored answers (`evals/eval_screening.py --sets dev` collects them; no model call here) give the
favourite's accuracy for each lead. The correction eval's subjects are left out, so the bar is not fitted
on the rows it is then checked on.

  .venv/bin/python evals/eval_panel_margin.py       # evals/results/panel_margin.*
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import command_line, git_commit, log, table, write_results
from eval_correction import SUBJECTS as DEFAULT_CORRECTION_SUBJECTS
from eval_screening import dev_rows
from redux import DEFAULT_ROOT

from refinelab.agents.key_correction import MOVE_MARGIN
from refinelab.agents.options import RunOptions
from refinelab.api.context import open_run_context
from refinelab.config import load_settings

LEADS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", default="qwen2.5-coder-1.5b")
    parser.add_argument("--exclude", default="global_facts,public_relations,virology,machine_learning," +
                        ",".join(DEFAULT_CORRECTION_SUBJECTS), help="subjects left out (the correction evals')")
    parser.add_argument("--read", default="",
                        help="one member's own distribution (e.g. cloze:qwen2.5-coder-1.5b) instead of the pooled one")
    parser.add_argument("--work-dir", default="runs/evals/screening")
    parser.add_argument("--tag", default="panel_margin")
    args = parser.parse_args(argv)
    members = [m.strip() for m in args.members.split(",") if m.strip()]
    excluded = {s.strip() for s in args.exclude.split(",") if s.strip()}
    settings = load_settings(overrides={"cache_path": str(Path(args.work_dir) / "cache.sqlite")})
    ctx = open_run_context(Path(args.work_dir), settings=settings, options=RunOptions(panel=members))
    leads: list[tuple[float, bool]] = []
    for row in dev_rows(Path(DEFAULT_ROOT)):
        if row.label != "ok" or row.subject in excluded:
            continue
        stored = ctx.store.diagnostic(row.id, "panel")
        evidence = stored.evidence if stored is not None else {}
        pooled = list(((evidence.get("probs") or {}).get(args.read) or {}).get("p") or [] if args.read
                      else evidence.get("pooled") or [])
        if len(pooled) != len(row.item.choices):
            continue
        ranked = sorted(range(len(pooled)), key=lambda i: -pooled[i])
        leads.append((pooled[ranked[0]] - pooled[ranked[1]], ranked[0] == row.item.answer))
    if not leads:
        raise SystemExit("no answered ok rows: run evals/eval_screening.py --sets dev first")
    by_lead = []
    for lead in LEADS:
        hits = [right for value, right in leads if value >= lead]
        by_lead.append({"lead": lead, "n": len(hits), "right": sum(hits),
                        "accuracy": sum(hits) / len(hits) if hits else None})
    result = {"tag": args.tag, "command": command_line(), "commit": git_commit(), "members": members,
              "read": args.read or "pooled",
              "excluded_subjects": sorted(excluded), "rows": len(leads), "by_lead": by_lead,
              "move_margin": MOVE_MARGIN}
    md = [f"# The panel's favourite, right by how far it leads\n\n`{result['command']}` (commit {result['commit']}): "
          f"{len(leads)} MMLU-Redux dev ok rows answered by {members} (read: {args.read or 'the pooled distribution'}), "
          "the correction evals' subjects left out "
          f"({', '.join(sorted(excluded))}). The fix bar (`key_correction.MOVE_MARGIN`) is {MOVE_MARGIN}.\n",
          table(["lead of the favourite ≥", "rows", "favourite right", "accuracy"],
                [[f"{b['lead']:.2f}", b["n"], b["right"], "-" if b["accuracy"] is None else f"{b['accuracy']:.0%}"]
                 for b in by_lead])]
    write_results(args.tag, result, "\n".join(md))
    log(" ".join(f"{b['lead']}:{b['accuracy'] if b['accuracy'] is None else round(b['accuracy'], 2)}({b['n']})"
                 for b in by_lead))
    return result


if __name__ == "__main__":
    main()
