"""`refine(decontaminate=REFERENCE)`: items of the data found in a reference leave the run before profiling,
each a committed `remove` with its match as evidence, and the planner plans for the input's size."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.agents.options import RunHooks
from refinelab.api import refine
from refinelab.api.report_html import _decontamination_rows, build_report
from refinelab.cli.app import app
from refinelab.config import load_settings
from refinelab.errors import DataError
from refinelab.io import load_dataset, read_jsonl
from refinelab.schema import Dataset, QAItem
from refinelab.state import INTAKE_ROUND, PILOT_ROUND
from refinelab.tools.store import RunStore
from tests.support.scripted import EXTRAS, models, respond
from tests.support.scripted_model import ScriptedChatModel

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


ONE_ROUND = {**EXTRAS, "rounds": 1}  # every run here is of one round


def _settings(tmp_path: Path):
    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite")})


def _data_and_reference() -> tuple[Dataset, Dataset, dict[str, str]]:
    """16 MMLU dev items; a reference of unrelated MMLU val items holding three of them as they are, one with
    its options reordered and its key kept, and one's question with other options. Returns the expected kind
    of each item found."""
    data = load_dataset(DATA / "mmlu" / "dev", on_invalid="quarantine").filter(limit=16)
    unrelated = load_dataset(DATA / "mmlu" / "val", on_invalid="quarantine").filter(limit=20).items
    copied = [item.model_copy(update={"id": f"ref-{item.id}"}) for item in data.items[:3]]
    item = data.items[5]
    order = list(reversed(range(len(item.choices))))
    reordered = item.model_copy(update={"id": "ref-reordered", "choices": [item.choices[i] for i in order],
                                        "answer": order.index(item.answer)})
    other = data.items[9]
    same_question = other.model_copy(update={"id": "ref-same-question",
                                              "choices": ["Alpha option", "Beta option", "Gamma option",
                                                          "Delta option"], "answer": 0})
    reference = Dataset(name="reference", items=[*unrelated, *copied, reordered, same_question])
    expected = {i.id: "exact" for i in data.items[:3]} | {item.id: "exact", other.id: "same_question"}
    return data, reference, expected


def test_items_found_in_the_reference_leave_before_profiling_with_their_match(tmp_path: Path) -> None:
    data, reference, expected = _data_and_reference()
    result = refine(data, budget=20_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**ONE_ROUND, "pilot_per_op": 0}, decontaminate=reference)
    summary = result.report["decontamination"]
    assert summary["found"] == len(expected) and summary["reference"] == "reference"
    assert summary["counts"] == {"exact": 4, "same_question": 1, "near": 0}

    store = RunStore(result.run_dir / "store.sqlite")
    statuses = {item_id: status for item_id, status, _ in store.originals()}
    assert {i for i, s in statuses.items() if s == "removed"} >= set(expected)
    for item_id, kind in expected.items():
        diagnostic = store.diagnostic(item_id, "contamination")
        assert diagnostic is not None and diagnostic.flag and diagnostic.evidence["kind"] == kind
        # not profiled: no tokens were spent measuring an item that cannot stay
        assert store.diagnostic(item_id, "error") is None
    assert store.get_meta("target_total") == len(data)  # the planner plans for the input's size

    refined_ids = {i.id for i in read_jsonl(result.run_dir / "refined.jsonl")}
    assert not refined_ids & set(expected)
    changes = [json.loads(line) for line in (result.run_dir / "changes.jsonl").read_text().splitlines()]
    removals = {c["item_id"]: c for c in changes if c["evidence"].get("method") == "overlap"}
    assert set(removals) == set(expected)
    for item_id, change in removals.items():
        assert change["operation"] == "remove" and change["outcome"] == "committed" and change["tokens"] == 0
        assert change["after"] is None and change["before"]["id"] == item_id
        assert change["evidence"]["reference_id"].startswith("ref-")
        assert change["reason"].startswith("found in reference: ")
    assert removals[data.items[9].id]["evidence"]["kind"] == "same_question"
    html = build_report(result.run_dir).read_text(encoding="utf-8")
    assert f"found in reference and removed</span><b>{len(expected)}</b>" in html
    assert f"<td>intake</td><td>remove</td><td class=\"num\">0</td><td class=\"num\">{len(expected)}</td>" in html


def test_a_run_without_a_reference_removes_nothing_for_contamination(tmp_path: Path) -> None:
    data, _reference, _expected = _data_and_reference()
    result = refine(data, budget=3_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**ONE_ROUND, "pilot_per_op": 0, "operations": ["fix"]})
    assert result.report["decontamination"] is None
    store = RunStore(result.run_dir / "store.sqlite")
    assert not store.diagnostics("contamination")


def test_a_reference_holding_every_item_is_refused_before_any_folder(tmp_path: Path) -> None:
    data, _reference, _expected = _data_and_reference()
    with pytest.raises(DataError, match="holds every item"):
        refine(data, budget=20_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
               options=ONE_ROUND, decontaminate=data)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_several_references_each_find_their_own_items(tmp_path: Path) -> None:
    """Two references as paths: each item is found once (in the first that holds it), each removal names the
    file it was found in, and report.json keeps each reference's counts beside the totals."""
    from refinelab.io import write_jsonl

    data, _reference, _expected = _data_and_reference()
    first = write_jsonl([i.model_copy(update={"id": f"a-{i.id}"}) for i in data.items[:3]], tmp_path / "a.jsonl")
    second = write_jsonl([i.model_copy(update={"id": f"b-{i.id}"}) for i in data.items[2:5]], tmp_path / "b.jsonl")
    result = refine(data, budget=6_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**ONE_ROUND, "pilot_per_op": 1, "operations": ["fix", "remove"]},
                    decontaminate=[str(first), second])
    summary = result.report["decontamination"]
    assert summary["found"] == 5 and [r["found"] for r in summary["references"]] == [3, 2]
    assert summary["reference"] == f"{first}, {second}"
    changes = [json.loads(line) for line in (result.run_dir / "changes.jsonl").read_text().splitlines()]
    found_in = {c["item_id"]: c["evidence"]["reference"] for c in changes if c["evidence"].get("method") == "overlap"}
    assert found_in == {**{i.id: str(first) for i in data.items[:3]}, **{i.id: str(second) for i in data.items[3:5]}}
    store = RunStore(result.run_dir / "store.sqlite")  # the intake's removals are not the pilot's edits
    assert not {o["edit_id"] for o in store.outcomes(PILOT_ROUND)} & {f"decontaminate-{i}" for i in found_in}
    assert {o["item_id"] for o in store.outcomes(INTAKE_ROUND)} == set(found_in)
    with pytest.raises(DataError, match=r"a.jsonl, .*b.jsonl: hold every item"):
        refine(Dataset(data.items[:4], name="four"), budget=3_000, settings=_settings(tmp_path / "all"),
               hooks=RunHooks(chat_models=models()), options=ONE_ROUND, decontaminate=[first, second])


