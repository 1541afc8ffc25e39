"""Refiner operations: input/output contract on scripted models, retry-with-reason, prompt overrides,
and one real-model run per operation on a small embedded model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.planner_agent import item_profiles
from refinelab.agents.refiner import refine
from refinelab.agents.validation.structural import structural_problems
from refinelab.config import ModelSpec, Roles, load_settings
from refinelab.metrics.targets import Targets
from refinelab.prompts.loader import PromptLibrary
from refinelab.schema import Diagnostic, QAItem
from refinelab.state import EditTask
from refinelab.tools.ledger import Ledger
from refinelab.tools.store import RunStore
from refinelab.tools.tracing import Tracer, read_trace
from tests.support.scripted_model import ScriptedChatModel
from tests.support.validator_helpers import HashEmbedder

BASE = QAItem(id="astro-1", question="Which planet is closest to the Sun?", choices=["Venus", "Mercury", "Earth", "Mars"],
              answer=1, subject="astronomy", domain="STEM", skill="recall", difficulty=0.2)
OTHER = QAItem(id="astro-2", question="What is the largest planet in the Solar System?",
               choices=["Saturn", "Neptune", "Jupiter", "Uranus"], answer=2, subject="astronomy", domain="STEM",
               skill="recall", difficulty=0.3)
OPERATIONS = ["expand", "generate", "calibrate", "rewrite_distractors", "fix"]
TARGETS = {"expand": "STEM|reasoning", "generate": "hard", "calibrate": "hard", "rewrite_distractors": "", "fix": ""}


def make_ctx(tmp_path: Path, chat_model=None, prompts_dir: Path | None = None, roles: Roles | None = None) -> AgentContext:
    settings = load_settings(overrides={"runs_dir": str(tmp_path)})
    if roles is not None:
        settings = settings.model_copy(update={"roles": roles})
    store = RunStore(tmp_path / "store.sqlite")
    store.load_items([BASE, OTHER])
    store.put_diagnostics([Diagnostic(item_id=BASE.id, check="error", flag=True, score=0.2,
                                      evidence={"p_error": 0.8, "error_label": "wrong ground truth"})])
    models = {r: chat_model for r in ("judge", "writer", "validator")} if chat_model else {}
    return AgentContext(run_dir=tmp_path, settings=settings, store=store, ledger=Ledger(cap=100_000),
                        tracer=Tracer(tmp_path / "trace.jsonl"), targets=Targets(), prompts=PromptLibrary(prompts_dir),
                        hooks=RunHooks(chat_models=models, embed=HashEmbedder().embed),
                        options=RunOptions(dedup="lexical", validators=[]))


def asks_for_distractors(messages) -> bool:
    return "wrong options (distractors)" in messages[0]["content"]


def distractor_list(*texts: str) -> str:
    return json.dumps({"distractors": list(texts)})


NEW_DISTRACTORS = distractor_list("Jupiter", "Saturn", "Neptune", "the Moon", "Pluto", "Halley's comet")


def draft(question: str = "Which planet has the shortest year?", answer: int = 1,
          choices: list[str] | None = None) -> str:
    return json.dumps({"question": question, "choices": choices or ["Venus", "Mercury", "Earth", "Mars"],
                       "answer_index": answer, "rationale": "Mercury orbits in 88 days."})


@pytest.mark.parametrize("operation", OPERATIONS)
def test_operation_contract(tmp_path: Path, operation: str) -> None:
    seen: list[list[dict[str, str]]] = []

    def respond(messages):
        seen.append(messages)
        if asks_for_distractors(messages):
            return NEW_DISTRACTORS
        return draft()

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    task = EditTask(edit_id=f"e-{operation}", item_id=BASE.id, operation=operation, round=1, target=TARGETS[operation])
    candidate = refine(ctx, task)
    assert candidate.error == "" and candidate.item is not None and candidate.tokens > 0
    item = candidate.item
    new = operation in ("expand", "generate")
    assert (item.id != BASE.id) == new  # new items get their own id; edits keep the original's
    assert item.provenance.created_by == operation and item.provenance.parent_id == BASE.id
    assert item.subject == BASE.subject
    assert item.metadata.get("rationale") or item.metadata.get("distractor_choice")
    prompts = [messages[-1]["content"] for messages in seen]  # calibrate measures the item before writing
    expected_fragment = {"expand": "Skill tested: reasoning", "generate": "hard multiple-choice question",
                         "calibrate": "make it harder", "rewrite_distractors": 'Correct answer: "Mercury"',
                         "fix": "flagged: wrong ground truth"}[operation]
    assert any(expected_fragment in prompt for prompt in prompts)
    if operation == "expand":
        assert item.skill == "reasoning"


def test_rewrite_distractors_asks_for_distractors_only_and_keeps_stem_and_key(tmp_path: Path) -> None:
    seen: list[str] = []

    def respond(messages):
        seen.append(messages[-1]["content"])
        # the key itself, a repeat and the stem are never usable distractors
        return distractor_list("Mercury", "mercury", BASE.question, "Jupiter", "Saturn", "Pluto", "Jupiter")

    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=respond))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.error == "" and candidate.item is not None
    item = candidate.item
    assert item.question == BASE.question and item.answer == BASE.answer and item.answer_text == "Mercury"
    assert sorted(c for i, c in enumerate(item.choices) if i != item.answer) == ["Jupiter", "Pluto", "Saturn"]
    assert "Write 9 different wrong options" in seen[0]  # 3x over-generation for 3 slots
    dropped = item.metadata["distractor_choice"]["dropped"]
    assert "repeats the key" in dropped["Mercury"]


def test_rewrite_distractors_drops_paraphrases_of_the_key(tmp_path: Path) -> None:
    paraphrase = "Mercury planet"  # the hash embedder sees it as very close to "Mercury"
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list(
        paraphrase, "Jupiter", "Saturn", "Pluto")))
    ctx.hooks.embed = lambda texts: HashEmbedder().embed([t.replace(" planet", "") for t in texts])
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is not None and paraphrase not in candidate.item.choices
    assert "paraphrases the key" in candidate.item.metadata["distractor_choice"]["dropped"][paraphrase]


def test_too_few_new_distractors_are_topped_up_with_the_unpicked_originals(tmp_path: Path) -> None:
    """One usable new distractor still replaces one original: the originals the panel never picks (all of
    them, with nothing measured) fill the other slots; nothing usable at all is refused saying why, so the
    retry's feedback is something the writer can act on."""
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list("Mercury", "Jupiter")))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.error == "" and candidate.item is not None
    distractors = [c for i, c in enumerate(candidate.item.choices) if i != candidate.item.answer]
    assert "Jupiter" in distractors and len(set(distractors) & {"Venus", "Earth", "Mars"}) == 2
    assert candidate.item.metadata["distractor_choice"]["kept_original"] == 2
    (tmp_path / "none").mkdir()
    ctx = make_ctx(tmp_path / "none", ScriptedChatModel(respond=lambda m: distractor_list("Mercury", "mercury")))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is None
    assert candidate.error.startswith("none of the 2 new wrong options could be used (repeats the key"), candidate.error


