"""Panel answers as probabilities: the logprob reader (recorded and real server), permutation alignment,
planted errors, the fitted screen and `screen()` end to end, and the evidence bar for key fixes."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from refinelab.agents.options import RunHooks
from refinelab.agents.panel import probe_member
from refinelab.agents.validation.fix_evidence import KeySource, check_fix, decide
from refinelab.agents.validation.strength import review_kind
from refinelab.api.screening import screen
from refinelab.config import load_settings
from refinelab.errors import DataError, LLMCallFailed
from refinelab.metrics.injection import INJECTORS, inject
from refinelab.metrics.option_probs import align, letter_distribution, permuted, presentation_orders
from refinelab.metrics.screening_model import ScreeningModel, fit_screening_model, item_features
from refinelab.schema import Dataset, QAItem
from refinelab.state import Verdict
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.pa_helpers import make_context
from tests.support.scripted_model import ScriptedChatModel, logprobs_block

RECORDED = Path(__file__).parent / "data" / "llamacpp_logprobs_response.json"


def _item(i: int = 0, answer: int = 1) -> QAItem:
    return QAItem(id=f"q{i:02d}", question=f"Which city is the capital of country number {i} in this long list?",
                  choices=[f"Alpha{i}", f"Bravo{i}", f"Charlie{i}", f"Delta{i}"], answer=answer, subject="geography")


# ------------------------------------------------------------------------------ the logprob reader

class _Recorded(BaseHTTPRequestHandler):
    body: bytes = b""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def replay() -> Iterator[callable]:
    servers: list[ThreadingHTTPServer] = []

    def start(body: dict) -> str:
        handler = type("H", (_Recorded,), {"body": json.dumps(body).encode()})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()


def _client(tmp_path: Path, url: str) -> ChatClient:
    from langchain_openai import ChatOpenAI

    from refinelab.config import ModelSpec

    spec = ModelSpec(endpoint=url, model="recorded", max_parse_retries=0, max_transport_retries=0)
    chat = ChatOpenAI(base_url=url, api_key="sk-test", model="recorded", max_retries=0, temperature=0)
    return ChatClient(spec, Ledger(tmp_path / "ledger.sqlite"), chat_model=chat, role="panel:recorded")


def test_recorded_llamacpp_response_reads_as_an_option_distribution(tmp_path: Path, replay) -> None:
    body = json.loads(RECORDED.read_text())
    client = _client(tmp_path, replay(body))
    result = client.first_token_logprobs([{"role": "user", "content": "7 x 8?"}], CallTag("profile", "panel", "q"))
    probs, mass = letter_distribution(result.top_logprobs or [], 4)
    assert math.isclose(sum(probs), 1.0) and 0.9 < mass <= 1.0
    recorded = {t["token"]: t["logprob"] for t in body["choices"][0]["logprobs"]["content"][0]["top_logprobs"]}
    assert probs[3] > probs[1] > probs[2] > probs[0]  # D, B, C, A: the order the server gave them
    # "b", " B" and the like add a little to their letter, so the ratio is close to, not exactly, the upper-case one
    assert math.isclose(probs[3] / probs[1], math.exp(recorded["D"] - recorded["B"]), rel_tol=0.01)
    assert client.ledger.spent == body["usage"]["total_tokens"]  # settled from the server's usage


@pytest.mark.parametrize("logprobs", [None, {"content": []}, {"content": [{"token": 5, "logprob": "x"}]},
                                      {"content": "garbage"}])
def test_a_response_without_usable_logprobs_fails_loudly(tmp_path: Path, replay, logprobs) -> None:
    body = json.loads(RECORDED.read_text())
    body["choices"][0]["logprobs"] = logprobs
    client = _client(tmp_path, replay(body))
    with pytest.raises(LLMCallFailed, match="no logprobs"):
        client.first_token_logprobs([{"role": "user", "content": "?"}], CallTag("profile", "panel", "q"))


def test_letter_reading_ignores_non_letters_and_reports_mass() -> None:
    top = [("B", math.log(0.5)), (" B", math.log(0.1)), ("The", math.log(0.3)), ("E", math.log(0.05)),
           ("a", math.log(0.05))]
    probs, mass = letter_distribution(top, 4)
    assert math.isclose(mass, 0.65) and math.isclose(probs[1], 0.6 / 0.65) and math.isclose(probs[0], 0.05 / 0.65)
    assert letter_distribution([("The", -0.1)], 4) == ([0.0] * 4, 0.0)


FORCED = Path(__file__).parent / "data" / "llamacpp_forced_reply.json"


def test_recorded_forced_reply_reads_every_tokens_logprob(tmp_path: Path, replay) -> None:
    """A llama.cpp reply forced to "Lyon city" by a grammar (recorded from the embedded 1.5B): each token
    with the model's own logprob, then the end-of-turn token, which the text's score leaves out."""
    from refinelab.agents.panel import text_logprob

    body = json.loads(FORCED.read_text())
    client = _client(tmp_path, replay(body))
    result = client.forced_text_logprobs([{"role": "user", "content": "Capital of France?"}], "Lyon city",
                                         CallTag("profile", "panel", "q"))
    entries = body["choices"][0]["logprobs"]["content"]
    assert [t for t, _ in result.token_logprobs] == [e["token"] for e in entries] and entries[-1]["token"] == ""
    assert math.isclose(text_logprob(result), sum(e["logprob"] for e in entries[:-1]))
    assert client.ledger.spent == body["usage"]["total_tokens"]


def test_a_reply_the_endpoint_did_not_force_fails_loudly(tmp_path: Path, replay) -> None:
    body = json.loads(FORCED.read_text())  # an endpoint without grammars answers what it likes
    body["choices"][0]["message"]["content"] = "Paris"
    body["choices"][0]["logprobs"]["content"] = body["choices"][0]["logprobs"]["content"][:1]
    client = _client(tmp_path, replay(body))
    with pytest.raises(LLMCallFailed, match="did not score a forced reply"):
        client.forced_text_logprobs([{"role": "user", "content": "?"}], "Lyon city", CallTag("profile", "panel", "q"))


def test_a_cloze_member_scores_wording_against_its_prior_whatever_the_order(tmp_path: Path) -> None:
    """PMI, not likelihood: "Alpha" is the likeliest text anywhere, so after the stem it is likely too, but
    the stem raises "Bravo" most. The prior prompt holds no stem; the options' order changes nothing."""
    from refinelab.agents.panel import cloze_member

    item = _item(answer=1)
    asked: list[bool] = []

    def forced(messages: list[dict[str, str]], text: str) -> list[tuple[str, float]]:
        with_stem = item.question in messages[-1]["content"]
        asked.append(with_stem)
        prior = {"Alpha0": -1.0, "Bravo0": -6.0, "Charlie0": -4.0, "Delta0": -4.0}[text]
        lift = {"Alpha0": 0.5, "Bravo0": 5.0, "Charlie0": 0.0, "Delta0": 1.0}[text] if with_stem else 0.0
        return [(text[:3], prior + lift), (text[3:], 0.0), ("", -0.1)]

    member = ScriptedChatModel(respond=lambda m: "{}", respond_forced=forced)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"cloze:m": member},
                       options={"panel": ["cloze:m"], "panel_method": "logprobs"})
    probe = cloze_member(ctx, "cloze:m", item)
    assert probe.choice == 1 and math.isclose(sum(probe.probs), 1.0) and probe.probs[0] < probe.probs[3]
    assert sorted(asked) == [False] * 4 + [True] * 4 and probe.tokens > 0 and len(probe.per_order) == 1
    shuffled = permuted(item, [3, 2, 1, 0])
    again = cloze_member(ctx, "cloze:m", shuffled)
    assert [round(p, 9) for p in align(again.probs, [3, 2, 1, 0])] == [round(p, 9) for p in probe.probs]


