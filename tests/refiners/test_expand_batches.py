"""Expands drafted several to a writer call (RunOptions.expand_batch, agents/expand_batches.py): one call
per batch however many tasks share it, each task its own position, tokens that add up to the ledger, a
single draft when the batch cannot be used, and batches cut by the plan with one template each."""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from refinelab.agents.edit_tasks import tasks_from_plan
from refinelab.agents.expand_batches import BATCH_PROMPT, DraftSlot, batch_prompt_usable, batch_schema
from refinelab.agents.refiner import refine
from refinelab.operations import Op
from refinelab.prompts.loader import PromptLibrary
from refinelab.schema import QAItem
from refinelab.state import EditTask
from tests.refiners.test_refiners import BASE, OTHER, draft, make_ctx
from tests.support.scripted_model import ScriptedChatModel

CELL = "STEM|reasoning"
QUESTIONS = ["Which planet has the shortest year?", "Which planet has the longest day?",
             "Which planet has the most moons?"]


def is_batch_prompt(messages: list[dict[str, str]]) -> bool:
    return "new multiple-choice questions, each asking about a different fact" in messages[-1]["content"]


def batch_reply(questions: list[str]) -> str:
    return json.dumps({"items": [json.loads(draft(question=q)) for q in questions]})


def tasks_of(batch: str, size: int, attempt: int = 0, feedback: str = "") -> list[EditTask]:
    return [EditTask(f"e{k}", BASE.id, "expand", 1, attempt=attempt, target=CELL, feedback=feedback,
                     batch=str(DraftSlot(batch, k, size))) for k in range(size)]