def test_candidates_that_all_reword_the_key_are_refused_saying_so(tmp_path: Path) -> None:
    """Nine rewordings of the key (the demo's first econometrics-1 rewrite) are dropped as paraphrases;
    the refusal says that, not "the edit changed nothing", and the retry's feedback carries it."""
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list(
        "Mercury planet", "Mercury world", "Mercury the planet")))
    ctx.hooks.embed = lambda texts: HashEmbedder().embed(["Mercury" if t.startswith("Mercury") else t
                                                          for t in texts])
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is None
    assert candidate.error.startswith("3 of the 3 new wrong options reword the correct answer"), candidate.error


def test_too_few_usable_distractors_is_a_reason(tmp_path: Path) -> None:
    """When even the originals cannot fill the slots (one repeats the stem) and the writer's candidate
    paraphrases the key, the edit says so. An original close to the key stays usable: the dataset already
    has it as wrong."""
    base = BASE.model_copy(update={"id": "astro-9", "choices": [BASE.question, "Mercury", "Mercury planet", "Mars"]})
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list("Mercury world planet")))
    ctx.hooks.embed = lambda texts: HashEmbedder().embed([t.replace(" planet", "").replace(" world", "")
                                                          for t in texts])
    ctx.store.load_items([base])
    candidate = refine(ctx, EditTask("e", base.id, "rewrite_distractors", 1))
    assert candidate.item is None and "usable distractors for 3 slots (dropped: paraphrases the key" in candidate.error


