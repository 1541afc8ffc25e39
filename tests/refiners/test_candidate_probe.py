"""Distractor candidates measured by the judge before they are chosen (agents/candidate_probe.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from refinelab.agents.candidate_probe import REWRITE_LEAD, probe_assembled, probe_candidates
from refinelab.agents.distractor_rewrite import MAX_RESELECTIONS
from refinelab.agents.refiner import refine
from refinelab.config import ModelSpec, Roles
from refinelab.schema import Diagnostic
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


def judge_by_options(ten: dict[str, float], four: dict[str, float]):  # noqa: ANN201
    """A scripted judge whose beliefs depend on how many options it is shown: over every candidate at once
    its mass is thin (`ten`), on the assembled four-option item it is sharp (`four`), as with the 1.5B."""
    def respond(messages) -> str:  # noqa: ANN001
        if asks_for_distractors(messages):
            return distractor_list("Jupiter", "Saturn", "Neptune", "Pluto", "Comet")
        shown = dict(re.findall(r"^([A-J])\. (.+)$", messages[-1]["content"], flags=re.M))
        belief = four if len(shown) <= 4 else ten
        return logprobs_block({letter: belief.get(text.strip(), 0.01) for letter, text in shown.items()})
    return respond


def counting_assembled(respond, asked: list[int]):  # noqa: ANN001, ANN201
    """`respond`, noting in `asked` each time the judge is shown a four-option (assembled) item."""
    def counting(messages) -> str:  # noqa: ANN001
        if len(re.findall(r"^[A-J]\. ", messages[-1]["content"], flags=re.M)) == 4:
            asked.append(1)
        return respond(messages)
    return counting


def test_a_new_distractor_the_judge_prefers_on_the_assembled_item_is_swapped_for_the_next_choice(
        tmp_path: Path) -> None:
    ten = {"Mercury": 0.30, "Saturn": 0.20, "Jupiter": 0.10, "Neptune": 0.10, "Pluto": 0.10, "Comet": 0.001}
    four = {"Mercury": 0.30, "Saturn": 0.60}
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_options(ten, four)))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    distractors = [c for i, c in enumerate(candidate.item.choices) if i != candidate.item.answer]
    choice = candidate.item.metadata["distractor_choice"]
    # over ten options Saturn trailed the key and was chosen; on the four it led by 0.3: swapped out
    assert "Saturn" not in distractors and "on the assembled item" in choice["dropped"]["Saturn"]
    assembled = choice["assembled_probe"]
    assert assembled["measured"] and assembled["preferred_new"] is None
    assert max(assembled["p"]) == assembled["p"][candidate.item.answer]
    assert candidate.tokens == ctx.ledger.spent > choice["probe"]["tokens"] + assembled["tokens"]


def test_a_lead_below_the_rule_keeps_the_set(tmp_path: Path) -> None:
    """A new distractor the judge favours by less than `REWRITE_LEAD` is a tempting distractor, not a
    second right answer: the set stands and the validator decides."""
    ten = {"Mercury": 0.30, "Saturn": 0.20, "Jupiter": 0.10, "Neptune": 0.10, "Pluto": 0.10}
    four = {"Mercury": 0.40, "Saturn": 0.40 + REWRITE_LEAD / 2}
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_options(ten, four)))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    assert "Saturn" in candidate.item.choices
    assert candidate.item.metadata["distractor_choice"]["assembled_probe"]["preferred_new"] is None


def test_when_every_set_has_a_preferred_new_distractor_the_attempt_fails_with_the_reason(tmp_path: Path) -> None:
    ten = {"Mercury": 0.30, "Saturn": 0.10, "Jupiter": 0.10, "Neptune": 0.10, "Pluto": 0.10, "Comet": 0.05}
    four = {"Mercury": 0.10, "Saturn": 0.70, "Jupiter": 0.70, "Neptune": 0.70, "Pluto": 0.70, "Comet": 0.70}
    asked: list[int] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=counting_assembled(judge_by_options(ten, four), asked)))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is None and "prefers a new wrong option to the key" in candidate.error
    assert len(asked) <= 2 * (MAX_RESELECTIONS + 1)  # two orders per set, at most that many sets
    assert candidate.tokens == ctx.ledger.spent > 0  # the probes were paid for and are the edit's


def with_working_originals(ctx) -> None:  # noqa: ANN001
    """The profile's panel measured every original distractor of BASE as working (p >= 0.05)."""
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="panel", flag=False, score=0.5, evidence={
        "key": BASE.answer, "answers": {"judge": 1},
        "probs": {"judge": {"p": [0.2, 0.5, 0.15, 0.15]}}})])


