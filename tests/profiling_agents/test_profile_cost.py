"""What profiling will cost, said before it is paid: the forecast counts the calls the profile will make,
and a run whose profile would take most of its budget says so (event, report.json) before profiling."""

from __future__ import annotations

import json
from pathlib import Path

from refinelab.agents.options import RunHooks
from refinelab.agents.profile_cost import (
    LABEL_PROMPT_TOKENS,
    PROBE_PROMPT_TOKENS,
    item_tokens,
    profile_cost,
    profile_cost_notice,
)
from refinelab.api import refine
from refinelab.config import load_settings
from refinelab.io import load_dataset
from refinelab.schema import Diagnostic, QAItem
from tests.support.pa_helpers import make_context
from tests.support.scripted import EXTRAS, models
from tests.support.scripted_model import ScriptedChatModel

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
FACTS = [QAItem(id=f"f{i}", question=f"Which organelle is named in fact number {i}?",
                choices=["Nucleus", "Mitochondrion", "Ribosome", "Golgi body"], answer=1, subject="biology")
         for i in range(3)]
WORD_PROBLEM = QAItem(id="m1", question="A shop sells pens at 3 for $2. How much do 12 pens cost in dollars?",
                      choices=["6", "8", "10", "12"], answer=1, subject="gsm8k")


def _never(messages: list[dict[str, str]]) -> str:
    raise AssertionError("a forecast makes no model call")


def test_the_forecast_counts_label_calls_and_panel_probes_not_yet_made(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=_never),
                       options={"skill_method": "model", "difficulty_method": "irt", "panel_method": "logprobs"})
    items = [*FACTS, WORD_PROBLEM]
    cost = profile_cost(ctx, items)
    # the judge labels the three facts (the word problem is calculation by its signals) and, as the IRT
    # panel, answers all four items in two option orders
    assert (cost.label_calls, cost.probe_calls) == (3, 8)
    text = {i.id: item_tokens(i) for i in items}  # each call priced as its fixed prompt plus the item's text
    assert cost.label_tokens == round(sum(LABEL_PROMPT_TOKENS + text[i.id] for i in FACTS))
    assert cost.probe_tokens == round(2 * sum(PROBE_PROMPT_TOKENS + text[i.id] for i in items))
    longer = [i.model_copy(update={"question": i.question * 4}) for i in items]
    assert profile_cost(ctx, longer).tokens > cost.tokens  # a longer item costs more to ask
    ctx.store.put_diagnostics([Diagnostic(item_id="f0", check="label", flag=False, score=0.5,
                                          evidence={"skill": "recall"}),
                               Diagnostic(item_id="f0", check="panel", flag=False, score=1.0, evidence={})])
    assert (profile_cost(ctx, items).label_calls, profile_cost(ctx, items).probe_calls) == (2, 6)  # f0 is measured
    exemplars = make_context(tmp_path / "x", ScriptedChatModel(respond=_never),
                             options={"skill_method": "exemplars", "difficulty_method": "irt"})
    assert profile_cost(exemplars, items).label_calls == 0
    probs = make_context(tmp_path / "p", ScriptedChatModel(respond=_never),
                         options={"skill_method": "probs", "difficulty_method": "irt"})
    assert profile_cost(probs, items).label_calls == 2 * 3  # the skill probe in two orders, not the word problem


def test_the_notice_speaks_only_when_profiling_takes_most_of_the_budget(tmp_path: Path) -> None:
    ctx = make_context(tmp_path, ScriptedChatModel(respond=_never), options={"skill_method": "model"})
    cost = profile_cost(ctx, FACTS)
    assert profile_cost_notice(ctx, cost, 10 * cost.tokens) == "" and profile_cost_notice(ctx, cost, None) == ""
    notice = profile_cost_notice(ctx, cost, cost.tokens + 100)
    assert f"about {cost.tokens:,} of the {cost.tokens + 100:,} tokens" in notice and "leaving ~100" in notice
    assert "--skill-method exemplars" in notice and f"a budget of {2 * cost.tokens + 10_000:,}" in notice


def test_a_run_whose_profile_takes_most_of_its_budget_says_so_first(tmp_path: Path) -> None:
    dataset = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=8)
    events: list[dict] = []
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})
    result = refine(dataset, budget=4_000, settings=settings, hooks=RunHooks(chat_models=models()),
                    options={**EXTRAS, "skill_method": "model"}, on_event=events.append)
    notices = [e["data"]["notice"] for e in events if e.get("mode") == "custom" and "notice" in (e.get("data") or {})]
    assert len(notices) == 1 and "of the 4,000 tokens" in notices[0]
    first_progress = next(i for i, e in enumerate(events) if "progress" in (e.get("data") or {})
                          and e["data"]["progress"] == "profile")
    assert events.index(next(e for e in events if "notice" in (e.get("data") or {}))) < first_progress
    report = json.loads((result.run_dir / "report.json").read_text())
    assert report["notices"] == notices and report["profile_forecast"]["tokens"] > 2_000
