"""Utilisation of the embedded model: RefineLab against a bare client on the same prompts, one run.

1. RefineLab: `refine()` on `--items` MMLU dev items (profile, pilot, one refine round; answer-check
   validation) against the embedded llama.cpp server, every request it sends recorded (messages and
   parameters, in-process, no proxy). Its throughput is the ledger's tokens over the run's wall.
2. Bare: the same recorded requests replayed with a plain HTTP client at the server's concurrency (its
   slots), in the same order; throughput = reported tokens over the replay's wall.

utilisation = RefineLab tokens/s / bare tokens/s (goal >= 0.90).
overhead = (RefineLab wall - time with at least one model call in flight) / wall (goal <= 5%): the time
the model sat idle because of the framework (graph steps, planning, stores, serial waits).
rerun: the identical run again with the first pass's response cache: tokens spent (goal 0) and wall as a
share of the first pass's (goal <= 10%), against the real model.

    python evals/bench_utilisation.py --quick      # 4 items; <= 10 minutes on 2 cores

The last line of output is one JSON object: {"utilisation", "overhead", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REFINELAB_DATA", REPO.parent / "shared" / "data"))

from refinelab.api import refine  # noqa: E402
from refinelab.config import load_settings  # noqa: E402
from refinelab.io import load_dataset  # noqa: E402
from refinelab.operations import Op  # noqa: E402
from refinelab.run_layout import LEDGER  # noqa: E402
from refinelab.tools import llm  # noqa: E402
from refinelab.tools.embedded_server import serving  # noqa: E402
from refinelab.tools.ledger import Ledger  # noqa: E402

KEY_ENV = "BENCH_UTIL_KEY"


class Recorder:
    """Records every live request a ChatClient sends (messages and parameters), in order."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._original = llm.ChatClient._cached_or_live

    def __enter__(self) -> Recorder:
        recorder, original = self, self._original

        def recording(client: llm.ChatClient, messages: list[dict[str, str]], params: dict[str, Any], *args: Any,
                      **kwargs: Any) -> Any:
            with recorder._lock:
                recorder.requests.append({"model": client.model_name, "messages": messages, **params})
            return original(client, messages, params, *args, **kwargs)

        llm.ChatClient._cached_or_live = recording  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        llm.ChatClient._cached_or_live = self._original  # type: ignore[method-assign]


def busy_seconds(ledger_path: Path) -> tuple[float, float]:
    """(seconds with at least one call in flight, first start -> last finish) from the ledger's rows."""
    ledger = Ledger(ledger_path)
    rows = ledger._db.execute("SELECT started, finished FROM calls WHERE finished IS NOT NULL ORDER BY started").fetchall()
    ledger.close()
    busy, end = 0.0, float("-inf")
    for started, finished in rows:
        if started > end:
            busy += finished - started
            end = finished
        elif finished > end:
            busy += finished - end
            end = finished
    return busy, (rows[-1][1] - rows[0][0]) if rows else 0.0


def replay(base_url: str, requests: list[dict[str, Any]], concurrency: int) -> dict[str, float]:
    """The recorded requests through a bare HTTP client at `concurrency`; tokens from reported usage."""
    tokens = [0, 0]
    lock = threading.Lock()
    with httpx.Client(base_url=base_url, timeout=600.0, headers={"Authorization": "Bearer sk-local"}) as http:

        def one(body: dict[str, Any]) -> None:
            answer = http.post("/chat/completions", json=body)
            answer.raise_for_status()
            usage = answer.json().get("usage") or {}
            with lock:
                tokens[0] += int(usage.get("prompt_tokens", 0))
                tokens[1] += int(usage.get("completion_tokens", 0))

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, requests))
        wall = time.perf_counter() - started
    total = tokens[0] + tokens[1]
    return {"wall_s": round(wall, 1), "tokens": total, "prompt_tokens": tokens[0], "completion_tokens": tokens[1],
            "tokens_per_s": round(total / wall, 2), "calls": len(requests)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 items (<= 10 minutes on 2 cores)")
    parser.add_argument("--items", type=int, default=None, help="MMLU dev items (default 20; quick 4)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--parallel", type=int, default=2, help="server slots = the bare client's concurrency")
    parser.add_argument("--budget", type=int, default=None, help="token budget (default 2,500 per item)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    n = args.items or (4 if args.quick else 20)
    budget = args.budget or 2500 * n
    load = os.getloadavg()[0]
    print(f"# {os.cpu_count()} cores, load average {load:.1f} at start; {args.model}, {args.parallel} slots, {n} items",
          flush=True)
    os.environ[KEY_ENV] = "sk-local"
    dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=n)
    report: dict[str, Any] = {"command": " ".join(["python", "evals/bench_utilisation.py", *(argv or sys.argv[1:])]),
                              "load_average_start": round(load, 2), "model": args.model, "slots": args.parallel}
    with serving(args.model, parallel=args.parallel) as server, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = {"endpoint": server.base_url, "model": args.model, "api_key_env": KEY_ENV,
                "concurrency": args.parallel}
        settings = load_settings(overrides={
            # a fresh cache: the first pass is all live; the identical second pass replays it
            "runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "cache.sqlite"), "use_cache": True,
            "roles": {"judge": dict(spec), "writer": {**spec, "max_tokens": 300}, "validator": dict(spec)}})
        options = {"validators": [], "dedup": "lexical", "pilot_per_op": 1, "rounds": 1, "max_attempts": 1,
                   "operations": [Op.REMOVE.value, Op.FIX.value, Op.REWRITE_DISTRACTORS.value]}
        with Recorder() as recorder:
            started = time.perf_counter()
            result = refine(dataset, budget=budget, settings=settings, run_id="util", options=options)
            wall = time.perf_counter() - started
        busy, span = busy_seconds(result.run_dir / LEDGER)
        ours = {"wall_s": round(wall, 1), "tokens": result.spent, "tokens_per_s": round(result.spent / wall, 2),
                "calls": len(recorder.requests), "model_busy_s": round(busy, 1),
                "overhead_s": round(wall - busy, 1), "statuses": result.report.get("items_by_status", {})}
        print("refinelab", json.dumps(ours), flush=True)
        started = time.perf_counter()  # re-runs are free: the same run again, answered from the cache
        again = refine(dataset, budget=budget, settings=settings, run_id="util-again", options=options)
        rerun = {"wall_s": round(time.perf_counter() - started, 2), "spent": again.spent,
                 "wall_ratio": round((time.perf_counter() - started) / wall, 4),
                 "same_statuses": again.report.get("items_by_status") == result.report.get("items_by_status")}
        print("rerun", json.dumps(rerun), flush=True)
        bare = replay(server.base_url, recorder.requests, args.parallel)
        print("bare", json.dumps(bare), flush=True)
    report["refinelab"], report["bare"], report["rerun"] = ours, bare, rerun
    headline = {"utilisation": round(ours["tokens_per_s"] / bare["tokens_per_s"], 3),
                "overhead": round((wall - busy) / wall, 3),
                "refinelab_tokens_per_s": ours["tokens_per_s"], "bare_tokens_per_s": bare["tokens_per_s"],
                "calls": ours["calls"], "items": n,
                "rerun_spent": rerun["spent"], "rerun_wall_ratio": rerun["wall_ratio"]}
    report["headline"] = headline
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(headline), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
