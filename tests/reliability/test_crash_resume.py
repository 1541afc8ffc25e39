"""SIGKILL a real run at many points across its nodes, resume each time (the resumes get killed too),
and check the result equals an uninterrupted run's: same items, same statuses, same edit outcomes."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.rl_helpers import accounting, mmlu, spend_within

ITEMS, BUDGET = 12, 200_000  # a budget the plan never binds on, so abandoned reservations change nothing

# Kill points in timeline order: (span, largest skip, phases). Each is reached by the process that
# resumes after the previous kill, because a resume restarts from the last checkpoint before it.
TIMELINE: list[tuple[str, int, tuple[str, ...]]] = [
    ("profile", 0, ("enter",)),
    ("llm", 6, ("enter", "exit")),  # inside profile: some labels stored, the rest not
    ("profile", 0, ("exit",)),  # profiled, checkpoint not written yet
    ("plan", 0, ("enter", "exit")),
    ("refine", 3, ("enter", "exit")),
    ("validate", 3, ("enter", "exit")),
    ("llm", 2, ("enter",)),  # refine or validate model calls
    ("replan", 0, ("enter", "exit")),  # collect of round 1
    ("plan", 0, ("exit",)),  # round 2's plan
    ("refine", 2, ("exit",)),
    ("validate", 2, ("enter", "exit")),
    ("replan", 0, ("exit",)),
    ("finalize", 0, ("enter",)),
    ("finalize", 0, ("exit",)),  # outputs written, checkpoint not
]

REPO = Path(__file__).resolve().parents[2]  # the runner is run as `-m tests.reliability.crash_runner`


def _run(command: str, runs: Path, cache: Path, kill: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tests.reliability.crash_runner", command, str(runs), "r", str(cache),
                           str(ITEMS), str(BUDGET), kill], capture_output=True, text=True, timeout=300, check=False,
                          cwd=REPO)


def _outcome(run_dir: Path) -> dict[str, Any]:
    """What must not depend on crashes: output items (any order), statuses, edit outcomes."""
    refined = sorted((json.loads(line) for line in (run_dir / "refined.jsonl").read_text().splitlines()),
                     key=lambda i: i["id"])
    with sqlite3.connect(run_dir / "store.sqlite") as conn:
        statuses = dict(conn.execute("SELECT id, status FROM items").fetchall())
        outcomes = {e: (s, n) for e, s, n in conn.execute("SELECT edit_id, status, attempts FROM outcomes")}
    report = json.loads((run_dir / "report.json").read_text())
    return {"refined": refined, "statuses": statuses, "outcomes": outcomes,
            "items_by_status": report["items_by_status"], "rounds": report["rounds"]}


def _plan_kills(rng: random.Random, count: int) -> list[str]:
    """`count` random kill points spread over the timeline, in timeline order."""
    picks = sorted(rng.sample(range(len(TIMELINE)), min(count, len(TIMELINE))))
    kills = []
    for index in picks:
        span, max_skip, phases = TIMELINE[index]
        kills.append(f"{span}:{rng.randint(0, max_skip)}:{rng.choice(phases)}")
    return kills


def crash_and_compare(tmp: Path, kills_wanted: int, seed: int) -> dict[str, Any]:
    """Reference run, then crash runs (each killed along a fresh random plan and resumed until it
    finishes) until `kills_wanted` kills have happened; every crash run must equal the reference."""
    reference = _run("refine", tmp / "ref", tmp / "ref-cache.sqlite")
    assert reference.returncode == 0, reference.stderr[-3000:]
    expected = _outcome(tmp / "ref" / "r")
    rng = random.Random(seed)
    kills: list[str] = []
    attempt = 0
    while len(kills) < kills_wanted:
        attempt += 1
        assert attempt <= 3, f"could not place {kills_wanted} kills: {kills}"
        runs, cache = tmp / f"crash{attempt}", tmp / f"crash{attempt}-cache.sqlite"
        command = "refine"
        for kill in _plan_kills(rng, kills_wanted - len(kills)) + [""]:
            proc = _run(command, runs, cache, kill)
            if proc.returncode == -9:
                where = next((line for line in proc.stderr.splitlines() if line.startswith("KILLED")), kill)
                kills.append(f"{kill} ({where})")
                command = "resume" if (runs / "r" / "settings.json").exists() else "refine"
                continue
            assert proc.returncode == 0, f"{command} after kills {kills}: {proc.stderr[-3000:]}"
            break  # finished (a kill point past the end of the run is simply not reached)
        run_dir = runs / "r"
        got = _outcome(run_dir)
        for key in expected:
            assert got[key] == expected[key], f"{key} differs after kills {kills} (seed {seed})"
        accounting(run_dir, mmlu(ITEMS))
        spend_within(run_dir, BUDGET)
    return {"kills": kills, "crash_runs": attempt}


def test_three_kills_then_same_result(tmp_path: Path) -> None:
    result = crash_and_compare(tmp_path, 3, seed=11)
    assert len(result["kills"]) >= 3


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_twelve_kills_across_nodes_then_same_result(tmp_path: Path, seed: int) -> None:
    result = crash_and_compare(tmp_path, 12, seed=seed)
    assert len(result["kills"]) >= 12
    print(json.dumps(result, indent=1))