def run_together(ctx, tasks: list[EditTask]) -> list:
    """Refine `tasks` at once, as LangGraph runs a round's Sends: each in its own thread."""
    out: list = [None] * len(tasks)

    def one(k: int) -> None:
        out[k] = refine(ctx, tasks[k])

    threads = [threading.Thread(target=one, args=(k,)) for k in range(len(tasks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return out


def test_a_slot_reads_back_as_written_and_nothing_else_is_a_slot() -> None:
    slot = DraftSlot("r1-STEM|reasoning-0", 2, 3)
    assert DraftSlot.parse(str(slot)) == slot
    for text in ("", "r1-x", "r1-x#3/3", "r1-x#0/1", "r1-x#a/3", "#0/2", "r1-x#0/2+a", "r1-x#0/1+0"):
        assert DraftSlot.parse(text) is None, text
    spared = DraftSlot("r1-x", 0, 1, 2)  # one task and two spares for its retries: a batch of three drafts
    assert DraftSlot.parse(str(spared)) == spared and spared.drafts == 3


def test_the_batch_schema_holds_exactly_its_size() -> None:
    schema = batch_schema(2)
    schema.model_validate_json(batch_reply(QUESTIONS[:2]))
    with pytest.raises(ValueError):
        schema.model_validate_json(batch_reply(QUESTIONS))


def test_one_writer_call_drafts_a_batch_and_each_task_takes_its_own_position(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []

    def respond(messages):
        seen.append(messages)
        return batch_reply(QUESTIONS) if is_batch_prompt(messages) else draft("A single draft nobody asked for?")

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    candidates = run_together(ctx, tasks_of("r1-b", 3))
    assert len(seen) == 1 and is_batch_prompt(seen[0]) and "Write 3 new" in seen[0][-1]["content"]
    assert [c.item.question for c in candidates] == QUESTIONS
    assert all(not c.error for c in candidates)
    # each carries a share of the one call; together they are what the ledger charged
    assert sum(c.tokens for c in candidates) == ctx.ledger.spent > 0
    assert max(c.tokens for c in candidates) - min(c.tokens for c in candidates) <= 2


def test_a_batch_the_writer_cannot_fill_falls_back_to_one_draft_per_task(tmp_path: Path) -> None:
    seen: list[bool] = []

    def respond(messages):
        seen.append(is_batch_prompt(messages))
        return "not json" if is_batch_prompt(messages) else draft()

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    candidates = run_together(ctx, tasks_of("r1-b", 2))
    assert all(c.item is not None and not c.error for c in candidates)
    assert seen.count(False) == 2  # each asked for its own draft
    assert sum(c.tokens for c in candidates) == ctx.ledger.spent  # the failed batch's tokens included


def test_a_batch_that_does_not_fit_the_budget_left_falls_back_to_one_draft_per_task(tmp_path: Path) -> None:
    """A batch reserves room for every answer it holds; near the budget's end one draft may still fit."""
    from refinelab.tools.ledger import Ledger

    class Recording(Ledger):
        reserved: list[int] = []

        def reserve(self, tokens, tag, **kwargs):
            self.reserved.append(tokens)
            return super().reserve(tokens, tag, **kwargs)

    # what one draft and a batch of four reserve, read from a run with room for both (the prompts' length
    # decides them), then a cap between the two
    probe = make_ctx(tmp_path / "probe", ScriptedChatModel(respond=lambda m: draft()))
    probe.ledger = Recording(cap=1_000_000)
    probe._clients.clear()
    run_together(probe, tasks_of("r1-b", 4)[:1])
    refine(probe, tasks_of("r1-b", 2, attempt=1, feedback="again")[1])
    batch_reservation, single_reservation = Recording.reserved[0], Recording.reserved[-1]
    assert single_reservation < batch_reservation

    seen: list[bool] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: seen.append(is_batch_prompt(m)) or draft()))
    ctx.ledger = Ledger(cap=(single_reservation + batch_reservation) // 2)  # one draft fits, four do not
    ctx._clients.clear()
    candidates = run_together(ctx, tasks_of("r1-b", 4)[:1])
    assert candidates[0].item is not None and not candidates[0].error, candidates[0].error
    assert seen == [False]  # the batch was never sent


def test_a_retry_drafts_one_item_with_the_validator_s_reason(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: seen.append(m) or draft()))
    candidate = refine(ctx, tasks_of("r1-b", 2, attempt=1, feedback="the key is wrong")[1])
    assert candidate.item is not None
    assert len(seen) == 1 and not is_batch_prompt(seen[0]) and "the key is wrong" in seen[0][-1]["content"]


def test_retries_take_the_batch_s_spare_drafts_then_ask_the_writer_with_feedback(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []
    questions = [*QUESTIONS, "Which planet is the hottest?"]  # two tasks' drafts, then two spares

    def respond(messages):
        seen.append(messages)
        return batch_reply(questions) if is_batch_prompt(messages) else draft("Which planet has rings?")

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    slots = [DraftSlot("r1-b", k, 2, 2) for k in range(2)]
    first = run_together(ctx, [EditTask(f"e{k}", BASE.id, "expand", 1, target=CELL, batch=str(slot))
                               for k, slot in enumerate(slots)])
    assert [c.item.question for c in first] == questions[:2]
    assert len(seen) == 1 and "Write 4 new" in seen[0][-1]["content"]
    spent = ctx.ledger.spent
    retries = [refine(ctx, EditTask(f"e{k}", BASE.id, "expand", 1, attempt=1, target=CELL, feedback="the key is wrong",
                                    batch=str(slots[k]))) for k in (1, 0, 1)]
    assert [c.item.question for c in retries] == [questions[2], questions[3], "Which planet has rings?"]
    assert [c.tokens for c in retries[:2]] == [0, 0] and retries[2].tokens > 0
    assert len(seen) == 2 and "the key is wrong" in seen[1][-1]["content"]  # spares gone: its own draft
    assert ctx.ledger.spent == spent + retries[2].tokens


def test_a_pack_that_words_expand_its_own_way_drafts_one_item_per_call(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    (prompts / "packs").mkdir(parents=True)
    (prompts / "packs" / "general.yaml").write_text(
        "include: default\nprompts:\n  refine_expand:\n    system: Write questions.\n"
        "    user: 'One question for {{ domain }} x {{ skill }}.'\n", encoding="utf-8")
    pack = PromptLibrary(prompts).pack("general")
    assert BATCH_PROMPT in pack.prompts and not batch_prompt_usable(pack)
    assert batch_prompt_usable(PromptLibrary().pack("general"))
    seen: list[list[dict[str, str]]] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: seen.append(m) or draft()), prompts_dir=prompts)
    item = BASE.model_copy(update={"subject": "miscellaneous", "domain": "other"})  # the general pack's
    ctx.store.load_items([item.model_copy(update={"id": "misc-1"})])
    candidates = run_together(ctx, [EditTask(f"e{k}", "misc-1", "expand", 1, target="other|recall",
                                             batch=str(DraftSlot("r1-b", k, 2))) for k in range(2)])
    assert all(c.item is not None for c in candidates)
    assert len(seen) == 2 and all(m[-1]["content"].startswith("One question") for m in seen)


def test_the_plan_cuts_a_cell_s_expands_into_batches_with_one_template_each(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.store.load_items([QAItem(id=f"astro-{k}", question=f"Question number {k} about the planets?",
                                 choices=["a", "b", "c", "d"], answer=0, subject="astronomy", domain="STEM",
                                 skill="recall") for k in range(3, 8)])
    solved = SimpleNamespace(assignments=[], new_items=[
        SimpleNamespace(op=Op.EXPAND, cell=CELL, bucket=None, count=5)])
    ctx.options = ctx.options.model_copy(update={"expand_batch": 1})
    unbatched = tasks_from_plan(ctx, solved, 1)
    ctx.options = ctx.options.model_copy(update={"expand_batch": 3})
    batched = tasks_from_plan(ctx, solved, 1)
    # the same edits, now in two batches (3 and 2), each from one template
    assert [t["edit_id"] for t in batched] == [t["edit_id"] for t in unbatched]
    assert all(t["batch"] == "" for t in unbatched)
    slots = [DraftSlot.parse(t["batch"]) for t in batched]
    assert [(s.position, s.size) for s in slots] == [(0, 3), (1, 3), (2, 3), (0, 2), (1, 2)]
    assert len({s.batch for s in slots}) == 2
    assert len({t["item_id"] for t in batched[:3]}) == 1 and len({t["item_id"] for t in batched[3:]}) == 1
    assert batched[0]["item_id"] != batched[3]["item_id"]  # the next batch takes the next least used template
    ctx.options = ctx.options.model_copy(update={"expand_spares": 2})
    spared = [DraftSlot.parse(t["batch"]) for t in tasks_from_plan(ctx, solved, 1)]
    assert [(s.size, s.spares) for s in spared] == [(3, 2)] * 3 + [(2, 2)] * 2


def test_expands_are_batched_by_default() -> None:
    from refinelab.agents.options import RunOptions

    assert RunOptions().expand_batch == 4 and RunOptions().expand_spares == 0


def test_generate_is_not_batched(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    ctx.options = ctx.options.model_copy(update={"expand_batch": 3})
    option = SimpleNamespace(op=Op.GENERATE, cell=None, bucket="hard", count=3)
    tasks = tasks_from_plan(ctx, SimpleNamespace(assignments=[], new_items=[option]), 1)
    assert tasks and all(t["batch"] == "" for t in tasks)


THIRDS = {"easy": 1 / 3, "medium": 1 / 3, "hard": 1 / 3}


def test_difficulty_aims_fill_the_buckets_the_set_is_short_of() -> None:
    """Two easy items against equal thirds: the next drafts aim hard, medium, hard, medium (ties go to the
    harder bucket), counting the aims already dealt; none without difficulty shares."""
    from refinelab.agents.difficulty_aims import difficulty_aims
    from refinelab.metrics.targets import Targets

    items = [BASE, OTHER]  # difficulty 0.2 and 0.3: both easy
    assert difficulty_aims(Targets(), items, 4) == []
    assert difficulty_aims(Targets(difficulty=THIRDS), items, 4) == ["hard", "medium", "hard", "medium"]
    assert difficulty_aims(Targets(difficulty={"easy": 0.0, "medium": 0.5, "hard": 0.5}), items, 2) == ["hard", "medium"]
    unmeasured = [BASE.model_copy(update={"difficulty": None})]
    assert difficulty_aims(Targets(difficulty=THIRDS), unmeasured, 3) == ["hard", "medium", "easy"]


def test_the_plan_deals_a_round_s_aims_across_its_batches(tmp_path: Path) -> None:
    """Six expands in batches of four and two: the round's six aims are dealt at once, so the second batch
    does not aim again at the gap the first one fills; with the option off no task carries aims."""
    from refinelab.agents.difficulty_aims import split_aims
    from refinelab.agents.options import RunOptions
    from refinelab.metrics.targets import Targets

    ctx = make_ctx(tmp_path)
    ctx.options = RunOptions(dedup="lexical", validators=[], expand_aims_difficulty=True)
    ctx.targets = Targets(difficulty=THIRDS)
    option = SimpleNamespace(op=Op.EXPAND, cell=CELL, bucket=None, count=6)
    plan = SimpleNamespace(assignments=[], new_items=[option])
    tasks = tasks_from_plan(ctx, plan, 1)
    by_batch = {t["batch"].rpartition("#")[0]: split_aims(t["aims"]) for t in tasks}
    assert list(by_batch.values()) == [["hard", "medium", "hard", "medium"], ["hard", "medium"]]
    # round-1 new items (status "new") count: two hard ones fill the hard gap the next round sees
    for k in range(2):
        ctx.store.add_item(BASE.model_copy(update={"id": f"new-{k}", "difficulty": 0.9}))
    tasks = tasks_from_plan(ctx, SimpleNamespace(assignments=[], new_items=[
        SimpleNamespace(op=Op.EXPAND, cell=CELL, bucket=None, count=2)]), 2)
    assert split_aims(tasks[0]["aims"]) == ["medium", "medium"]  # uncounted, they would be hard, medium
    ctx.options = RunOptions(dedup="lexical", validators=[], expand_aims_difficulty=False)
    assert all(t["aims"] == "" for t in tasks_from_plan(ctx, plan, 1))


def test_a_batch_asks_each_draft_for_its_aim_and_a_retry_for_its_own(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []

    def respond(messages):
        seen.append(messages)
        return batch_reply(QUESTIONS[:2]) if is_batch_prompt(messages) else draft()

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    tasks = [dataclasses.replace(t, aims="hard,medium") for t in tasks_of("r1-b", 2)]
    run_together(ctx, tasks)
    prompt = seen[0][-1]["content"]
    assert "Their difficulty, in order: 1. hard; 2. medium." in prompt
    assert "Hard: It should need several steps" in prompt and "Medium: It should need" in prompt
    assert "Easy:" not in prompt
    retry = dataclasses.replace(tasks[1], attempt=1, feedback="the key is wrong")
    refine(ctx, retry)  # position 1 was dealt medium
    assert "Make it a medium question. It should need understanding" in seen[-1][-1]["content"]
    refine(ctx, dataclasses.replace(retry, aims=""))  # no aims (a pilot expand): nothing said of difficulty
    assert "Make it a" not in seen[-1][-1]["content"]


@pytest.mark.llm
def test_real_model_drafts_a_batch_of_distinct_items(tmp_path: Path) -> None:
    """The embedded writer through the real server: one call returns two drafts that parse, pass the
    refiner's checks and differ from each other."""
    from langchain_openai import ChatOpenAI

    from refinelab.tools.embedded_server import ensure_server

    server = ensure_server()
    chat = ChatOpenAI(base_url=server.base_url, api_key="sk-local", model="embedded", temperature=0.0,
                      max_tokens=1000, max_retries=0)
    ctx = make_ctx(tmp_path, chat)
    candidates = run_together(ctx, tasks_of("r1-real", 2))
    assert all(c.item is not None and not c.error for c in candidates), [c.error for c in candidates]
    assert candidates[0].item.question != candidates[1].item.question
    assert ctx.ledger.summary()["calls"] == 1