#: on the four-option item every option reads as picked now and then, but Comet is never picked
FOUR_WITH_AN_IDLE_COMET = {"Mercury": 0.4, "Venus": 0.2, "Earth": 0.2, "Mars": 0.2, "Jupiter": 0.2, "Saturn": 0.2,
                           "Neptune": 0.2, "Pluto": 0.2, "Comet": 0.001}


def test_a_new_distractor_no_one_picks_is_swapped_when_the_set_has_fewer_working_ones(tmp_path: Path) -> None:
    # over ten options Comet is the most tempting candidate, so the first set holds it; as four it is idle
    ten = {"Mercury": 0.30, "Comet": 0.20, "Saturn": 0.04, "Jupiter": 0.04, "Neptune": 0.04, "Pluto": 0.04}
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_options(ten, FOUR_WITH_AN_IDLE_COMET)))
    with_working_originals(ctx)
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    choice = candidate.item.metadata["distractor_choice"]
    assert "no one picks it" in choice["dropped"]["Comet"] and "Comet" not in candidate.item.choices
    probs = choice["assembled_probe"]["p"]
    assert all(p >= 0.05 for i, p in enumerate(probs) if i != candidate.item.answer)


def test_when_every_set_has_fewer_working_distractors_the_attempt_fails_with_the_reason(tmp_path: Path) -> None:
    """A set whose diversity rose but which leaves fewer working distractors is not an improvement: no set
    stands, the writer's retry is told why, and the probes are paid for."""
    ten = {"Mercury": 0.30, "Comet": 0.20, "Saturn": 0.04, "Jupiter": 0.04, "Neptune": 0.04, "Pluto": 0.04}
    four = {**dict.fromkeys(["Jupiter", "Saturn", "Neptune", "Pluto", "Comet"], 0.001),
            "Mercury": 0.4, "Venus": 0.2, "Earth": 0.2, "Mars": 0.2}
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_options(ten, four)))
    with_working_originals(ctx)
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is None
    assert "fewer working distractors than the original" in candidate.error
    assert "no one picks it" in candidate.error
    assert candidate.tokens == ctx.ledger.spent > 0  # every set's probe was paid for and is the edit's


def test_a_new_distractor_that_draws_the_originals_below_the_rate_is_swapped(tmp_path: Path) -> None:
    """The set can lose working distractors without a new idle one: a strong new option draws the picks
    of the originals it kept below the rate (marketing-60 in distractors_s32b). That new option is the one
    refused, and the next set, which keeps every distractor working, stands."""
    ten = {"Mercury": 0.30, "Jupiter": 0.20, "Saturn": 0.10, "Neptune": 0.04, "Pluto": 0.04, "Comet": 0.001}
    with_jupiter = {"Mercury": 0.40, "Jupiter": 0.38, "Venus": 0.01, "Earth": 0.01, "Mars": 0.01}
    without = {"Mercury": 0.40, "Venus": 0.2, "Earth": 0.2, "Mars": 0.2, "Saturn": 0.2, "Neptune": 0.2}
    seen: list[list[str]] = []

    def recording(messages) -> str:  # noqa: ANN001
        if asks_for_distractors(messages):
            return distractor_list("Jupiter", "Saturn", "Neptune", "Pluto", "Comet")
        shown = dict(re.findall(r"^([A-J])\. (.+)$", messages[-1]["content"], flags=re.M))
        texts = [t.strip() for t in shown.values()]
        belief = ten if len(shown) > 4 else with_jupiter if "Jupiter" in texts else without
        if len(shown) == 4:
            seen.append(sorted(texts))
        return logprobs_block({letter: belief.get(text.strip(), 0.01) for letter, text in shown.items()})

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=recording))
    with_working_originals(ctx)
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    choice = candidate.item.metadata["distractor_choice"]
    assert "Jupiter" not in candidate.item.choices and "draws the picks" in choice["dropped"]["Jupiter"]
    probs = choice["assembled_probe"]["p"]
    assert all(p >= 0.05 for i, p in enumerate(probs) if i != candidate.item.answer)
    assert any("Jupiter" in shown for shown in seen)  # the refused set was measured, not guessed