def test_a_cloze_member_answers_in_the_letter_method_too(tmp_path: Path) -> None:
    """`panel_method="letter"` is for endpoints without logprobs; a cloze member has no letter to ask."""
    from refinelab.agents.panel import answer_panel

    def forced(messages: list[dict[str, str]], text: str) -> list[tuple[str, float]]:
        after_stem = "capital" in messages[-1]["content"]
        return [(text, -1.0 if after_stem and text == "Charlie0" else -3.0)]

    member = ScriptedChatModel(respond=lambda m: "{}", respond_forced=forced)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"cloze:m": member},
                       options={"panel": ["cloze:m"], "panel_method": "letter"})
    item = _item(answer=1)
    ctx.store.load_items([item])
    diagnostic = answer_panel(ctx, item, ["cloze:m"])
    assert diagnostic.evidence["answers"] == {"cloze:m": 2} and "cloze:m" in diagnostic.evidence["probs"]


# ------------------------------------------------------------------------------ orders and alignment

def test_orders_and_alignment_map_positions_back_to_options() -> None:
    assert presentation_orders(4, 2) == [[0, 1, 2, 3], [3, 2, 1, 0]]
    assert presentation_orders(4, 3)[2] == [1, 2, 3, 0]
    item = _item(answer=1)
    shown = permuted(item, [3, 2, 1, 0])
    assert shown.choices[2] == item.choices[1] and shown.answer == 2
    assert align([0.7, 0.1, 0.1, 0.1], [3, 2, 1, 0]) == [0.1, 0.1, 0.1, 0.7]


def _by_text(truth: dict[str, str]) -> ScriptedChatModel:
    """An order-aware member: puts 0.9 on the letter now showing the option text it believes right."""
    def respond(messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        lines = [ln for ln in text.splitlines() if len(ln) > 2 and ln[1:3] == ". "]
        wanted = next(v for k, v in truth.items() if k in text)
        letter = next(ln[0] for ln in lines if ln[3:].strip() == wanted)
        return logprobs_block({letter: 0.9, **{x: 0.025 for x in "ABCD" if x != letter}, "The": 0.025})
    return ScriptedChatModel(respond=respond)


def _always_a() -> ScriptedChatModel:
    return ScriptedChatModel(respond=lambda m: logprobs_block({"A": 0.8, "B": 0.1, "C": 0.05, "D": 0.05}))


def test_debiased_probe_follows_the_option_not_the_position(tmp_path: Path) -> None:
    item = _item(answer=1)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"knows": _by_text({"number 0": "Charlie0"}), "biased": _always_a()},
                       options={"panel": ["knows", "biased"], "panel_method": "logprobs"})
    knows = probe_member(ctx, "knows", item)
    assert knows.choice == 2 and knows.probs[2] > 0.85 and not knows.as_evidence()["flip"]
    biased = probe_member(ctx, "biased", item)  # A in the original order is Alpha, in reverse it is Delta
    assert math.isclose(biased.probs[0], biased.probs[3]) and biased.as_evidence()["flip"]
    assert biased.probs[1] < 0.2  # a position preference no longer looks like support for the key