def test_unusable_output_is_a_reason_not_none(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: "I cannot do that"))
    candidate = refine(ctx, EditTask("e", BASE.id, "fix", 1))
    assert candidate.item is None and "writer output unusable" in candidate.error and "I cannot" in candidate.raw


def test_structurally_invalid_draft_is_rejected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: draft(choices=["A", "a", "B", "C"])))
    candidate = refine(ctx, EditTask("e", BASE.id, "fix", 1))
    assert candidate.item is None and "structurally invalid" in candidate.error
    # the reason (and the retry's feedback) names the problem, not the last line of pydantic's text: a link
    assert "choices are not distinct" in candidate.error and "pydantic.dev" not in candidate.error
    assert "2 options are the same" in candidate.error and "'a'" not in candidate.error  # no text to copy back


def test_retry_prompt_carries_the_validator_reason(tmp_path: Path) -> None:
    seen: list[str] = []
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: seen.append(m[-1]["content"]) or draft()))
    refine(ctx, EditTask("e", BASE.id, "generate", 1, attempt=1, target="easy",
                         feedback="an independent solver chose C"))
    assert "was rejected: an independent solver chose C" in seen[0]


def test_near_duplicate_new_item_is_rejected(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path)
    copy = OTHER.model_copy(update={"id": "new-1"})
    problems = structural_problems(ctx, EditTask("new-1", OTHER.id, "expand", 1), copy)
    assert any("too close to existing item astro-2" in p for p in problems)


def test_user_folder_overrides_one_prompt_and_nothing_else(tmp_path: Path) -> None:
    """Same edits with and without a user override of refine_generate: only that prompt's text changes."""
    override = tmp_path / "my_prompts"
    override.mkdir()
    (override / "refine_generate.yaml").write_text(
        "user: |\n  CUSTOM GENERATE PROMPT for {{ subject }} at {{ bucket }}.\n"
        "  {% if feedback %}Rejected: {{ feedback }}{% endif %}\n")

    def run(folder: Path | None, where: Path) -> list[dict]:
        where.mkdir()
        ctx = make_ctx(where, ScriptedChatModel(respond=lambda m: NEW_DISTRACTORS if asks_for_distractors(m)
                                                else draft()), prompts_dir=folder)
        for op in OPERATIONS:
            refine(ctx, EditTask(f"e-{op}", BASE.id, op, 1, target=TARGETS[op]))
        # the writer's calls (calibrate asks for several drafts; the judge's probes use no operation prompt)
        return [r for r in read_trace(where / "trace.jsonl") if r["run_type"] == "llm" and r["metadata"]["role"] == "writer"]

    plain = run(None, tmp_path / "a")
    custom = run(override, tmp_path / "b")
    assert len(plain) == len(custom) >= len(OPERATIONS)
    assert {r["metadata"]["operation"] for r in plain} == set(OPERATIONS)
    for before, after in zip(plain, custom, strict=True):
        if before["metadata"]["operation"] == "generate":
            assert "CUSTOM GENERATE PROMPT for astronomy at hard" in after["inputs"]["messages"][-1]["content"]
            assert before["inputs"]["messages"] != after["inputs"]["messages"]
            assert after["inputs"]["messages"][0] == before["inputs"]["messages"][0]  # system prompt inherited
        else:
            assert before["inputs"]["messages"] == after["inputs"]["messages"]