def test_a_set_that_stood_with_an_idle_new_distractor_gives_way_to_one_where_every_new_one_works(
        tmp_path: Path) -> None:
    """No stored pick rates, so the set cannot be compared with the original; but an idle new distractor
    is worse than a working one whatever the original had, so the next set is tried without it."""
    ten = {"Mercury": 0.30, "Comet": 0.20, "Saturn": 0.04, "Jupiter": 0.04, "Neptune": 0.04, "Pluto": 0.04}
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=judge_by_options(ten, FOUR_WITH_AN_IDLE_COMET)))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    choice = candidate.item.metadata["distractor_choice"]
    assert "Comet" not in candidate.item.choices and "the set stood" in choice["dropped"]["Comet"]
    probs = choice["assembled_probe"]["p"]
    assert all(p >= 0.05 for i, p in enumerate(probs) if i != candidate.item.answer)


def test_when_no_later_set_works_better_a_set_that_stood_is_kept(tmp_path: Path) -> None:
    """The key draws nearly every pick on the assembled item, so each set has idle new distractors: the
    sets are tried while reselections are left, and one that stood is the rewrite (not a failure)."""
    ten = {"Mercury": 0.30, "Comet": 0.20, "Saturn": 0.10, "Jupiter": 0.10, "Neptune": 0.10, "Pluto": 0.10}
    four = {"Mercury": 0.97}  # every other option 0.01
    shown_sets: list[int] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=counting_assembled(judge_by_options(ten, four), shown_sets)))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert not candidate.error, candidate.error
    assert candidate.item.choices != BASE.choices and candidate.item.answer_text == BASE.answer_text
    assert 2 < len(shown_sets) <= 2 * (MAX_RESELECTIONS + 1)  # more than one set measured, two orders each
    assert candidate.tokens == ctx.ledger.spent > 0


def test_a_preferred_original_distractor_is_not_the_rewrites_doing(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: logprobs_block({"A": 0.7, "B": 0.2, "C": 0.1})))
    item = BASE.model_copy(update={"choices": ["Venus", "Mercury", "Jupiter", "Saturn"]})  # Venus was there
    assembled = probe_assembled(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), BASE, item)
    assert not assembled.not_measured and assembled.preferred is None and assembled.probs[0] > assembled.probs[1]


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


@pytest.mark.llm
def test_the_real_embedded_judge_measures_an_assembled_rewrite(embedded_server, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the real llama.cpp server: the assembled four-option item in two orders gives a distribution
    over its options, paid for on the ledger."""
    from tests.conftest import SMALL_MODEL

    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    spec = ModelSpec(endpoint=embedded_server.base_url, model=SMALL_MODEL, api_key_env="LOCAL_KEY", max_tokens=60)
    ctx = make_ctx(tmp_path, roles=Roles(judge=spec, writer=spec, validator=spec))
    item = BASE.model_copy(update={"choices": ["Jupiter", "Mercury", "Saturn", "Mars"]})
    assembled = probe_assembled(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1), BASE, item)
    assert not assembled.not_measured, assembled.not_measured
    assert len(assembled.probs) == 4 and 0.99 <= sum(assembled.probs) <= 1.01
    assert assembled.preferred in (None, 0, 2)  # only a new distractor can be the one preferred
    assert assembled.tokens == ctx.ledger.spent > 0
