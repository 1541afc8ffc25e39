"""Behaviour check of the restructure: the scripted pipeline (no model, deterministic) on 30 MMLU dev items at
three budgets, run by the code before the restructure (commit 79949c5, `base`) and after it (`new`); each
writes what its runs produced to /tmp/ab, and `--compare` prints what differs.

    git worktree add /tmp/base 79949c5 && (cd /tmp/base && python /path/to/evals/restructure_ab.py base)
    python evals/restructure_ab.py new && python evals/restructure_ab.py --compare

A one-off: `base` imports the old layout (`tests/graph/scripted.py`, `extras=`), which only that commit has.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
from pathlib import Path
from typing import Any

from refinelab.run_layout import REFINED, REPORT_JSON, STORE

OUT = Path("/tmp/ab")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "mmlu" / "dev"


def _run_kwargs(which: str) -> dict[str, Any]:
    sys.path.insert(0, ".")
    if which == "base":
        sys.path.insert(0, "tests/graph")
        from scripted import models  # type: ignore[import-not-found]

        return {"chat_models": models(), "extras": {"validators": {}, "dedup": "lexical"}}
    from refinelab.agents.options import RunHooks
    from tests.support.scripted import models as new_models

    return {"hooks": RunHooks(chat_models=new_models()), "options": {"validators": [], "dedup": "lexical"}}


def run(which: str) -> None:
    from refinelab.api import refine
    from refinelab.config import load_settings
    from refinelab.io import load_dataset

    kwargs = _run_kwargs(which)
    out: dict[int, Any] = {}
    for budget in (8_000, 20_000, 40_000):
        tmp = Path(tempfile.mkdtemp())
        settings = load_settings(overrides={"runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "c.sqlite"),
                                            "use_cache": False})
        data = load_dataset(DATA, on_invalid="quarantine").filter(limit=30)
        result = refine(data, budget=budget, settings=settings, run_id="ab", **kwargs)
        folder = Path(result.run_dir)
        refined = sorted((json.loads(line) for line in (folder / REFINED).read_text().splitlines()),
                         key=lambda i: i["id"])
        for item in refined:
            item["provenance"].pop("run_id", None)
        with sqlite3.connect(folder / STORE) as conn:
            outcomes = sorted(conn.execute("SELECT edit_id, operation, round, status, attempts FROM outcomes"))
            statuses = sorted(conn.execute("SELECT id, status FROM items"))
        report = json.loads((folder / REPORT_JSON).read_text())
        out[budget] = {"refined": refined, "outcomes": outcomes, "statuses": statuses,
                       "report": {k: report[k] for k in ("stop_reason", "rounds", "items_by_status", "new_items",
                                                         "output_items", "metrics_before", "metrics_after")},
                       "spent": report["ledger"]["spent"], "by_node": report["ledger"].get("by_node")}
    OUT.mkdir(exist_ok=True)
    (OUT / f"scripted_{which}.json").write_text(json.dumps(out, indent=1, default=str))
    print(which, {b: (v["report"]["items_by_status"], v["spent"]) for b, v in out.items()})


def compare() -> None:
    a, b = (json.loads((OUT / f"scripted_{w}.json").read_text()) for w in ("base", "new"))
    for budget in a:
        for key in a[budget]:
            x, y = a[budget][key], b[budget][key]
            verdict = "same" if x == y else ({k: "differs" for k in x if x[k] != y[k]} if isinstance(x, dict)
                                            else "differs")
            print(budget, key, verdict)


if __name__ == "__main__":
    compare() if sys.argv[1] == "--compare" else run(sys.argv[1])