REAL_MODEL = "qwen2.5-coder-0.5b"


@pytest.fixture(scope="module")
def small_writer():
    from refinelab.tools.embedded_server import serving

    with serving(REAL_MODEL, parallel=1) as handle:
        yield handle


@pytest.mark.llm
@pytest.mark.parametrize("operation", OPERATIONS)
def test_real_small_model_operation_parses_and_passes_structure(tmp_path: Path, small_writer, operation: str) -> None:
    """The 0.5B model through the real server: the draft parses and passes the structural checks
    (up to four attempts, each retried with the structural reason, as the graph does)."""
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=small_writer.base_url, api_key="sk-local", model=REAL_MODEL, temperature=0.0,
                      max_tokens=400, max_retries=0)
    roles = Roles(writer=ModelSpec(model=REAL_MODEL, max_tokens=400, max_parse_retries=2))
    ctx = make_ctx(tmp_path, chat, roles=roles)
    # Without a few-shot example: the 0.5B tends to copy it verbatim, which the near-duplicate check
    # (rightly) rejects; the 1.5B default writer does not need this.
    ctx.store.mark(OTHER.id, "removed")
    # calibrate's measured choice is semantic (tests/refiners/test_calibration_drafts.py; the real server in
    # test_real_model_distractor_swaps_keep_stem_and_key): here its one draft, parsed and checked
    ctx.options = ctx.options.model_copy(update={"calibrate_drafts": 1, "calibrate_swaps": False})
    feedback, problems = "", ["not tried"]
    for attempt in range(4):
        task = EditTask(f"e-{operation}", BASE.id, operation, 1, attempt=attempt, target=TARGETS[operation],
                        feedback=feedback)
        candidate = refine(ctx, task)
        # parse + structural checks; the refiner's semantic objections (e.g. "changed nothing") are
        # exercised by the scripted tests and do not decide whether the model's output is well formed
        problems = ([candidate.error] if candidate.item is None
                    else structural_problems(ctx, task, candidate.item))
        if not problems:
            break
        feedback = "; ".join(problems)
    assert not problems, problems
    assert ctx.ledger.spent > 0


@pytest.mark.parametrize("operation", ["calibrate", "rewrite_distractors"])
def test_an_edit_that_changes_nothing_is_rejected(tmp_path: Path, operation: str) -> None:
    same = draft(question=BASE.question, choices=list(BASE.choices), answer=BASE.answer)
    same_distractors = distractor_list("Venus", "Earth", "Mars")
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: same_distractors if asks_for_distractors(m) else same))
    candidate = refine(ctx, EditTask("e", BASE.id, operation, 1, target=TARGETS[operation]))
    assert "changed nothing" in candidate.error


def test_rewrite_that_keeps_every_distractor_is_rejected(tmp_path: Path) -> None:
    shuffled = distractor_list("Mars", "Venus", "Earth")  # the same three in another order
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: shuffled))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert "distractors are unchanged" in candidate.error


def test_copied_option_labels_are_stripped() -> None:
    from refinelab.schema import strip_option_labels

    assert strip_option_labels(["A. Venus", "B. Mercury", "C) Earth", "D: Mars"]) == ["Venus", "Mercury", "Earth", "Mars"]
    assert strip_option_labels(["A. Venus", "Mercury"]) == ["A. Venus", "Mercury"]  # not every option labelled
    assert strip_option_labels(["B. x", "A. y"]) == ["B. x", "A. y"]  # letters out of order: leave alone


def test_a_rewrite_that_cannot_raise_diversity_is_refused_before_validation(tmp_path: Path) -> None:
    """Candidates that echo the current distractors lower diversity whichever set is chosen: the refiner
    says so instead of paying for an answer check the measurement would then overrule."""
    echoes = distractor_list("Venus, Earth or Mars", "Mars, Earth or Venus")  # each echoes all three
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: echoes))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    assert candidate.item is None and "distractor diversity would not rise" in candidate.error
    assert not candidate.error.startswith("structurally invalid")


