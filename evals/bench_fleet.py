"""Scale simulation: a loopback fleet of fake OpenAI-compatible servers driven by a whole RefineLab run.

What it measures, in one process run (figures as ratios, so they travel between machines):

- plan: 100k synthetic items end to end, Problem build + ILP solve, CPU seconds on one core (goal <= 5 s);
- ledger: reserve+settle pairs per second from 8 threads on a file ledger (goal >= 2,000/s);
- store: items loaded and diagnostics written per second (run store, SQLite);
- fleet: `refine()` (profile -> plan -> one refine round) on `--items` synthetic items, every role on a
  fleet of `--servers` fake servers in a child process (latency log-normal around `--latency`,
  `--tps` tokens/s generation, `--rate-429` busy answers), at each `--concurrency` (total slots over
  the fleet). Ideal = calls x mean latency / total concurrency (from the servers' own counters);
  fleet_efficiency = ideal / wall (goal >= 0.90); checkpoint and store sizes; peak RSS of this process;
- re-run: the same run again with the response cache: tokens spent (goal 0) and wall vs the first.

    python evals/bench_fleet.py --quick                 # CI-sized: 1,000 items through the fleet (~8 min)
    python evals/bench_fleet.py --items 5000 --concurrency 256   # where fixed latency chains are amortised
    python evals/bench_fleet.py --items 100000          # the full scale run (hours on 2 cores)
    python evals/bench_fleet.py --fleet-only --items 4000 --concurrency 64 --latency 0.05 --tracemalloc 25
                                                        # memory only: one fleet run, its top allocation sites

The last line of output is one JSON object: {"fleet_efficiency", "peak_rss_gb", "ledger_ops_per_s", ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the fake servers live in tests/support
sys.path.insert(0, str(REPO / "evals"))

from bench_planner import synthetic_profiles  # noqa: E402

from refinelab.api import refine  # noqa: E402
from refinelab.config import load_settings  # noqa: E402
from refinelab.operations import Op  # noqa: E402
from refinelab.planner.ilp import SolverPolicy, solve  # noqa: E402
from refinelab.planner.problem import build_problem  # noqa: E402
from refinelab.run_layout import CHECKPOINTS, LEDGER, STORE  # noqa: E402
from refinelab.schema import Dataset, Diagnostic, QAItem  # noqa: E402
from refinelab.tools.ledger import CallTag, Ledger  # noqa: E402
from refinelab.tools.store import RunStore  # noqa: E402
from tests.support.synthetic import synthetic_dataset  # noqa: E402

KEY_ENV = "BENCH_FLEET_KEY"
OPERATIONS = [op.value for op in (Op.REMOVE, Op.FIX, Op.REWRITE_DISTRACTORS, Op.CALIBRATE)]


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


# ------------------------------------------------------------------------------- core figures

def bench_plan(n: int) -> dict[str, float]:
    rows = synthetic_profiles(n)
    c0 = time.process_time()
    problem = build_problem(rows, budget=250.0 * n)
    c1 = time.process_time()
    plan = solve(problem, mode="ilp", policy=SolverPolicy(time_limit_s=10.0, gap=1e-3, marginal="none"))
    c2 = time.process_time()
    return {"items": n, "build_cpu_s": round(c1 - c0, 2), "solve_cpu_s": round(c2 - c1, 2),
            "plan_cpu_s": round(c2 - c0, 2), "status": plan.status, "peak_rss_gb": round(peak_rss_gb(), 2)}


def bench_ledger(pairs: int, threads: int = 8) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Ledger(Path(tmp) / LEDGER, cap=10**12)

        def work(k: int) -> None:
            for i in range(pairs // threads):
                reservation = ledger.reserve(900, CallTag("profile", "label", f"{k}-{i}", "fake"))
                ledger.settle(reservation, 400, 20)

        started = time.perf_counter()
        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - started
        assert ledger.spent == 420 * (pairs // threads) * threads
        ledger.close()
    return {"pairs": pairs, "threads": threads, "ledger_ops_per_s": round(pairs / seconds)}


def bench_store(dataset: Dataset) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / STORE)
        t0 = time.perf_counter()
        store.load_items(dataset)
        t1 = time.perf_counter()
        store.put_diagnostics(Diagnostic(item_id=item.id, check="difficulty", flag=False, score=0.5,
                                         evidence={"rating": 3}) for item in dataset)
        t2 = time.perf_counter()
        singles = dataset.items[: min(len(dataset), 5000)]

        def put_one(item: QAItem) -> None:  # as the profiler does: one item's diagnostic at a time, threads
            store.put_diagnostics([Diagnostic(item_id=item.id, check="error", flag=False, score=0.1)])

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(put_one, singles))
        t3 = time.perf_counter()
        size = (Path(tmp) / STORE).stat().st_size
        store.close()
    n = len(dataset)
    return {"items": n, "load_items_per_s": round(n / (t1 - t0)), "diagnostics_batch_per_s": round(n / (t2 - t1)),
            "diagnostics_per_s": round(len(singles) / (t3 - t2)), "store_mb": round(size / 2**20, 1)}


# ------------------------------------------------------------------------------- memory sites

class PeakSnapshots:
    """tracemalloc snapshots near the traced peak, for finding what grows with the items.

    Why a sampler: a snapshot at the end shows what survives the run, not what was held at its peak
    (the run store's rows, the graph's step payloads and the trace's open runs are freed by then). Every
    `interval_s` it reads the traced size and, when that is 5% above the last snapshot's, takes a new one;
    the last one kept is within ~5% (and one interval) of the peak. Sites are grouped two ways: by the
    allocating line, and by the innermost `refinelab/` frame of the allocation's traceback (which of our
    lines made the library allocate)."""

    def __init__(self, frames: int, interval_s: float = 2.0) -> None:
        self.frames, self.interval_s = frames, interval_s
        self.snapshot: tracemalloc.Snapshot | None = None
        self.snapshot_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="peak-snapshots", daemon=True)

    def __enter__(self) -> PeakSnapshots:
        tracemalloc.start(self.frames)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            current = tracemalloc.get_traced_memory()[0] / 2**20
            if current > self.snapshot_mb * 1.05:
                self.snapshot = tracemalloc.take_snapshot().filter_traces(
                    [tracemalloc.Filter(False, tracemalloc.__file__)])
                self.snapshot_mb = current

    def top(self, n: int) -> dict[str, Any]:
        """The `n` largest sites of the kept snapshot, by line and by our innermost frame (MB, blocks)."""
        if self.snapshot is None:
            return {}
        by_line = [{"site": f"{_short(s.traceback[-1].filename)}:{s.traceback[-1].lineno}",
                    "mb": round(s.size / 2**20, 2), "blocks": s.count}
                   for s in self.snapshot.statistics("lineno")[:n]]
        ours: dict[str, list[int]] = {}
        for trace in self.snapshot.traces:
            frame = next((f for f in reversed(trace.traceback) if "/refinelab/" in f.filename), None)
            key = f"{_short(frame.filename)}:{frame.lineno}" if frame else "(no refinelab frame)"
            entry = ours.setdefault(key, [0, 0])
            entry[0] += trace.size
            entry[1] += 1
        by_ours = [{"site": k, "mb": round(v[0] / 2**20, 2), "blocks": v[1]}
                   for k, v in sorted(ours.items(), key=lambda kv: -kv[1][0])[:n]]
        return {"traced_peak_mb": round(self.peak_mb, 1), "snapshot_mb": round(self.snapshot_mb, 1),
                "by_line": by_line, "by_refinelab_frame": by_ours}


def _short(filename: str) -> str:
    """A path from its package folder on (`refinelab/...`, `langgraph/...`), so sites read the same anywhere."""
    parts = Path(filename).parts
    for anchor in ("refinelab", "site-packages", "lib"):
        if anchor in parts:
            index = len(parts) - 1 - parts[::-1].index(anchor)
            return "/".join(parts[index + (anchor != "refinelab"):])
    return filename


# ------------------------------------------------------------------------------------ the fleet

@contextlib.contextmanager
def fleet(count: int, latency: float, sigma: float, tps: float, rate_429: float, slots: int = 0,
          ) -> Iterator[list[str]]:
    """Fake servers in a child process (they must not share this interpreter's CPU time).

    `slots`: requests each server serves at once, shared by every role (as vLLM's max_num_seqs is);
    more wait at the server. With it, calls x latency / (servers x slots) is a true lower bound of the
    wall. Without it the three roles (16 client slots per server each) could hold 3x the "total
    concurrency" in flight and the ideal came out above the wall (efficiency 1.10 at 64)."""
    command = [sys.executable, "-m", "tests.support.fake_openai", "--count", str(count), "--latency", str(latency),
               "--sigma", str(sigma), "--tps", str(tps), "--rate-429", str(rate_429), "--responder", "scripted",
               "--slots", str(slots)]
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        urls = json.loads(child.stdout.readline())
        yield urls
    finally:
        child.terminate()
        child.wait(timeout=10)


def server_stats(urls: list[str]) -> dict[str, float]:
    total: dict[str, float] = {}
    for url in urls:
        with urllib.request.urlopen(url.removesuffix("/v1") + "/stats", timeout=5) as answer:  # noqa: S310 (loopback)
            for key, value in json.loads(answer.read()).items():
                total[key] = total.get(key, 0) + value
    return total


def run_once(dataset: Dataset, urls: list[str], concurrency: int, tmp: Path, run_id: str, use_cache: bool,
             budget: int) -> dict[str, Any]:
    per_server = max(1, concurrency // len(urls))
    spec = {"endpoint": urls[0], "endpoints": [f"{u}#{per_server}" for u in urls], "model": "fake",
            "api_key_env": KEY_ENV, "timeout_s": 60.0, "concurrency": per_server}
    settings = load_settings(overrides={
        "runs_dir": str(tmp / "runs"), "cache_path": str(tmp / "cache.sqlite"), "use_cache": use_cache,
        "roles": {r: dict(spec) for r in ("judge", "writer", "validator")}})
    before = server_stats(urls)
    started = time.perf_counter()
    result = refine(dataset, budget=budget, settings=settings, run_id=run_id,
                    options={"validators": [], "dedup": "lexical", "pilot_per_op": 2, "rounds": 1,
                             "max_attempts": 2, "operations": OPERATIONS})
    wall = time.perf_counter() - started
    after = server_stats(urls)
    delta = {k: after[k] - before.get(k, 0) for k in after}
    answered = int(delta["answered"])
    mean_latency = delta["busy_s"] / answered if answered else 0.0
    slots = per_server * len(urls)
    ideal = answered * mean_latency / slots
    folder = result.run_dir
    return {
        "concurrency": slots, "items": len(dataset), "wall_s": round(wall, 1), "calls": answered,
        "requests": int(delta["requests"]), "rejected_429": int(delta["rejected_429"]),
        "mean_latency_s": round(mean_latency, 3), "ideal_s": round(ideal, 1),
        "fleet_efficiency": round(ideal / wall, 3) if wall else 0.0,
        "spent": result.spent, "budget": budget,
        "statuses": result.report.get("items_by_status", {}),
        "checkpoint_mb": round((folder / CHECKPOINTS).stat().st_size / 2**20, 1),
        "store_mb": round((folder / STORE).stat().st_size / 2**20, 1),
        "ledger_mb": round((folder / LEDGER).stat().st_size / 2**20, 1),
        "peak_rss_gb": round(peak_rss_gb(), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized (<= 10 minutes on 2 shared cores)")
    parser.add_argument("--items", type=int, default=None, help="items through the fleet (default 100000; quick 1000)")
    parser.add_argument("--plan-items", type=int, default=100_000)
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, nargs="*", default=[64, 256])
    parser.add_argument("--latency", type=float, default=2.0,
                        help="median seconds per request (2: a 7B answering ~200 tokens on a loaded vLLM server)")
    parser.add_argument("--sigma", type=float, default=0.3, help="log-normal spread of the latency")
    parser.add_argument("--tps", type=float, default=200.0, help="generation tokens/s per request")
    parser.add_argument("--rate-429", type=float, default=0.01)
    parser.add_argument("--tokens-per-item", type=int, default=1500, help="budget per item")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here too")
    parser.add_argument("--fleet-only", action="store_true",
                        help="only the fleet runs (no plan-100k, ledger, store or cached re-run phases): "
                             "for peak RSS, which the other phases would add to")
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="N",
                        help="trace allocations during the fleet runs and report the N largest sites near the "
                             "traced peak (slows the run ~2x and adds its own memory to peak RSS)")
    parser.add_argument("--tracemalloc-frames", type=int, default=30,
                        help="traceback depth kept per allocation (to find our frame under library code)")
    args = parser.parse_args(argv)
    items = args.items or (1000 if args.quick else 100_000)
    latency = args.latency
    os.environ[KEY_ENV] = "sk-bench"
    load = os.getloadavg()[0]
    print(f"# {os.cpu_count()} cores, load average {load:.1f} at start; items {items}, servers {args.servers}, "
          f"latency {latency}s (sigma {args.sigma}), {args.tps} tok/s, 429 rate {args.rate_429}", flush=True)

    report: dict[str, Any] = {"command": " ".join(["python", "evals/bench_fleet.py", *(argv or sys.argv[1:])]),
                              "commit": _commit(), "load_average_start": round(load, 2)}
    if args.fleet_only:
        dataset = synthetic_dataset(items)
        report["dataset_rss_gb"] = round(peak_rss_gb(), 2)  # the caller's items, before any run
        runs = fleet_runs(args, dataset, latency, items, report)
        report["fleet"] = runs
        report["load_average_end"] = round(os.getloadavg()[0], 2)
        headline = {"peak_rss_gb": round(peak_rss_gb(), 2), "items": items,
                    "calls": [r["calls"] for r in runs], "spent": [r["spent"] for r in runs],
                    "statuses": [r["statuses"] for r in runs]}
        return _finish(report, headline, args.out)
    # in a child process: its peak memory is its own, not added to the fleet runs' figure
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as child:
        report["plan"] = child.submit(bench_plan, args.plan_items).result()
    print("plan", json.dumps(report["plan"]), flush=True)
    report["ledger"] = bench_ledger(20_000 if not args.quick else 8_000)
    print("ledger", json.dumps(report["ledger"]), flush=True)
    dataset = synthetic_dataset(items)
    report["store"] = bench_store(dataset)
    print("store", json.dumps(report["store"]), flush=True)

    def served(concurrency: int) -> contextlib.AbstractContextManager[list[str]]:
        return fleet(args.servers, latency, args.sigma, args.tps, args.rate_429,
                     slots=max(1, concurrency // args.servers))

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        runs = []
        for concurrency in args.concurrency:
            with served(concurrency) as urls:
                row = run_once(dataset, urls, concurrency, tmp, f"c{concurrency}", use_cache=False,
                               budget=args.tokens_per_item * items)
            runs.append(row)
            print("fleet", json.dumps(row), flush=True)
        # re-runs are free: the first run fills the cache, the identical second one reads it
        with served(max(args.concurrency)) as urls:
            first = run_once(dataset, urls, max(args.concurrency), tmp, "cached-first", use_cache=True,
                             budget=args.tokens_per_item * items)
            again = run_once(dataset, urls, max(args.concurrency), tmp, "cached-again", use_cache=True,
                             budget=args.tokens_per_item * items)
        report["rerun"] = {"first_spent": first["spent"], "rerun_spent": again["spent"],
                           "first_wall_s": first["wall_s"], "rerun_wall_s": again["wall_s"],
                           "rerun_calls": again["calls"],
                           "rerun_wall_ratio": round(again["wall_s"] / first["wall_s"], 3)}
        print("rerun", json.dumps(report["rerun"]), flush=True)
    report["fleet"] = runs
    headline = {
        "fleet_efficiency": min(r["fleet_efficiency"] for r in runs),
        "fleet_efficiency_by_concurrency": {str(r["concurrency"]): r["fleet_efficiency"] for r in runs},
        "peak_rss_gb": round(peak_rss_gb(), 2),
        "ledger_ops_per_s": report["ledger"]["ledger_ops_per_s"],
        "plan_100k_cpu_s": report["plan"]["plan_cpu_s"],
        "store_diagnostics_per_s": report["store"]["diagnostics_per_s"],
        "rerun_spent": report["rerun"]["rerun_spent"], "rerun_wall_ratio": report["rerun"]["rerun_wall_ratio"],
        "items": items,
    }
    return _finish(report, headline, args.out)


def fleet_runs(args: argparse.Namespace, dataset: Dataset, latency: float, items: int,
               report: dict[str, Any]) -> list[dict[str, Any]]:
    """The fleet runs alone (`--fleet-only`), under tracemalloc when asked (its top sites go in `report`)."""
    runs = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for concurrency in args.concurrency:
            with fleet(args.servers, latency, args.sigma, args.tps, args.rate_429,
                       slots=max(1, concurrency // args.servers)) as urls:
                row = fleet_row(dataset, urls, concurrency, tmp, items, args)
            runs.append(row)
            print("fleet", json.dumps(row), flush=True)
    return runs


def fleet_row(dataset: Dataset, urls: list[str], concurrency: int, tmp: Path, items: int,
              args: argparse.Namespace) -> dict[str, Any]:
    """One --fleet-only run, with tracemalloc's top sites when asked."""
    sampler = PeakSnapshots(args.tracemalloc_frames) if args.tracemalloc else contextlib.nullcontext()
    with sampler:
        row = run_once(dataset, urls, concurrency, tmp, f"c{concurrency}", use_cache=False,
                       budget=args.tokens_per_item * items)
    if isinstance(sampler, PeakSnapshots):
        row["tracemalloc"] = sampler.top(args.tracemalloc)
    return row


def _commit() -> str:
    """The worktree's commit (with `+dirty` when it has changes), so a figure names the code it measured."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def _finish(report: dict[str, Any], headline: dict[str, Any], out: Path | None) -> int:
    report["headline"] = headline
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(headline), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