def _recording(seen: list[list[dict[str, str]]]) -> ScriptedChatModel:
    def respond(messages: list[dict[str, str]]) -> str:
        seen.append(messages)
        return logprobs_block({"A": 0.4, "B": 0.3, "C": 0.2, "D": 0.1})
    return ScriptedChatModel(respond=respond)


def test_solved_examples_come_first_from_the_subjects_first_input_items(tmp_path: Path) -> None:
    """`panel_shots`: each probe shows the first input items of the item's subject as earlier turns answered
    by their keys, the item itself left out, the same in every option order (one cached prefix)."""
    seen: list[list[dict[str, str]]] = []
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"m": _recording(seen)},
                       options={"panel": ["m"], "panel_method": "logprobs", "panel_shots": 2})
    other = QAItem(id="h0", question="Which year did the war of some succession in this question end?",
                   choices=["1714", "1715", "1716", "1717"], answer=0, subject="history")
    geography = [_item(i, answer=i % 4) for i in range(4)]
    planted = _item(7).model_copy(update={"id": "q07#inject:wrong_key", "metadata": {"injected": "wrong_groundtruth"}})
    ctx.store.load_items([planted, other, *geography])  # a planted copy is never an example
    probe_member(ctx, "m", geography[3])
    assert len(seen) == 2
    for messages in seen:
        roles = [m["role"] for m in messages]
        assert roles == ["system", "user", "assistant", "user", "assistant", "user"], roles
        assert "number 0" in messages[1]["content"] and messages[2]["content"] == "A"  # q00, keyed A
        assert "number 1" in messages[3]["content"] and messages[4]["content"] == "B"  # q01, keyed B
        assert "number 3" in messages[5]["content"] and "succession" not in str(messages)
        assert "number 7" not in str(messages)
    assert seen[0][:5] == seen[1][:5] and seen[0][5] != seen[1][5]  # one prefix; the item's order differs
    seen.clear()
    probe_member(ctx, "m", geography[0])  # an example is never shown its own answer: the spare takes its place
    assert "number 1" in seen[0][1]["content"] and "number 2" in seen[0][3]["content"]
    assert "number 0" in seen[0][-1]["content"] and all("number 0" not in m["content"] for m in seen[0][1:5])
    seen.clear()
    copy = geography[1].model_copy(update={"id": "copy-of-q01", "answer": 3})  # the same stem under another id
    probe_member(ctx, "m", copy)
    assert all("number 1" not in m["content"] for m in seen[0][1:5]) and "number 1" in seen[0][-1]["content"]


def test_no_examples_unless_asked(tmp_path: Path) -> None:
    seen: list[list[dict[str, str]]] = []
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"m": _recording(seen)},
                       options={"panel": ["m"], "panel_method": "logprobs"})
    ctx.store.load_items([_item(i) for i in range(3)])
    probe_member(ctx, "m", _item(2))
    assert [[m["role"] for m in messages] for messages in seen] == [["system", "user"]] * 2


# ------------------------------------------------------------------------------ planted errors

def test_every_injector_keeps_the_item_valid_and_plants_its_error() -> None:
    items = [_item(i, answer=i % 4) for i in range(12)]
    pool = [c for it in items for c in it.choices]
    import random

    for name, injector in INJECTORS.items():
        for item in items:
            planted = injector(item, random.Random(0), pool)
            assert planted is not None, name
            QAItem.model_validate(planted.model_dump())  # still a valid item
            assert planted.metadata["injected"] == name and planted.id.endswith(f"#inject:{name}")
            if name == "wrong_groundtruth":
                assert planted.answer != item.answer and planted.choices == item.choices
            if name == "no_correct_answer":
                assert item.answer_text not in planted.choices
            if name == "multiple_correct_answers":
                assert sum(item.answer_text.lower().rstrip(".") in c.lower() for c in planted.choices) == 2
            if name == "bad_question_clarity":
                assert len(planted.question) < len(item.question)
    assert {p.metadata["injected"] for p in inject(items)} == set(INJECTORS)
    from refinelab.metrics.error_checks import ERROR_TYPES

    assert sorted(INJECTORS) == sorted(ERROR_TYPES)  # one injector for each type of the taxonomy, no other


# ------------------------------------------------------------------------------ the fitted screen

def test_combiner_separates_planted_wrong_keys_and_round_trips_as_json(tmp_path: Path) -> None:
    rows, labels = [], []
    for i in range(40):
        wrong = i % 2 == 0
        key_p = 0.2 if wrong else 0.8
        pooled = [key_p] + [(1 - key_p) / 3] * 3
        rows.append(item_features(_item(i, answer=0), {"pooled": pooled, "probs": {"m": {"p": pooled}}}, ["m"]))
        labels.append("wrong_groundtruth" if wrong else "ok")
    model = fit_screening_model(rows, labels)
    p = model.p_error(rows)
    assert min(p[0::2]) > max(p[1::2])
    model.save(tmp_path / "m.json")
    again = ScreeningModel.load(tmp_path / "m.json")
    assert again.p_error(rows[:2]) == pytest.approx(p[:2])
    (tmp_path / "bad.json").write_text(json.dumps({**model.to_json(), "coef": [1.0]}))
    with pytest.raises(DataError, match="bad.json"):
        ScreeningModel.load(tmp_path / "bad.json")
    # a calibration file is untrusted: a NaN intercept would make every p_error NaN and flag nothing, silently
    for name, text in (("nan.json", json.dumps({**model.to_json(), "intercept": float("nan")})),
                       ("inf.json", json.dumps({**model.to_json(), "error_types": {"t": [float("inf")] * len(model.features)}})),
                       ("deep.json", "[" * 10_000 + "]" * 10_000)):
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=name):
            ScreeningModel.load(tmp_path / name)


