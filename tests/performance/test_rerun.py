"""Re-runs are free: an identical run with the response cache sends no request and spends 0 tokens.

The first run's profile spends tokens before the plan; the re-run replays those answers for free. If
replayed answers did not use the re-run's budget, it would plan with more tokens than the first run
had, buy a different plan and pay for its new prompts (seen in the fleet bench: 42% of the first run's
spend). Through loopback fake servers answering as the scripted model, so every stage runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from refinelab.api import refine
from refinelab.config import load_settings
from refinelab.operations import Op
from tests.support.fake_openai import FakeServer, ServerProfile, scripted
from tests.support.synthetic import synthetic_dataset

KEY_ENV = "RERUN_TEST_KEY"


def test_an_identical_rerun_sends_nothing_and_spends_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-rerun-test")
    dataset = synthetic_dataset(30)
    operations = [op.value for op in (Op.REMOVE, Op.FIX, Op.REWRITE_DISTRACTORS, Op.CALIBRATE)]
    with FakeServer(responder=scripted, profile=ServerProfile(seed=1)) as server:
        spec = {"endpoint": server.url, "model": "fake", "api_key_env": KEY_ENV, "concurrency": 4}
        settings = load_settings(overrides={
            "runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "cache.sqlite"), "use_cache": True,
            "roles": {r: dict(spec) for r in ("judge", "writer", "validator")}})
        options = {"validators": [], "dedup": "lexical", "pilot_per_op": 2, "operations": operations, "rounds": 1,
                   "max_attempts": 2}

        # a budget large enough that every item gets its one edit (the plan is bounded by the items, not the
        # tokens): at the budget's edge, which concurrent reservation is refused depends on timing (a live
        # call holds its bound until it settles, a replay settles at once), so a re-run could finish an
        # attempt the first run could not start. Measured: at 1,500-5,000 tokens per item runs at the edge
        # sent 1-9 extra requests on re-run; at 10,000 (~197k spent) none in 3 of 3. That replays are
        # charged to the re-run's budget is checked on the plan's own budget below.
        budget = 10000 * len(dataset)
        first = refine(dataset, budget=budget, settings=settings, run_id="first", options=options)
        answered = server.counters.answered
        again = refine(dataset, budget=budget, settings=settings, run_id="again", options=options)

        assert first.spent > 0 and answered > 0
        refine_calls = first.report["ledger"]["by_node"].get("refine", {}).get("calls", 0)
        assert refine_calls > 0  # the first run planned and paid for edits after its profile
        assert server.counters.answered == answered  # the re-run sent nothing
        assert again.spent == 0 and 0 < again.report["ledger"]["replayed"] <= first.spent
        assert again.report.get("items_by_status") == first.report.get("items_by_status")
        # the first plan of each run saw the same budget left after profiling: the re-run's replayed profile
        # was charged like the first run's paid one (were it free, the re-run would plan with more)
        assert [p["budget"] for p in again.report["plans"]] == [p["budget"] for p in first.report["plans"]]
        # and what was replayed is told by node, as the first run's spend is: the summary's profiling share
        replayed_by_node = again.report["ledger"]["replayed_by_node"]
        assert sum(replayed_by_node.values()) == again.report["ledger"]["replayed"]
        assert replayed_by_node["profile"] == first.report["ledger"]["by_node"]["profile"]["tokens"] > 0