def test_a_split_without_a_reference_is_refused(tmp_path: Path) -> None:
    data, _reference, _expected = _data_and_reference()
    with pytest.raises(ValueError, match="decontaminate_split needs decontaminate"):
        refine(data, budget=1_000, settings=_settings(tmp_path), decontaminate_split="test")


def test_the_cli_names_a_bad_reference_file_and_leaves_no_folder(tmp_path: Path) -> None:
    bad = tmp_path / "reference.jsonl"
    bad.write_text('{"question": "Q?", "choices": ["a", "b"], "answer": 0}\n{"question": \n')
    result = CliRunner().invoke(app, ["refine", str(DATA / "mmlu" / "dev"), "--limit", "4", "--budget", "1000",
                                      "--quiet", "--runs-dir", str(tmp_path / "runs"),
                                      "--decontaminate", str(bad)])
    line = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "reference.jsonl" in line and "row 2" in line, line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_a_reference_folder_of_several_splits_names_the_option_that_picks_one(tmp_path: Path) -> None:
    """The hint names `--decontaminate-split`: `--split` would pick a split of the data, not the reference."""
    folder = tmp_path / "reference"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text('{"question": "Q?", "choices": ["a", "b"], "answer": 0}\n')
    result = CliRunner().invoke(app, ["refine", str(DATA / "mmlu" / "dev"), "--limit", "4", "--budget", "1000",
                                      "--quiet", "--runs-dir", str(tmp_path / "runs"),
                                      "--decontaminate", str(folder)], env={"COLUMNS": "300"})
    line = " ".join(result.output.split())
    assert result.exit_code == 2, result.output
    assert "choose one with --decontaminate-split NAME (Python: decontaminate_split=)" in line, line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def _copying_writer(copied: QAItem) -> dict[str, ScriptedChatModel]:
    """The scripted models, but the writer hands back `copied` (its question and options) for every new item
    it is asked to write: a writer that has seen the benchmark."""
    def answer(messages: list[dict[str, str]]) -> str:
        text, reply = messages[-1]["content"], respond(messages)
        if "Skill tested" not in text and not re.search(r"Write \d+ new multiple-choice questions", text):
            return reply
        copy = {"question": copied.question, "choices": list(copied.choices), "answer_index": copied.answer}
        parsed = json.loads(reply)
        if "items" in parsed:
            return json.dumps({"items": [{**draft, **copy} for draft in parsed["items"]]})
        return json.dumps({**parsed, **copy})

    scripted = ScriptedChatModel(respond=answer)
    return {"judge": scripted, "writer": scripted, "validator": scripted}