def test_text_features_read_the_stem_and_the_key_and_the_shipped_model_uses_them() -> None:
    import refinelab
    from refinelab.metrics.screening_model import SHIPPED_FEATURES

    framed = QAItem(id="f", question="Which of the following is a prime?", choices=["4", "6", "7", "9"], answer=2)
    bare = QAItem(id="b", question="The capital of France", choices=["Paris", "a large river in Spain",
                                                                     "a small town in Peru", "a mountain"], answer=0)
    f, b = item_features(framed, None), item_features(bare, None)
    assert (f["stem_cites_context"], f["stem_is_question"]) == (1.0, 1.0)
    assert (b["stem_cites_context"], b["stem_is_question"]) == (0.0, 0.0)
    assert f["key_length_ratio"] == pytest.approx(0.0) and b["key_length_ratio"] < -0.5  # short key vs long options
    shipped = ScreeningModel.load(Path(refinelab.__file__).parent / "data" / "screening_model.json")
    assert shipped.features == list(SHIPPED_FEATURES)
    # a row missing a feature reads it as the fitting mean: same score as a row holding the mean
    row = item_features(framed, None)
    held = {**row, shipped.features[-1]: shipped.mean[-1]}
    del row[shipped.features[-1]]
    assert shipped.p_error([row]) == pytest.approx(shipped.p_error([held]))


def test_screen_calibrates_on_the_users_items_and_writes_one_line_per_item(tmp_path: Path) -> None:
    items = [_item(i, answer=i % 4) for i in range(30)]
    truth = {f"number {i} ": it.answer_text for i, it in enumerate(items)}
    member = _by_text(truth)
    settings = load_settings(overrides={"cache_path": str(tmp_path / "c.sqlite")})
    result = screen(Dataset(name="toy", items=items), out_dir=tmp_path / "scr", settings=settings,
                    options={"panel": ["knows"], "validate_suspects": False}, calibrate_sample=20,
                    hooks=RunHooks(chat_models={"panel:knows": member}))
    lines = [json.loads(x) for x in result.path.read_text().splitlines()]
    assert [x["id"] for x in lines] == [i.id for i in items]
    assert set(lines[0]) == {"id", "p_error", "flag", "error_type", "p_options", "evidence"}
    calibration = json.loads((tmp_path / "scr" / "calibration.json").read_text())
    assert calibration["estimates"]["per_type"]["wrong_groundtruth"]["recall"] > 0.5
    summary = json.loads((tmp_path / "scr" / "summary.json").read_text())
    assert summary["screened"] == 30 and summary["tokens_spent"] > 0
    assert summary["calibration"]["target_reached"] == calibration["target_reached"]
    assert set(calibration["scores"]) == {"clean", "planted"} and calibration["error_mix"]["weights"]
    assert summary["flagged"] <= 3  # the member agrees with every (correct) key


def test_a_calibration_the_budget_cut_before_any_planted_copy_is_a_clear_error(tmp_path: Path) -> None:
    items = [_item(i, answer=i % 4) for i in range(30)]
    truth = {f"number {i} ": it.answer_text for i, it in enumerate(items)}
    settings = load_settings(overrides={"cache_path": str(tmp_path / "c.sqlite"), "roles": {"judge": {"concurrency": 1}}})
    with pytest.raises(DataError, match="calibration could not be fitted"):
        screen(Dataset(name="toy", items=items), out_dir=tmp_path / "scr", settings=settings, budget=1500,
               options={"panel": ["knows"]}, calibrate_sample=20,
               hooks=RunHooks(chat_models={"panel:knows": _by_text(truth)}))
    assert not (tmp_path / "scr" / "calibration.json").exists()


def test_screen_stops_at_its_budget_and_says_so(tmp_path: Path) -> None:
    items = [_item(i) for i in range(12)]
    truth = {f"number {i} ": it.answer_text for i, it in enumerate(items)}
    model = fit_screening_model(
        [{"pooled_p_key": 0.9}, {"pooled_p_key": 0.1}, {"pooled_p_key": 0.8}, {"pooled_p_key": 0.2}],
        ["ok", "wrong_groundtruth", "ok", "wrong_groundtruth"])
    model.save(tmp_path / "model.json")
    settings = load_settings(overrides={"cache_path": str(tmp_path / "c.sqlite"), "roles": {"judge": {"concurrency": 1}}})
    result = screen(Dataset(name="toy", items=items), out_dir=tmp_path / "scr", settings=settings, budget=1000,
                    options={"panel": ["knows"]}, calibration=tmp_path / "model.json",
                    hooks=RunHooks(chat_models={"panel:knows": _by_text(truth)}))
    assert result.summary["stopped"] == "budget" and 0 < result.summary["screened"] < 12
    assert result.summary["tokens_spent"] <= 1000
    assert sum(1 for x in result.rows if x["p_error"] is None) == 12 - result.summary["screened"]


# ------------------------------------------------------------------------------ the fix evidence bar

def test_the_fix_rule_refuses_single_source_evidence() -> None:
    agree = KeySource("panel", "agrees")
    assert not decide([agree, KeySource("validator:answer", "abstains")]).commit
    assert not decide([agree]).commit
    assert not decide([agree, KeySource("validator:rag", "agrees"), KeySource("x", "contradicts")]).commit
    assert decide([agree, KeySource("validator:rag", "agrees")]).commit


