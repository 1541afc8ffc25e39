"""Distractor candidates measured by the judge before they are chosen (agents/candidate_probe.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refinelab.agents.candidate_probe import probe_candidates
from refinelab.agents.refiner import refine
from refinelab.config import ModelSpec, Roles
from refinelab.state import EditTask
from tests.refiners.test_refiners import BASE, asks_for_distractors, distractor_list, make_ctx
from tests.support.scripted_model import ScriptedChatModel, logprobs_block

#: what the scripted judge believes of each option text: Jupiter reads as right as the key, Comet never
BELIEF = {"Mercury": 0.40, "Jupiter": 0.45, "Saturn": 0.05, "Neptune": 0.05, "Pluto": 0.04, "Comet": 0.001}


def judge_by_text(messages) -> str:  # noqa: ANN001
    """Writer: six candidates. Judge probe: each shown letter gets the belief of its option's text, wherever
    the order put it (so the two orders agree, as a judge without letter bias would)."""
    if asks_for_distractors(messages):
        return distractor_list("Jupiter", "Saturn", "Neptune", "Pluto", "Comet")
    shown = dict(re.findall(r"^([A-J])\. (.+)$", messages[-1]["content"], flags=re.M))
    return logprobs_block({letter: BELIEF.get(text.strip(), 0.01) for letter, text in shown.items()})


def test_a_candidate_the_judge_prefers_to_the_key_is_dropped(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_text))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    distractors = [c for i, c in enumerate(candidate.item.choices) if i != candidate.item.answer]
    choice = candidate.item.metadata["distractor_choice"]
    assert "Jupiter" not in distractors and "prefers it to the key" in choice["dropped"]["Jupiter"]
    # the one no model would pick loses to the tempting ones (all are equally far apart in this embedder)
    assert "Comet" not in distractors and {"Saturn", "Neptune", "Pluto"} == set(distractors)
    probe = choice["probe"]
    assert probe["measured"] and probe["p"]["jupiter"] >= probe["p_key"] > probe["p"]["comet"]
    # the probe's tokens belong to the edit: what the store records per edit is what the ledger spent
    assert candidate.tokens == ctx.ledger.spent > probe["tokens"] > 0


def test_a_judge_without_logprobs_leaves_the_candidates_unmeasured_and_says_so(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list("Jupiter", "Saturn", "Neptune")))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    probe = candidate.item.metadata["distractor_choice"]["probe"]
    assert probe["measured"] is False and "no option probabilities" in probe["why"]
    assert set(candidate.item.choices) == {"Mercury", "Jupiter", "Saturn", "Neptune"}


def test_only_new_distinct_candidates_are_shown_to_the_judge(tmp_path: Path) -> None:
    shown: list[str] = []

    def judge(messages) -> str:  # noqa: ANN001
        shown.append(messages[-1]["content"])
        return logprobs_block({"A": 0.5, "B": 0.3, "C": 0.2})

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge))
    probe = probe_candidates(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), BASE,
                             ["Venus", "Jupiter", " jupiter ", "Mercury", "", "Saturn"])
    assert set(probe.p) == {"jupiter", "saturn"} and probe.p_key is not None
    assert len(shown) == 2 and all("Venus" not in text for text in shown)  # two orders; originals not re-asked
    nothing = probe_candidates(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), BASE, ["Venus", "Mars"])
    assert nothing.not_measured == "no new candidate to measure" and nothing.tokens == 0


@pytest.mark.llm
def test_the_real_embedded_judge_measures_candidates(embedded_server, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real llama.cpp server: one-token probes in two orders give a distribution over the key
    and every candidate, and their tokens are on the ledger."""
    from tests.conftest import SMALL_MODEL

    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    spec = ModelSpec(endpoint=embedded_server.base_url, model=SMALL_MODEL, api_key_env="LOCAL_KEY", max_tokens=60)
    ctx = make_ctx(tmp_path, roles=Roles(judge=spec, writer=spec, validator=spec))
    probe = probe_candidates(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), BASE,
                             ["Jupiter", "Saturn", "Neptune", "the Moon", "Pluto"])
    assert not probe.not_measured, probe.not_measured
    assert set(probe.p) == {"jupiter", "saturn", "neptune", "the moon", "pluto"}
    assert probe.p_key is not None and 0.99 <= probe.p_key + sum(probe.p.values()) <= 1.01
    assert probe.tokens == ctx.ledger.spent > 0