def test_a_new_item_copying_the_reference_is_refused(tmp_path: Path) -> None:
    """The set was cleaned of the reference's items; a writer that brings one back (here every new item is a
    reference item the data never held) is refused by the validator naming it, and none reaches the output."""
    data, reference, _expected = _data_and_reference()
    copied = reference.items[0]
    assert copied.fingerprint not in {i.fingerprint for i in data.items}
    result = refine(data, budget=20_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=_copying_writer(copied)),
                    options={**ONE_ROUND, "pilot_per_op": 0, "operations": ["expand"]}, decontaminate=reference)
    store = RunStore(result.run_dir / "store.sqlite")
    verdicts = [e["reason"] for e in store.edits() if e["operation"] == "expand"]
    assert verdicts and all("in_reference" in v and copied.id in v for v in verdicts), verdicts
    assert copied.fingerprint not in {i.fingerprint for i in read_jsonl(result.run_dir / "refined.jsonl")}


def test_a_resume_reads_the_references_again_while_they_hold_the_same_items(tmp_path: Path) -> None:
    """settings.json records each reference's path and what it held; a reopened run (resume, a review's
    decisions, Studio) reads it again for its validator if it still holds the same items (in any order), and
    otherwise says it cannot, in a notice and in report.json's `decontamination`."""
    from refinelab.agents.reference_index import content_digest
    from refinelab.api.context import close_run_context
    from refinelab.api.decontamination import restore_references
    from refinelab.api.run_folders import claim_existing
    from refinelab.api.runs import saved_context
    from refinelab.io import write_jsonl

    data, reference, _expected = _data_and_reference()
    path = write_jsonl(reference.items, tmp_path / "reference.jsonl")
    result = refine(data, budget=3_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                    options={**ONE_ROUND, "pilot_per_op": 0, "operations": ["fix"]}, decontaminate=path)
    saved = json.loads((result.run_dir / "settings.json").read_text())["decontaminate"]
    assert saved == [{"reference": str(path), "path": str(path.resolve()), "split": None,
                      "digest": content_digest(reference)}]

    def reopened(also: list[dict] | None = None) -> tuple[list[tuple[str, int]], list[str]]:
        notices: list[str] = []
        folder = claim_existing(tmp_path / "runs", result.run_dir.name)
        try:
            ctx = saved_context(folder, None, lambda event: notices.append(event["data"]["notice"]))
            notices += restore_references(ctx, also or [])
            indexed = [(r.name, len(r)) for r in ctx.contamination_references]
            close_run_context(ctx)
        finally:
            folder.release()
        return indexed, notices

    assert reopened() == ([(str(path), len(reference))], [])
    write_jsonl(list(reversed(reference.items)), path)  # the same items in another order: the same reference
    assert reopened() == ([(str(path), len(reference))], [])
    write_jsonl(reference.items[1:], path)  # one item fewer: not the reference the run was cleaned against
    indexed, notices = reopened()
    assert indexed == [] and len(notices) == 1 and "no longer holds the items the run started with" in notices[0]
    summary = RunStore(result.run_dir / "store.sqlite").get_meta("decontamination")
    assert summary["not_rechecked"] == notices
    assert ("references new items were not looked for in after a resume", 1) in _decontamination_rows(summary)
    path.unlink()
    indexed, notices = reopened([{"reference": "in memory", "path": None, "split": None, "digest": "0"}])
    assert indexed == [] and "cannot be read again" in notices[0] and "was given in memory" in notices[1]


def test_a_run_id_taken_is_refused_before_the_reference_is_read(tmp_path: Path) -> None:
    """The clash is the cheap refusal: it comes before the reference is read and embedded (minutes for a
    benchmark's test split on a cold cache), here shown by a reference that cannot be read at all."""
    from refinelab.api.run_folders import RunExists

    data, _reference, _expected = _data_and_reference()
    first = refine(data, budget=1_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
                   options={**ONE_ROUND, "pilot_per_op": 0, "operations": ["fix"]}, run_id="taken")
    unreadable = tmp_path / "reference.jsonl"
    unreadable.write_text('{"question": \n')
    with pytest.raises(RunExists, match="run taken already exists"):
        refine(data, budget=1_000, settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()),
               options=ONE_ROUND, run_id="taken", decontaminate=unreadable)
    assert first.run_dir.name == "taken"
