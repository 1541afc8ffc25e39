"""Fit the reference the embedded model's difficulty is read against (refinelab/data/difficulty_reference.json).

With one panel member (the default: the judge alone) a Rasch fit has no spread of abilities to anchor the
buckets on, and a 1.5B model's p(key) sits in a narrow band, so every item came out "medium". Instead the
item's p(key) is placed among the p(key)s the same model gave a broad reference population: difficulty =
the share of reference items it found easier (metrics/irt.reference_difficulty), so "easy" means the
easiest third of that population *for this model*.

The population: the MMLU-Redux rows labelled ok (correct keys) that evals/eval_screening.py asked the model
in two option orders — 30 MMLU subjects, dev and retriever sets. It reads the answers from that eval's run
store; it asks nothing.

    .venv/bin/python evals/fit_difficulty_reference.py            # after eval_screening.py
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, command_line, git_commit, log  # noqa: E402
from eval_screening import dev_rows, retriever_rows  # noqa: E402
from redux import DEFAULT_ROOT  # noqa: E402

from refinelab.run_layout import STORE
from refinelab.tools.store import RunStore  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default=str(ROOT / "runs" / "evals" / "screening" / STORE))
    parser.add_argument("--member", default="qwen2.5-coder-1.5b")
    args = parser.parse_args()
    root = Path(DEFAULT_ROOT)
    store = RunStore(args.store)
    ok = [r for r in dev_rows(root) + retriever_rows(root) if r.label == "ok"]
    values, subjects = [], set()
    for row in ok:
        diag = store.diagnostic(row.id, "panel")
        probs = (diag.evidence.get("probs") or {}).get(args.member) if diag else None
        if probs and probs.get("p"):
            values.append(float(probs["p"][row.item.answer]))
            subjects.add(row.subject)
    if len(values) < 100:
        raise SystemExit(f"only {len(values)} answered ok rows in {args.store}; run eval_screening.py first")
    quantiles = np.quantile(np.asarray(values), np.linspace(0, 1, 101)).round(5).tolist()
    out = {"model": args.member, "p_key_quantiles": quantiles, "items": len(values), "subjects": len(subjects),
           "source": "MMLU-Redux rows labelled ok, two option orders (evals/fit_difficulty_reference.py)",
           "command": command_line(), "commit": git_commit()}
    path = ROOT / "refinelab" / "data" / "difficulty_reference.json"
    path.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {path}: {len(values)} items, {len(subjects)} subjects, "
        f"terciles of p(key) {np.quantile(values, [1 / 3, 2 / 3]).round(3).tolist()}")


if __name__ == "__main__":
    main()
