"""A scripted run in its own process that can SIGKILL itself at a chosen point (for crash tests).

`python crash_runner.py refine|resume RUNS_DIR RUN_ID CACHE ITEMS BUDGET [KILL]` where KILL is
`SPAN:SKIP:enter|exit`: the process kills itself (SIGKILL, no cleanup) when it enters or leaves the
(SKIP+1)-th traced run named SPAN (LangGraph's node runs: profile, plan, refine, validate, finalize; our
spans: replan, pilot, an edit id; `llm` for any model call). It prints the span it died in to stderr
first. The hook is the trace.jsonl tracer, which sees every run of the tree as it starts and ends.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from refinelab.agents.options import RunHooks
from refinelab.tools.trace_jsonl import JsonlTracer
from tests.support.rl_helpers import distinct_models, mmlu
from tests.support.scripted import EXTRAS


def arm(kill: str) -> None:
    """Patch the tracer so the process dies at the chosen span boundary."""
    span, skip, phase = kill.split(":")
    seen = {"n": 0}
    lock = threading.Lock()
    original_start, original_end = JsonlTracer._on_run_create, JsonlTracer._on_run_update

    def matches(name: str, run_type: str) -> bool:
        return run_type in ("llm", "chat_model") if span == "llm" else name == span or name.startswith(span + ":")

    def hit(name: str) -> None:
        with lock:
            seen["n"] += 1
            if seen["n"] > int(skip):
                sys.stderr.write(f"KILLED at {phase} {name}\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)

    def start(self, run):  # type: ignore[no-untyped-def]
        if phase == "enter" and matches(run.name, run.run_type):
            hit(run.name)
        original_start(self, run)

    def end(self, run):  # type: ignore[no-untyped-def]
        original_end(self, run)
        if phase == "exit" and matches(run.name, run.run_type):
            hit(run.name)

    JsonlTracer._on_run_create, JsonlTracer._on_run_update = start, end  # type: ignore[method-assign]


def main() -> None:
    from refinelab.api import refine, resume
    from refinelab.config import load_settings

    command, runs_dir, run_id, cache, items, budget = sys.argv[1:7]
    if len(sys.argv) > 7 and sys.argv[7]:
        arm(sys.argv[7])
    if command == "refine":
        settings = load_settings(overrides={"runs_dir": runs_dir, "cache_path": cache})
        refine(mmlu(int(items)), budget=int(budget), settings=settings, run_id=run_id, hooks=RunHooks(chat_models=distinct_models()),
               options={**EXTRAS, "rounds": 2, "max_attempts": 2})
    else:
        resume(run_id, runs_dir=runs_dir, hooks=RunHooks(chat_models=distinct_models()))
    print("finished", flush=True)


if __name__ == "__main__":
    main()