def test_a_fix_validated_only_by_the_writers_own_model_is_not_committed(tmp_path: Path) -> None:
    original = _item(3, answer=0)
    candidate = original.model_copy(update={"answer": 2})
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"knows": _by_text({"number 3": "Charlie3"})},
                       options={"panel": ["knows"], "panel_method": "logprobs"})
    passed = Verdict(True, "independent answer matches the key", "answer", outcome="answered")
    verdict = check_fix(ctx, original, candidate, passed)  # the validator is the writer's model here
    assert not verdict.passed and verdict.evidence["needs_review"]
    stances = {s["name"]: s["stance"] for s in verdict.evidence["fix_rule"]["sources"]}
    assert stances == {"validator:answer": "abstains", "panel": "agrees"}
    rag = Verdict(True, "passages support the key", "rag", {"rag_verdict": "supported"}, outcome="supported")
    assert check_fix(ctx, original, candidate, rag).passed  # retrieval + panel: two independent sources
    wrong = original.model_copy(update={"answer": 1})
    refused = check_fix(ctx, original, wrong, rag)  # the panel names another option
    assert not refused.passed and "panel" in refused.reason


def test_a_fix_that_keeps_a_doubted_key_needs_one_independent_source_beside_the_dataset(tmp_path: Path) -> None:
    """A wording repair asserts the key is right: the dataset's key and one independent source must agree.
    The writer's own model agreeing is not that source (it committed a reworded stem with an injected wrong
    key in the correction eval)."""
    original = _item(3, answer=0)
    reworded = original.model_copy(update={"question": original.question + " (reworded)"})
    passed = Verdict(True, "independent answer matches the key", "answer", outcome="answered")
    rag = Verdict(True, "passages support the key", "rag", {"rag_verdict": "supported"}, outcome="supported")
    plain = make_context(tmp_path / "a", ScriptedChatModel(respond=lambda m: "{}"))  # no panel configured
    own = check_fix(plain, original, reworded, passed)
    assert not own.passed and own.evidence["needs_review"] and "fix keeping the key not committed" in own.reason
    assert check_fix(plain, original, reworded, rag).passed  # retrieval backs the kept key
    doubting = make_context(tmp_path / "b", ScriptedChatModel(respond=lambda m: "{}"),
                            panel={"knows": _by_text({"number 3": "Charlie3"})},
                            options={"panel": ["knows"], "panel_method": "logprobs"})
    against = check_fix(doubting, original, reworded, rag)  # the panel clearly names another option
    assert not against.passed and "panel" in against.reason


def test_a_cloze_member_is_no_fix_evidence(tmp_path: Path) -> None:
    """Its reading was never measured as evidence for a key: the plain panel's lead is the letter members' alone."""
    from refinelab.agents.validation.fix_evidence import panel_sources

    candidate = _item(3, answer=2)
    cloze = ScriptedChatModel(respond=lambda m: "{}",
                              respond_forced=lambda m, text: [(text, -0.1 if text == "Bravo3" else -9.0)])
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"),
                       panel={"knows": _by_text({"number 3": "Charlie3"}), "cloze:m": cloze},
                       options={"panel": ["knows", "cloze:m"], "panel_method": "logprobs"})
    (source,) = panel_sources(ctx, candidate)
    assert source.name == "panel" and source.stance == "agrees" and source.detail["members"] == ["knows"]
    assert cloze.calls == 0


def test_a_panel_of_cloze_members_only_abstains_and_says_why(tmp_path: Path) -> None:
    from refinelab.agents.validation.fix_evidence import panel_sources

    cloze = ScriptedChatModel(respond=lambda m: "{}", respond_forced=lambda m, text: [(text, -0.1)])
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"cloze:m": cloze},
                       options={"panel": ["cloze:m"], "panel_method": "logprobs"})
    (source,) = panel_sources(ctx, _item(3, answer=2))
    assert source.stance == "abstains" and "cloze" in source.detail["why"]
    assert cloze.calls == 0


def test_a_retrieval_conditioned_member_is_a_second_source_only_when_it_read_a_passage(tmp_path: Path) -> None:
    original = _item(3, answer=0)
    candidate = original.model_copy(update={"answer": 2})
    passed = Verdict(True, "independent answer matches the key", "answer", outcome="answered")
    searches: list[str] = []

    def passages(item: QAItem) -> str:
        searches.append(item.id)
        return "[p1] Charlie3 is the capital of country number 3." if "number 3" in item.question else ""

    def ctx_with(rag_member: ScriptedChatModel, with_passages: bool = True):
        run = tmp_path / f"run{len(list(tmp_path.iterdir()))}"  # its own response cache
        run.mkdir()
        ctx = make_context(run, ScriptedChatModel(respond=lambda m: "{}"),
                           panel={"knows": _by_text({"number 3": "Charlie3"}), "rag:knows": rag_member},
                           options={"panel": ["knows", "rag:knows"], "panel_method": "logprobs"})
        ctx.hooks.passages = passages if with_passages else (lambda item: "")
        return ctx

    verdict = check_fix(ctx_with(_by_text({"number 3": "Charlie3"})), original, candidate, passed)
    stances = {s["name"]: s["stance"] for s in verdict.evidence["fix_rule"]["sources"]}
    assert stances == {"validator:answer": "abstains", "panel": "agrees", "retrieval": "agrees"}
    assert verdict.passed  # the plain panel and the passages' reading: two sources
    assert len(searches) == 1  # retrieved once: the relevance check and the members' probes share it
    against = check_fix(ctx_with(_by_text({"number 3": "Bravo3"})), original, candidate, passed)
    assert not against.passed and against.evidence["needs_review"] and "retrieval" in against.reason
    blind = check_fix(ctx_with(_by_text({"number 3": "Charlie3"}), with_passages=False), original, candidate, passed)
    assert not blind.passed  # no passage: the rag member knows only what the panel knows
    assert {s["name"]: s["stance"] for s in blind.evidence["fix_rule"]["sources"]}["retrieval"] == "abstains"
    rag_verdict = Verdict(True, "passages support the key", "rag", {"rag_verdict": "supported"}, outcome="supported")
    # the validator's RAG judge and the rag member read the same kind of evidence: counted once
    once = check_fix(ctx_with(_by_text({"number 3": "Charlie3"})), original, candidate, rag_verdict)
    assert [s["name"] for s in once.evidence["fix_rule"]["sources"]] == ["validator:rag", "panel"]


