"""Dead and flaky model endpoints, end to end through the CLI.

Three runs of `refinelab refine` as separate processes on MMLU dev items, default retry settings:

A. dead endpoint: every model call is refused on 127.0.0.1 (nothing listens on the port). Expected:
   exit 3, 0 tokens charged, every item kept, no report.json. Then the endpoint comes back -- the real
   embedded SmolLM2-135M llama.cpp server started on that same port -- and `refinelab resume` finishes.
B. 50% failures: every request goes through tests/support/fault_proxy.py injecting 429/500/timeout/truncated/
   malformed/wrong-schema answers in equal shares, 50% in all, in front of a scripted upstream.
   Then `refinelab resume` (a no-op when B finished; the continuation when it stopped).

For each: calls attempted (ledger rows; HTTP requests seen), tokens charged, items by status, exit
code, wall time. Usage: `python evals/bench_dead_endpoint.py [--items 8] [--out evals/results/NAME]`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # the repository root: the fault proxy lives in tests/support
from refinelab.operations import Op  # noqa: E402
from refinelab.run_layout import LEDGER, REPORT_JSON, STORE  # noqa: E402
from tests.support.fault_proxy import FaultPlan, FaultProxy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("REFINELAB_DATA", REPO.parent / "shared" / "data")) / "mmlu" / "dev"
BIN = Path(sys.executable).parent
KEY_ENV = "BENCH_API_KEY"
OPERATIONS = ",".join(op.value for op in (Op.REMOVE, Op.CALIBRATE, Op.FIX, Op.REWRITE_DISTRACTORS))


# ------------------------------------------------------------------------------ scripted upstream

def _h(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)


def respond(messages: list[dict[str, str]]) -> str:
    """A minimal scripted model: labels, answers with the key marked in the stem, writes items."""
    text = messages[-1]["content"]
    if "Classify the question" in text:
        return json.dumps({"skill": ["recall", "reasoning", "application"][_h(text) % 3],
                           "difficulty": 1 + _h(text) % 5})
    if "give the letter" in text:
        match = re.search(r"\(key ([A-J])\)", text)
        return json.dumps({"reasoning": "scripted", "answer": match.group(1) if match else "A"})
    words = [f"w{_h(f'{text}-{i}') % 100000}" for i in range(14)]
    return json.dumps({"question": f"{' '.join(words[:8])} (key A)?",
                       "choices": [words[8], f"{words[9]} {words[10]}", words[11], f"{words[12]} {words[13]}"],
                       "answer_index": 0, "rationale": "scripted"})


# ------------------------------------------------------------------------------------- plumbing

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def setup(tmp: Path, url: str, model: str, timeout_s: float) -> tuple[Path, Path, dict[str, str]]:
    spec = {"endpoint": url, "model": model, "api_key_env": KEY_ENV, "timeout_s": timeout_s}
    config = {"roles": {"judge": dict(spec), "writer": dict(spec), "validator": dict(spec)},
              "runs_dir": str(tmp / "runs"), "use_cache": False}
    path = tmp / f"config-{model}.yaml"
    path.write_text(yaml.safe_dump(config))
    prompts = tmp / "prompts"
    (prompts / "packs").mkdir(parents=True, exist_ok=True)
    for pack in ("general", "science", "math", "law"):  # answer-check validation: no corpus or sandbox
        (prompts / "packs" / f"{pack}.yaml").write_text("include: default\nvalidator: answer\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFINELAB_")}
    env.update({KEY_ENV: "sk-bench", "XDG_CACHE_HOME": str(tmp / "cache"), "NO_COLOR": "1",
                "REFINELAB_MODEL_CACHE": str(tmp / "models")})
    return path, prompts, env


def run_cli(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run([str(BIN / "refinelab"), *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=3600)
    error = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    return {"command": "refinelab " + " ".join(args), "exit_code": proc.returncode,
            "wall_s": round(time.monotonic() - started, 1), "error": error[0][:400] if error else "",
            "stdout_tail": proc.stdout.strip().splitlines()[-4:]}


def figures(run_dir: Path) -> dict[str, Any]:
    with contextlib.closing(sqlite3.connect(run_dir / LEDGER)) as db:
        calls, failed, spent = db.execute(
            "SELECT COUNT(*), SUM(status='failed'), COALESCE(SUM(CASE WHEN status IN ('settled','failed') THEN "
            "prompt_tokens + completion_tokens WHEN status='abandoned' THEN reserved ELSE 0 END), 0) FROM calls"
        ).fetchone()
        unsent = db.execute("SELECT value FROM meta WHERE key='unsent_calls'").fetchone()
    with contextlib.closing(sqlite3.connect(run_dir / STORE)) as db:
        rows = db.execute("SELECT status, COUNT(*) FROM items WHERE original IS NOT NULL GROUP BY status").fetchall()
        new = db.execute("SELECT COUNT(*) FROM items WHERE status='new'").fetchone()[0]
    report = run_dir / REPORT_JSON
    stop = json.loads(report.read_text())["stop_reason"] if report.exists() else "(no report.json: not finished)"
    return {"calls_attempted": int(calls), "calls_failed": int(failed or 0),
            "calls_never_reached_server": int(unsent[0]) if unsent else 0, "tokens_charged": int(spent),
            "input_items_by_status": dict(rows), "new_items": int(new), "stop_reason": stop}


@contextlib.contextmanager
def smollm2_on(port: int, env: dict[str, str]) -> Any:
    """The real embedded SmolLM2-135M llama.cpp server listening on `port` (the endpoint coming back)."""
    from refinelab.tools.model_weights import model_path

    gguf = model_path("smollm2-135m")
    proc = subprocess.Popen([sys.executable, "-m", "refinelab.tools.serve_llm", "--model", str(gguf), "--alias",
                             "smollm2-135m", "--port", str(port), "--parallel", "2", "--threads", "2"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        address = proc.stdout.readline().strip()
        assert address.startswith("http"), "SmolLM2 server did not start"
        yield address
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=8, help="items for the dead-endpoint run (A)")
    parser.add_argument("--flaky-items", type=int, default=24, help="items for the 50%%-failure run (B)")
    parser.add_argument("--budget", type=int, default=30_000)
    parser.add_argument("--fault-rate", type=float, default=0.5)
    parser.add_argument("--parts", default="A,B", help="which runs: A (dead endpoint), B (fault proxy)")
    parser.add_argument("--out", default=None, help="write NAME.json and NAME.txt")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-dead-"))
    data = ["--limit", str(args.items)]
    results: dict[str, Any] = {"command": "python " + " ".join(sys.argv), "items_A": args.items,
                               "items_B": args.flaky_items, "budget": args.budget, "data": str(DATA)}

    # A. dead endpoint, then the real SmolLM2 server comes back on the same port
    port = free_port()
    config, prompts, env = setup(tmp, f"http://127.0.0.1:{port}/v1", "smollm2-135m", 120)
    common = ["--budget", str(args.budget), "--config", str(config), "--prompts", str(prompts),
              "--operations", OPERATIONS, "--rounds", "1", "--quiet", *data]
    if "A" in args.parts:
        dead = run_cli(["refine", str(DATA), "--run-id", "dead", *common], env, tmp)
        results["A_dead_endpoint"] = {**dead, **figures(tmp / "runs" / "dead")}
        with smollm2_on(port, env):
            back = run_cli(["resume", "dead", "--runs-dir", str(tmp / "runs"), "--quiet"], env, tmp)
        results["A_resume_endpoint_back_smollm2"] = {**back, **figures(tmp / "runs" / "dead")}
    if "B" not in args.parts:
        return finish(results, args.out)

    # B. 50% of requests fail (six kinds) through the fault proxy in front of a scripted upstream
    port = free_port()
    config, prompts, env = setup(tmp, f"http://127.0.0.1:{port}/v1", "scripted", 1.0)
    common[common.index("--config") + 1] = str(config)
    common[common.index("--limit") + 1] = str(args.flaky_items)
    plan = FaultPlan.uniform(args.fault_rate, seed=13, timeout_sleep_s=1.5)
    with FaultProxy(respond, plan, port=port) as proxy:
        flaky = run_cli(["refine", str(DATA), "--run-id", "flaky", *common], env, tmp)
        requests, injected = proxy.counts["requests"], proxy.injected
        billed = proxy.billed_tokens
    results["B_fifty_percent_faults"] = {**flaky, **figures(tmp / "runs" / "flaky"), "http_requests": requests,
                                         "faults_injected": injected, "fault_share": round(
                                             sum(injected.values()) / max(1, requests), 3),
                                         "provider_billed_tokens": billed}
    with FaultProxy(respond, FaultPlan(), port=port) as proxy:
        again = run_cli(["resume", "flaky", "--runs-dir", str(tmp / "runs"), "--quiet"], env, tmp)
        again["http_requests"] = proxy.counts["requests"]
    results["B_resume_endpoint_healthy"] = {**again, **figures(tmp / "runs" / "flaky")}
    return finish(results, args.out)


def finish(results: dict[str, Any], out: str | None) -> None:
    text = json.dumps(results, indent=1)
    summary = summarise(results)
    print(text)
    print(summary)
    if out:
        Path(f"{out}.json").write_text(text + "\n")
        Path(f"{out}.txt").write_text(summary + "\n")


def summarise(results: dict[str, Any]) -> str:
    lines = [f"$ {results['command']}", "",
             f"{'run':34} {'exit':>4} {'calls':>5} {'unsent':>6} {'failed':>6} {'tokens':>7}  input items by status"]
    for key, value in results.items():
        if not isinstance(value, dict):
            continue
        lines.append(f"{key:34} {value['exit_code']:>4} {value['calls_attempted']:>5} "
                     f"{value['calls_never_reached_server']:>6} {value['calls_failed']:>6} "
                     f"{value['tokens_charged']:>7}  {value['input_items_by_status']}  ({value['stop_reason']}; "
                     f"{value['wall_s']} s)")
    flaky = results.get("B_fifty_percent_faults", {})
    if flaky:
        lines.append(f"B: {flaky['http_requests']} HTTP requests, {flaky['fault_share']:.0%} faults injected "
                     f"{flaky['faults_injected']}; provider billed {flaky['provider_billed_tokens']} tokens, "
                     f"ledger charged {flaky['tokens_charged']} (timeouts and cut-off answers keep their "
                     f"reservation: they may have been billed)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
