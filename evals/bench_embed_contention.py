"""The run's own torch work (MiniLM embeddings) beside other work: libgomp's default spin against a bounded one.

torch's CPU kernels run on libgomp too, so the run process has the problem the embedded server had
(bench_server_contention.py): a thread waiting at an OpenMP barrier spins ~300,000 times before it sleeps,
burning a core another process wants. This bench asks whether the `refinelab` command should start with
GOMP_SPINCOUNT=1000 for its own torch threads too. Two measurements, each case in a fresh process:

- **embeddings beside a busy process**: 600 sentences embedded three times with the packaged MiniLM,
  alone or beside one `while True: pass` process, with torch's spin at libgomp's default or 1,000;
- **the server beside embeddings**: 12 chat replies of the embedded 1.5B (the server at its shipped spin)
  while another process embeds without pause, that process's torch at the default spin or 1,000 —
  what a run's embedding work costs its own model calls.

  .venv/bin/python evals/bench_embed_contention.py --tag bench_embed_contention
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from common import log, table, write_results

from refinelab.tools.embedded_server import start_server

LIBGOMP_DEFAULT = "300000"
BOUNDED = "1000"
SENTENCES = 600
REPEATS = 3
REQUESTS = 12

EMBED = f"""
import sys, time
from refinelab.tools.embeddings import load_model
model = load_model()
texts = [f"Question {{i}}: which option names the {{i % 17}}th element of the set?" for i in range({SENTENCES})]
model.encode(texts[:32])
forever = sys.argv[1] == "forever"
print("ready", flush=True)
while True:
    started = time.monotonic()
    for _ in range({REPEATS}):
        model.encode(texts, batch_size=64)
    if not forever:
        print(round(time.monotonic() - started, 2), flush=True)
        break
"""


def _env(spin: str) -> dict[str, str]:
    env = dict(os.environ)
    env["GOMP_SPINCOUNT"] = spin
    return env


def embed_case(spin: str, busy: int) -> dict[str, Any]:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        out = subprocess.run([sys.executable, "-c", EMBED, "once"], env=_env(spin), capture_output=True, text=True,
                             check=True, timeout=600).stdout.split()
    finally:
        for hog in hogs:
            hog.kill()
    row = {"case": "embed", "spin": spin, "busy_processes": busy, "seconds": float(out[-1])}
    log(json.dumps(row))
    return row


def server_case(model: str, spin: str | None) -> dict[str, Any]:
    """12 replies of the shipped server; beside an embedding loop at `spin` (None: alone)."""
    handle = start_server(model, parallel=2, register=False, stop_at_exit=False)
    loop = None
    try:
        if spin is not None:
            loop = subprocess.Popen([sys.executable, "-c", EMBED, "forever"], env=_env(spin), stdout=subprocess.PIPE,
                                    text=True)
            assert loop.stdout is not None and loop.stdout.readline().strip() == "ready"

        def ask(i: int) -> int:
            body = {"model": model, "max_tokens": 60, "temperature": 0,
                    "messages": [{"role": "user", "content": f"Write three sentences about the number {i}."}]}
            return int(httpx.post(f"{handle.base_url}/chat/completions", json=body, timeout=600)
                       .json()["usage"]["completion_tokens"])

        started = time.monotonic()
        with ThreadPoolExecutor(2) as pool:
            tokens = sum(pool.map(ask, range(REQUESTS)))
        elapsed = time.monotonic() - started
    finally:
        if loop is not None:
            loop.kill()
        handle.stop()
    row = {"case": "server", "model": model, "embedding_spin": spin or "—", "seconds": round(elapsed, 1),
           "completion_tokens": tokens}
    log(json.dumps(row))
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    embeds = [r for r in rows if r["case"] == "embed"]
    servers = [r for r in rows if r["case"] == "server"]
    return "\n".join([
        "# The run's torch work beside other work", "",
        f"Embeddings: {SENTENCES} sentences x {REPEATS} with the packaged MiniLM, in a fresh process per case.", "",
        table(["torch GOMP_SPINCOUNT", "busy processes", "seconds"],
              [[r["spin"], r["busy_processes"], f"{r['seconds']:.2f}"] for r in embeds]), "",
        f"The embedded server (its shipped spin) answering {REQUESTS} chat replies, two at a time, alone or while "
        "another process embeds without pause:", "",
        table(["model", "embedding process's GOMP_SPINCOUNT", "seconds", "tokens"],
              [[r["model"], r["embedding_spin"], f"{r['seconds']:.1f}", r["completion_tokens"]] for r in servers]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--tag", default="bench_embed_contention")
    args = parser.parse_args()
    rows = [embed_case(spin, busy) for busy in (0, 1) for spin in (LIBGOMP_DEFAULT, BOUNDED)]
    rows += [server_case(args.model, spin) for spin in (None, LIBGOMP_DEFAULT, BOUNDED)]
    result = {"sentences": SENTENCES, "repeats": REPEATS, "requests": REQUESTS, "cpu_count": os.cpu_count(),
              "rows": rows}
    write_results(args.tag, result, markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