def test_an_item_whose_options_refer_to_each_other_is_not_rewritten(tmp_path: Path) -> None:
    """'A and D' means what options A and D say: new distractors would change the key's meaning."""
    model = ScriptedChatModel(respond=lambda m: distractor_list("F", "I", "Io"))
    ctx = make_ctx(tmp_path, model)
    titan = QAItem(id="astro-9", question="Which of the following is/are true?",
                   choices=["Titan has a thick atmosphere", "Titan has no atmosphere", "Titan is a planet", "A and D"],
                   answer=3, subject="astronomy")
    ctx.store.load_items([titan])
    candidate = refine(ctx, EditTask("e", titan.id, "rewrite_distractors", 1))
    assert candidate.item is None and "refer to each other" in candidate.error
    assert model.calls == 0 and candidate.tokens == 0
    # the planner reads the same rule, so such an item is never offered the rewrite in the first place
    profiles = {p.id: p for p in item_profiles(ctx)}
    assert profiles[titan.id].distractors_replaceable is False and profiles[BASE.id].distractors_replaceable


def test_a_bare_letter_is_not_a_distractor(tmp_path: Path) -> None:
    ctx = make_ctx(tmp_path, ScriptedChatModel(respond=lambda m: distractor_list("F", "(I)", "Jupiter", "Saturn",
                                                                                 "Neptune")))
    candidate = refine(ctx, EditTask("e", BASE.id, "rewrite_distractors", 1))
    dropped = candidate.item.metadata["distractor_choice"]["dropped"]
    assert dropped["F"] == dropped["(I)"] == "a bare option letter, not an option"
    assert not {"F", "(I)"} & set(candidate.item.choices)


@pytest.mark.llm
def test_real_model_distractor_swaps_keep_stem_and_key(tmp_path: Path, small_writer) -> None:
    """Calibrate by distractors through the real server: the writer's candidates (JSON list) are probed by
    the judge through logprobs, and every swap built from them keeps the stem and the key and brings new
    wrong options in place of old ones, the most tempting first for "harder"."""
    from langchain_openai import ChatOpenAI

    from refinelab.agents.calibration_swaps import distractor_swaps

    chat = ChatOpenAI(base_url=small_writer.base_url, api_key="sk-local", model=REAL_MODEL, temperature=0.0,
                      max_tokens=200, max_retries=0)
    ctx = make_ctx(tmp_path, chat, roles=Roles(writer=ModelSpec(model=REAL_MODEL, max_tokens=200, max_parse_retries=2)))
    swaps = distractor_swaps(ctx, EditTask("e", BASE.id, "calibrate", 1, target="hard"), BASE, "harder", None)
    assert swaps.items, swaps.problem
    assert swaps.tokens > 0 and swaps.raw
    for k, item in enumerate(swaps.items, start=1):
        assert item.question == BASE.question and item.answer == BASE.answer
        assert item.answer_text == BASE.answer_text
        changed = [i for i, (a, b) in enumerate(zip(item.choices, BASE.choices, strict=True)) if a != b]
        assert len(changed) == k and BASE.answer not in changed  # k distractor slots replaced, never the key


#: The item a cold `make demo` drew two broken fixes of (a stem replaced by a prompt line; options pasted
#: into the stem with bare letters left as options).
SKY = QAItem(id="astronomy-3", question="Why is the sky blue?",
             choices=["Its molecules are blue", "It reflects the oceans",
                      "The atmosphere scatters short wavelengths more", "It absorbs other colours"],
             answer=2, subject="astronomy")


