"""The embedded llama.cpp server beside one busy process: libgomp's default spin against a bounded one.

llama.cpp runs one thread per core, and its threads meet at an OpenMP barrier after every operation. By
default libgomp spins ~300,000 times at a barrier before it sleeps. If another process wants a core, a
llama.cpp thread is displaced, and the thread waiting for it spins away its time slice, at every barrier.
`tools/embedded_server.server_environment` starts the server with GOMP_SPINCOUNT=1000. This bench shows
what that buys.

Each case starts a fresh server: the model, its threads (default: every core) and the spin count. It
sends the same 12 chat requests, two at a time, with at most 60 tokens each and temperature 0. It runs
either alone or beside one busy process (`while True: pass`, standing in for the test worker or the
run's embedding work beside it). The wall time of the 12 replies is reported; a case that does not
finish within `--limit` seconds is reported as such and stopped.

  .venv/bin/python evals/bench_server_contention.py --tag bench_server_contention
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import httpx
from common import log, table, write_results

from refinelab.tools.embedded_server import start_server

LIBGOMP_DEFAULT = "300000"  # libgomp's spin count when neither variable is set (its documentation)
REQUESTS = 12


def one_case(model: str, spin: str, busy: int, threads: int | None, limit_s: float) -> dict[str, Any]:
    previous = os.environ.get("GOMP_SPINCOUNT")
    os.environ["GOMP_SPINCOUNT"] = spin  # server_environment keeps a value that is set
    hogs: list[subprocess.Popen[bytes]] = []
    handle = start_server(model, threads=threads, parallel=2, register=False, stop_at_exit=False)
    try:
        hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]

        def ask(i: int) -> int:
            body = {"model": model, "max_tokens": 60, "temperature": 0,
                    "messages": [{"role": "user", "content": f"Write three sentences about the number {i}."}]}
            reply = httpx.post(f"{handle.base_url}/chat/completions", json=body, timeout=limit_s + 30)
            return int(reply.json()["usage"]["completion_tokens"])

        started = time.monotonic()
        pool = ThreadPoolExecutor(2)
        futures = [pool.submit(ask, i) for i in range(REQUESTS)]
        done, pending = wait(futures, timeout=limit_s)
        elapsed = time.monotonic() - started
        finished = not pending
        tokens = sum(f.result() for f in done if f.exception() is None)
    finally:
        for hog in hogs:
            hog.kill()
        handle.stop()  # a pending request fails once its server is gone, and the pool drains
        if previous is None:
            os.environ.pop("GOMP_SPINCOUNT", None)
        else:
            os.environ["GOMP_SPINCOUNT"] = previous
    pool.shutdown(wait=True, cancel_futures=True)
    row = {"model": model, "spin": spin, "threads": threads or os.cpu_count(), "busy_processes": busy,
           "finished": finished, "seconds": round(elapsed, 1), "replies_done": len(done),
           "completion_tokens": tokens}
    log(json.dumps(row))
    return row


def markdown(rows: list[dict[str, Any]], limit_s: float) -> str:
    lines = ["# The embedded server beside a busy process", "",
             f"{REQUESTS} chat replies (≤ 60 tokens, two at a time) on a fresh server per case; "
             f"a case stopped after {limit_s:.0f} s reads '> {limit_s:.0f} s'.", ""]
    body = [[r["model"], r["threads"], r["spin"], r["busy_processes"],
             f"{r['seconds']:.1f} s" if r["finished"] else f"> {limit_s:.0f} s ({r['replies_done']} of {REQUESTS} done)",
             r["completion_tokens"]] for r in rows]
    lines.append(table(["model", "threads", "GOMP_SPINCOUNT", "busy processes", "12 replies", "tokens"], body))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="smollm2-135m,qwen2.5-coder-1.5b")
    parser.add_argument("--limit", type=float, default=150.0, help="seconds before a case is stopped")
    parser.add_argument("--one-thread", action="store_true", help="also run every case with one server thread")
    parser.add_argument("--tag", default="bench_server_contention")
    args = parser.parse_args()
    rows = []
    for model in args.models.split(","):
        for threads in ([None, 1] if args.one_thread else [None]):
            for spin in ([LIBGOMP_DEFAULT, "1000"] if threads is None else ["1000"]):
                for busy in (0, 1):
                    rows.append(one_case(model, spin, busy, threads, args.limit))
    result = {"requests": REQUESTS, "limit_s": args.limit, "cpu_count": os.cpu_count(), "rows": rows}
    write_results(args.tag, result, markdown(rows, args.limit))
    print(markdown(rows, args.limit))


if __name__ == "__main__":
    main()
