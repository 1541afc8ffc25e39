"""Sandbox overhead: warm p50 (goal <= 10 ms), cold p50, and the E2B client over a loopback fake.

Overhead = wall time of ``execute("pass")``-like trivial snippets, host side, end to end.
Usage: ``python evals/bench_sandbox.py [--warm N] [--cold N] [--e2b N] [--preload-pot]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

from refinelab.tools.sandbox_base import ExecResult, SandboxLimits  # noqa: E402
from refinelab.tools.sandbox_local import LocalSandbox  # noqa: E402

GOAL_WARM_P50_MS = 10.0
SNIPPET = "print(1)"


def _measure(run: Callable[[str], ExecResult], n: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        assert run(SNIPPET).stdout == "1\n"
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        res = run(SNIPPET)
        times.append((time.perf_counter() - t0) * 1000)
        assert res.ok, res
    times.sort()
    return {
        "n": n,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(times[min(len(times) - 1, int(0.95 * len(times)))], 2),
        "mean_ms": round(statistics.fmean(times), 2),
        "min_ms": round(times[0], 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--warm", type=int, default=200, help="warm runs")
    ap.add_argument("--cold", type=int, default=20, help="cold runs")
    ap.add_argument("--e2b", type=int, default=100, help="E2B-over-loopback runs (0 to skip)")
    ap.add_argument("--preload-pot", action="store_true", help="zygote preloads sympy + numpy")
    args = ap.parse_args()
    limits = SandboxLimits(timeout_s=10)
    report: dict[str, object] = {}

    preload = ("math", "fractions", "sympy", "numpy") if args.preload_pot else ("math", "fractions")
    with LocalSandbox(limits, mode="warm", preload=preload) as warm:
        t0 = time.perf_counter()
        warm.execute("pass")
        report["warm_start_ms"] = round((time.perf_counter() - t0) * 1000, 1)
        report["warm"] = _measure(warm.execute, args.warm)
    with LocalSandbox(limits, mode="cold") as cold:
        report["cold"] = _measure(cold.execute, args.cold, warmup=1)
    if args.e2b:
        from refinelab.tools.sandbox_e2b import E2BSandbox
        from tests.support.e2b_fake_server import FakeE2BServer

        with FakeE2BServer() as server:
            e2b = E2BSandbox(limits, api_key="bench", api_url=server.url, sandbox_url=server.url, fresh_context=False)
            try:
                report["e2b_loopback"] = _measure(e2b.execute, args.e2b)
            finally:
                e2b.close()
    warm_p50 = report["warm"]["p50_ms"]  # type: ignore[index]
    print(json.dumps(report, indent=2))
    print(f"warm sandbox overhead p50: {warm_p50:.2f} ms (goal <= {GOAL_WARM_P50_MS:.0f} ms: "
          f"{'met' if warm_p50 <= GOAL_WARM_P50_MS else 'MISSED'})")  # fmt: skip
    print(f"cold sandbox overhead p50: {report['cold']['p50_ms']:.2f} ms")  # type: ignore[index]
    if "e2b_loopback" in report:
        print(f"e2b client -> loopback fake -> warm sandbox p50: {report['e2b_loopback']['p50_ms']:.2f} ms")  # type: ignore[index]


if __name__ == "__main__":
    main()