def test_an_edit_that_puts_the_key_in_the_stem_is_refused_before_any_model_call(tmp_path: Path) -> None:
    """A fix rewrote "The equation ... is applicable" into "... is applicable only for constant pressure
    processes." (its key's text): the structural answer-leak check refuses it. A distractor rewrite of an
    item whose stem already named its key did not introduce the leak and is not refused for it."""
    ctx = make_ctx(tmp_path)
    original = QAItem(id="chem-5", question="The equation dH = dU + PdV is applicable",
                      choices=["always", "only for constant pressure processes",
                               "only for constant temperature processes", "only for constant volume processes"],
                      answer=1, subject="college_chemistry")
    ctx.store.load_items([original])
    leaked = original.model_copy(update={"question": original.question + " only for constant pressure processes."})
    problems = structural_problems(ctx, EditTask("e", original.id, "fix", 1), leaked)
    assert problems and problems[0].startswith("answer_leak:"), problems

    ctx.store.replace_item(leaked, "kept")  # the stem already leaks before the rewrite
    rewritten = leaked.model_copy(update={"choices": ["never", "only for constant pressure processes",
                                                      "only for isothermal expansions", "only for rigid vessels"]})
    assert structural_problems(ctx, EditTask("e", original.id, "rewrite_distractors", 1), rewritten) == []
    assert structural_problems(ctx, EditTask("new-1", original.id, "generate", 1),
                               leaked.model_copy(update={"id": "new-1"}))[0].startswith("answer_leak:")


def test_an_edit_that_replaces_the_stem_with_another_question_is_refused(tmp_path: Path) -> None:
    """A fresh `make demo` committed a fix whose stem "Why is the sky blue?" had become "This question was
    flagged: ok." (the prompt's own line): a reworded stem stands, a replaced one is refused (real MiniLM)."""
    ctx = make_ctx(tmp_path)
    ctx.hooks = RunHooks()  # the packaged MiniLM, not the tests' hash embedder
    original = SKY
    ctx.store.load_items([original])
    task = EditTask("e", original.id, "fix", 1)
    echoed = original.model_copy(update={"question": "This question was flagged: ok."})
    problems = structural_problems(ctx, task, echoed)
    assert problems and problems[0].startswith("stem_replaced:"), problems
    reworded = original.model_copy(update={"question": "What makes the daytime sky look blue?"})
    assert structural_problems(ctx, task, reworded) == []


def test_an_edit_that_leaves_bare_letters_as_options_is_refused(tmp_path: Path) -> None:
    """A cold `make demo` drew a fix of "Why is the sky blue?" that pasted the options into the stem and
    left "A", "B", "C", "D" as the options: the structural check refuses it before any model is asked. An
    item whose options were letters already (a figure's labelled points) is not refused for keeping them."""
    ctx = make_ctx(tmp_path)
    original = SKY
    ctx.store.load_items([original])
    pasted = original.model_copy(update={
        "question": original.question + " " + " ".join(f"{k}. {c}" for k, c in zip("ABCD", original.choices, strict=True)),
        "choices": ["A", "B", "C", "D"]})
    problems = structural_problems(ctx, EditTask("e", original.id, "fix", 1), pasted)
    assert problems and problems[0].startswith("label_only_options:"), problems

    lettered = QAItem(id="graph-1", question="Which labelled point of the curve is its maximum?",
                      choices=["A", "B", "C", "D"], answer=1, subject="high_school_mathematics")
    ctx.store.load_items([lettered])
    reworded = lettered.model_copy(update={"question": "At which labelled point does the curve peak?"})
    assert structural_problems(ctx, EditTask("e", lettered.id, "fix", 1), reworded) == []


def test_a_fix_the_screen_did_not_label_is_not_told_it_was_flagged_ok(tmp_path: Path) -> None:
    from refinelab.agents.refiner import prompt_for

    ctx = make_ctx(tmp_path)
    ctx.store.put_diagnostics([Diagnostic(item_id=BASE.id, check="error", flag=False, score=0.3,
                                          evidence={"p_error": 0.3, "error_label": "ok"})])
    text = prompt_for(ctx, EditTask("e", BASE.id, "fix", 1), BASE)[-1]["content"]
    assert "flagged: ok" not in text and "its key may be wrong" in text