def test_a_rag_members_query_names_every_option_and_drops_off_topic_passages(tmp_path: Path) -> None:
    from refinelab.agents.panel import retrieved_passages
    from refinelab.tools.corpus import Passage
    from refinelab.tools.retrieval import Retriever

    queries: list[str] = []

    class Recording(Retriever):
        def __init__(self, scores: list[float]) -> None:  # no index: search is scripted
            self.scores, self.passages = scores, []  # empty, and still the retriever used

        def search(self, query: str, k: int = 5) -> list[Passage]:
            queries.append(query)
            return [Passage(id=f"w:{i}", title="T", text=f"passage {i}", source="w", score=s)
                    for i, s in enumerate(self.scores)][:k]

    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"))
    item, moved = _item(5, answer=0), _item(5, answer=2)
    ctx.hooks.retriever = Recording([0.6, 0.1])
    assert retrieved_passages(ctx, item) == retrieved_passages(ctx, moved)  # the key does not steer retrieval
    assert all(all(c in q for c in item.choices) for q in queries)
    assert "passage 0" in retrieved_passages(ctx, item) and "passage 1" not in retrieved_passages(ctx, item)
    ctx.hooks.retriever = Recording([0.05])
    assert retrieved_passages(ctx, item) == ""


def test_a_fix_the_validator_refused_goes_to_review_not_silently_kept(tmp_path: Path) -> None:
    original = _item(3, answer=0)
    draft = original.model_copy(update={"answer": 2})
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"))
    refused = Verdict(False, "an independent solver chose B, not the key C", "answer", {"solver": 1},
                      outcome="answered")
    verdict = check_fix(ctx, original, draft, refused)
    assert not verdict.passed and verdict.evidence["needs_review"] and verdict.evidence["solver"] == 1
    assert review_kind(verdict, 0.0) == "below_bar"
    undecided = Verdict(False, "the validator could not answer", "answer", outcome="unanswered")
    assert "needs_review" not in check_fix(ctx, original, draft, undecided).evidence
    assert review_kind(check_fix(ctx, original, draft, undecided), 0.0) == "undecided"


# ------------------------------------------------------------------------------ the real server

@pytest.mark.llm
@pytest.mark.timeout(600)
def test_probe_on_the_real_embedded_server(embedded_server, tmp_path: Path) -> None:
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0.0, max_tokens=1, max_retries=0)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"smollm2-135m": chat},
                       options={"panel": ["smollm2-135m"], "panel_method": "logprobs"})
    item = QAItem(id="mul", question="What is 7 times 8?", choices=["54", "56", "58", "64"], answer=1)
    probe = probe_member(ctx, "smollm2-135m", item)
    assert len(probe.per_order) == 2 and math.isclose(sum(probe.probs), 1.0, rel_tol=1e-6)
    assert 0.0 < probe.mass <= 1.0 and probe.tokens > 0
    assert ctx.ledger.spent == probe.tokens  # both orders settled from the server's usage


@pytest.mark.llm
@pytest.mark.timeout(600)
def test_probe_with_solved_examples_on_the_real_embedded_server(embedded_server, tmp_path: Path) -> None:
    """The embedded llama.cpp server reads earlier user/assistant turns and still answers the probe with a
    letter distribution: the examples cost prompt tokens, and the second order reuses the first's prefix."""
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0.0, max_tokens=1, max_retries=0)
    options = {"panel": ["smollm2-135m"], "panel_method": "logprobs"}
    plain = make_context(tmp_path / "plain", ScriptedChatModel(respond=lambda m: "{}"),
                         panel={"smollm2-135m": chat}, options=options)
    shots = make_context(tmp_path / "shots", ScriptedChatModel(respond=lambda m: "{}"),
                         panel={"smollm2-135m": chat}, options={**options, "panel_shots": 2})
    examples = [QAItem(id=f"e{n}", question=f"What is {n} plus {n}?", choices=[str(n), str(2 * n), str(3 * n), "0"],
                       answer=1, subject="arithmetic") for n in (3, 4)]
    item = QAItem(id="mul", question="What is 7 times 8?", choices=["54", "56", "58", "64"], answer=1,
                  subject="arithmetic")
    for ctx in (plain, shots):
        ctx.store.load_items([*examples, item])
    without, with_examples = probe_member(plain, "smollm2-135m", item), probe_member(shots, "smollm2-135m", item)
    for probe in (without, with_examples):
        assert len(probe.per_order) == 2 and math.isclose(sum(probe.probs), 1.0, rel_tol=1e-6) and probe.mass > 0
    assert with_examples.tokens > without.tokens + 40  # the two examples were sent, in both orders


