"""Which of the set's items an expand prompt shows as examples (agents/style_examples.py,
RunOptions.expand_examples): the template's subject's items, or items labelled the skill the cell is short
of, nearest first, the subject's items filling in; never the template itself."""

from __future__ import annotations

from pathlib import Path

from refinelab.agents.refiner import refine
from refinelab.agents.style_examples import skill_examples, style_examples, subject_examples
from refinelab.schema import QAItem
from refinelab.state import EditTask
from tests.refiners.test_refiners import BASE, OTHER, draft, make_ctx
from tests.support.scripted_model import ScriptedChatModel


def item(id_: str, subject: str, domain: str, skill: str) -> QAItem:
    return QAItem(id=id_, question=f"Question {id_} about {subject}?", choices=["a", "b", "c", "d"], answer=0,
                  subject=subject, domain=domain, skill=skill)


SET = [item("astro-recall", "astronomy", "STEM", "recall"),
       item("bio-reasoning", "biology", "STEM", "reasoning"),
       item("law-reasoning", "law", "humanities", "reasoning"),
       item("astro-reasoning", "astronomy", "STEM", "reasoning"),
       item("astro-template", "astronomy", "STEM", "reasoning"),
       item("astro-recall-2", "astronomy", "STEM", "recall")]


def ids(items: list[QAItem]) -> list[str]:
    return [i.id for i in items]


def test_skill_examples_take_the_subject_then_the_domain_then_any_subject() -> None:
    assert ids(skill_examples(SET, "astronomy", "STEM", "reasoning", "astro-template")) == [
        "astro-reasoning", "bio-reasoning"]
    assert ids(skill_examples(SET, "astronomy", "STEM", "reasoning", "astro-template", limit=4)) == [
        "astro-reasoning", "bio-reasoning", "law-reasoning", "astro-recall"]
    # a cell of another domain than the template's subject: no subject given, the domain's items first
    assert ids(skill_examples(SET, "", "humanities", "reasoning", "astro-template")) == [
        "law-reasoning", "bio-reasoning"]


def test_the_subject_fills_in_when_no_item_has_the_skill() -> None:
    assert ids(skill_examples(SET, "astronomy", "STEM", "calculation", "astro-template")) == [
        "astro-recall", "astro-reasoning"]
    assert skill_examples([], "astronomy", "STEM", "reasoning", "x") == []


def test_subject_examples_are_the_subjects_first_items_whatever_their_skill() -> None:
    assert ids(subject_examples(SET, "astronomy", "astro-recall")) == ["astro-reasoning", "astro-template"]
    assert ids(style_examples("subject", SET, "astronomy", "STEM", "reasoning", "astro-recall")) == [
        "astro-reasoning", "astro-template"]
    assert ids(style_examples("skill", SET, "astronomy", "STEM", "", "astro-recall")) == [
        "astro-reasoning", "astro-template"]  # no skill to match: as "subject"


def test_an_expand_prompt_shows_the_items_of_the_skill_the_cell_is_short_of(tmp_path: Path) -> None:
    reasoning = QAItem(id="phys-1", question="Why does a ball thrown upward come back down?",
                       choices=["Gravity", "Wind", "Magnetism", "Friction"], answer=0, subject="physics",
                       domain="STEM", skill="reasoning")
    prompts: dict[str, str] = {}
    for choice in ("subject", "skill"):
        seen: list[str] = []
        ctx = make_ctx(tmp_path / choice, ScriptedChatModel(respond=lambda m, seen=seen: seen.append(
            m[-1]["content"]) or draft()))
        ctx.store.load_items([reasoning])
        ctx.options = ctx.options.model_copy(update={"expand_examples": choice, "expand_batch": 1})
        candidate = refine(ctx, EditTask("e1", BASE.id, "expand", 1, target="STEM|reasoning"))
        assert candidate.item is not None and not candidate.error
        prompts[choice] = seen[0]
    assert OTHER.question in prompts["subject"] and reasoning.question not in prompts["subject"]
    assert reasoning.question in prompts["skill"] and BASE.question not in prompts["skill"]


def test_an_expand_prompt_carries_the_taxonomys_writing_instruction_for_the_cells_skill(tmp_path: Path) -> None:
    seen: list[str] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: seen.append(m[-1]["content"]) or draft()))
    ctx.skills = ctx.skills.model_copy(update={"writing": {"reasoning": "Describe an everyday situation.",
                                                           "recall": "Ask for one fact."}})
    ctx.options = ctx.options.model_copy(update={"expand_batch": 1})
    refine(ctx, EditTask("e1", BASE.id, "expand", 1, target="STEM|reasoning"))
    assert "Describe an everyday situation." in seen[0] and "Ask for one fact." not in seen[0]