@pytest.mark.llm
@pytest.mark.timeout(600)
def test_cloze_member_on_the_real_embedded_server(embedded_server, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways a member reaches llama.cpp: the HTTP transport (an endpoint URL) and a LangChain chat
    model (the grammar in `extra_body`). The server forces the text, quotes and newlines included."""
    from langchain_openai import ChatOpenAI

    from refinelab.agents.panel import cloze_member
    from refinelab.config import ModelSpec

    monkeypatch.setenv("OPENAI_API_KEY", "sk-local")  # an endpoint URL needs a key; the local server ignores it
    spec = ModelSpec(endpoint=embedded_server.base_url, model="smollm2-135m", max_tokens=64)
    client = ChatClient(spec, Ledger(tmp_path / "ledger.sqlite"), role="panel:cloze:smollm2-135m")
    odd = 'He said "no"\nthen left \\ twice'
    result = client.forced_text_logprobs([{"role": "user", "content": "What happened?"}], odd,
                                         CallTag("profile", "panel", "q"))
    assert result.text == odd and all(lp <= 0.0 for _, lp in result.token_logprobs or [])
    assert client.ledger.spent == result.tokens > 0
    chat = ChatOpenAI(base_url=embedded_server.base_url, api_key="sk-local", model="smollm2-135m",
                      temperature=0.0, max_tokens=64, max_retries=0)
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"cloze:smollm2-135m": chat},
                       options={"panel": ["cloze:smollm2-135m"], "panel_method": "logprobs"})
    item = QAItem(id="mul", question="What is the capital of France?", choices=["Berlin", "Paris", "Rome", "Madrid"],
                  answer=1)
    probe = cloze_member(ctx, "cloze:smollm2-135m", item)
    assert math.isclose(sum(probe.probs), 1.0, rel_tol=1e-6) and probe.tokens > 0
    assert ctx.ledger.spent == probe.tokens  # 8 forced replies, each settled from the server's usage


def test_a_wrong_key_is_moved_to_the_panels_clear_favourite_without_the_writer(tmp_path: Path) -> None:
    from refinelab.agents.refiner import refine
    from refinelab.schema import Diagnostic
    from refinelab.state import EditTask

    writer = ScriptedChatModel(respond=lambda m: "{}")
    ctx = make_context(tmp_path, writer, options={"panel_method": "logprobs"})
    item = _item(5, answer=0)
    ctx.store.load_items([item, _item(6, answer=0)])
    ctx.store.put_diagnostics([
        Diagnostic(item_id=item.id, check="panel", flag=True, score=0.0,
                   evidence={"answers": {"m": 2}, "pooled": [0.1, 0.1, 0.7, 0.1]}),
        Diagnostic(item_id="q06", check="panel", flag=False, score=1.0,
                   evidence={"answers": {"m": 2}, "pooled": [0.3, 0.2, 0.35, 0.15]})])
    moved = refine(ctx, EditTask(edit_id="e1", item_id=item.id, operation="fix", round=1))
    assert moved.item is not None and moved.item.answer == 2 and moved.tokens == 0 and writer.calls == 0
    assert moved.item.choices == item.choices and moved.item.question == item.question
    thin = refine(ctx, EditTask(edit_id="e2", item_id="q06", operation="fix", round=1))
    # margin 0.05: the panel doubts the key but names no clear alternative; the writer is not asked
    assert thin.abstained and thin.item is None and writer.calls == 0 and "doubts the key A" in thin.error
    # a lead of 0.20 is not clear either: on labelled data the favourite was right 87% of the time at 0.20
    ctx.store.load_items([_item(9, answer=0)])
    ctx.store.put_diagnostics([Diagnostic(item_id="q09", check="panel", flag=True, score=0.0,
                                          evidence={"answers": {"m": 2}, "pooled": [0.1, 0.1, 0.5, 0.3]})])
    lead = refine(ctx, EditTask(edit_id="e3", item_id="q09", operation="fix", round=1))
    assert lead.abstained and lead.item is None and writer.calls == 0


def _leaning(wanted: str, runner_up: str, p_wanted: float, p_runner_up: float) -> ScriptedChatModel:
    """A member that prefers the option text `wanted` over `runner_up` by a set lead, in every order."""
    def respond(messages: list[dict[str, str]]) -> str:
        lines = [ln for ln in messages[-1]["content"].splitlines() if len(ln) > 2 and ln[1:3] == ". "]
        rest = (1 - p_wanted - p_runner_up) / (len(lines) - 2)
        return logprobs_block({ln[0]: p_wanted if ln[3:].strip() == wanted else
                               p_runner_up if ln[3:].strip() == runner_up else rest for ln in lines})
    return ScriptedChatModel(respond=respond)


def test_two_sources_agree_with_a_moved_key_only_at_the_lead_measured_on_labelled_data(tmp_path: Path) -> None:
    # a lead of 0.20 for the new key from both the panel and the retrieval member: on MMLU-Redux dev the
    # 1.5B's favourite was right 87% of the time at that lead, so neither counts as agreeing
    original = _item(3, answer=0)
    candidate = original.model_copy(update={"answer": 2})
    passed = Verdict(True, "independent answer matches the key", "answer", outcome="answered")

    def verdict_with(p_wanted: float, p_runner_up: float) -> Verdict:
        run = tmp_path / f"run{p_wanted}"
        run.mkdir()
        member = _leaning("Charlie3", "Alpha3", p_wanted, p_runner_up)
        ctx = make_context(run, ScriptedChatModel(respond=lambda m: "{}"), panel={"m": member, "rag:m": member},
                           options={"panel": ["m", "rag:m"], "panel_method": "logprobs"})
        ctx.hooks.passages = lambda item: "[p1] Charlie3 is the capital of country number 3."
        return check_fix(ctx, original, candidate, passed)

    thin = verdict_with(0.45, 0.25)
    assert {s["name"]: s["stance"] for s in thin.evidence["fix_rule"]["sources"]} == {
        "validator:answer": "abstains", "panel": "abstains", "retrieval": "abstains"}
    assert not thin.passed and thin.evidence["needs_review"]
    clear = verdict_with(0.6, 0.2)
    assert clear.passed  # a lead of 0.40 from both: two sources


def test_a_fix_abstains_to_review_without_a_retry_when_no_key_has_the_evidence(tmp_path: Path) -> None:
    from refinelab.agents.refiner import refine
    from refinelab.agents.validation.verdicts import validate
    from refinelab.graph.nodes import route_after_validate
    from refinelab.schema import Diagnostic
    from refinelab.state import EditTask

    writer = ScriptedChatModel(respond=lambda m: "{}")
    ctx = make_context(tmp_path, writer, options={"panel_method": "logprobs"})
    doubted, trusted = _item(7, answer=0), _item(8, answer=1)
    ctx.store.load_items([doubted, trusted])
    ctx.store.put_diagnostics([
        Diagnostic(item_id=doubted.id, check="panel", flag=True, score=0.0,
                   evidence={"answers": {"m": 1}, "pooled": [0.24, 0.28, 0.25, 0.23]}),
        Diagnostic(item_id=trusted.id, check="panel", flag=False, score=1.0,
                   evidence={"answers": {"m": 1}, "pooled": [0.2, 0.4, 0.2, 0.2]})])
    task = EditTask(edit_id="e3", item_id=doubted.id, operation="fix", round=1)
    candidate = refine(ctx, task)
    verdict = validate(ctx, task, candidate)
    assert not verdict.passed and verdict.method == "abstain" and verdict.evidence["needs_review"]
    assert review_kind(verdict, 0.0) == "below_bar"
    command = route_after_validate(ctx, task, verdict, None)  # attempts are left, and still no retry
    assert command.goto == "collect"  # a retry would be a Send to "refine"
    assert ctx.store.outcomes()[-1]["item_id"] == doubted.id
    # the panel agrees with the key: a repair of the wording is the writer's to try
    refine(ctx, EditTask(edit_id="e4", item_id=trusted.id, operation="fix", round=1))
    assert writer.calls >= 1


def test_the_shipped_model_loads_and_screens_without_calibration(tmp_path: Path) -> None:
    from refinelab.api.screening import shipped_model

    model = shipped_model()
    assert not any(f.startswith("p_key[") for f in model.features)  # member-independent
    assert model.fitted_on["rows"] >= 400 and 0.0 < model.threshold < 1.0
    items = [_item(i, answer=i % 4) for i in range(6)]
    truth = {f"number {i} ": it.answer_text for i, it in enumerate(items)}
    settings = load_settings(overrides={"cache_path": str(tmp_path / "c.sqlite")})
    result = screen(Dataset(name="toy", items=items), out_dir=tmp_path / "scr", settings=settings,
                    options={"panel": ["knows"]}, hooks=RunHooks(chat_models={"panel:knows": _by_text(truth)}))
    assert result.summary["model"].startswith("shipped") and result.summary["screened"] == 6
    assert all(row["p_error"] is not None for row in result.rows)
    assert "warning" not in result.summary
    shots = screen(Dataset(name="toy", items=items), out_dir=tmp_path / "scr-shots", settings=settings,
                   options={"panel": ["knows"], "panel_shots": 2},
                   hooks=RunHooks(chat_models={"panel:knows": _by_text(truth)}))
    assert "calibrate" in shots.summary["warning"]  # the shipped combiner never read probes with examples


def test_with_examples_a_subjects_items_are_asked_together(tmp_path: Path) -> None:
    """`ask_panel` under `panel_shots` asks a subject's items one after another, whatever the input order
    (`--limit` interleaves subjects), so their shared examples stay in the server's prompt cache."""
    from refinelab.api.screening import ask_panel

    seen: list[list[dict[str, str]]] = []
    ctx = make_context(tmp_path, ScriptedChatModel(respond=lambda m: "{}"), panel={"m": _recording(seen)},
                       options={"panel": ["m"], "panel_method": "logprobs", "panel_shots": 1}, concurrency=1)
    items = [_item(i).model_copy(update={"subject": "ab"[i % 2]}) for i in range(6)]  # a, b, a, b, ...
    ask_panel(ctx, items, ["m"])
    asked = [next(i.subject for i in items if f"number {i.id[1:].lstrip('0') or '0'} " in m[-1]["content"])
             for m in seen]
    assert asked == ["a"] * 6 + ["b"] * 6, asked  # two orders per item


def test_with_no_panel_configured_the_judge_is_no_panel_source(tmp_path: Path) -> None:
    """The judge answers every item when no panel is configured (IRT), but its answer on the candidate is no
    fix evidence: counted, with the rag validator's verdict beside it, it committed 8 right of 9 fixes on
    100 MMLU-Redux items (evals/results/correction_n100_default_panel.md), under the rule's 95%."""
    from refinelab.agents.validation.fix_evidence import panel_sources

    ctx = make_context(tmp_path, _by_text({"number 3": "Charlie3"}), options={"panel_method": "logprobs"})
    (source,) = panel_sources(ctx, _item(3, answer=2))
    assert source.stance == "abstains" and source.detail["why"] == "no panel configured"
