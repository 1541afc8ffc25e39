"""`refinelab report` on run folders from elsewhere: bounded work and one-line refusals.

A run folder is untrusted input. A long question once made the word diff take minutes (its work grew with
the cube of the length), a report.json with many coverage cells made matplotlib draw for minutes, and
values the schema let through (a null token count, a target share that is no number) crashed the report
with exit 1. Each case here is small to write and, before the fix, hung or crashed.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from refinelab.api.report_views import EXACT_DIFF_TOKENS, _opcodes, diff_text, item_view

REPORT_SECONDS = 20  # a whole report of the fixture run takes 3-7 s on a busy 2-core machine; the hangs took minutes


def _copy(run_dir: Path, tmp_path: Path, name: str) -> Path:
    run = tmp_path / name
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("*.sqlite*", "report.html"))
    return run


def _edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Change a JSON file of the run; an infinite float is written as `1e999`, which JSON parsers read as
    infinity (json.dumps would write `Infinity`, which the reader refuses before any field is looked at)."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data).replace("Infinity", "1e999"))


def _report(run: Path) -> tuple[int, str, float]:
    """`refinelab report RUN` in-process: exit code, output and seconds taken."""
    from refinelab.cli.app import app

    start = time.perf_counter()
    result = CliRunner().invoke(app, ["report", str(run)])
    return result.exit_code, result.output, time.perf_counter() - start


def _long_texts(words: int) -> tuple[str, str]:
    """A question of `words` words and its edit with every third word changed (the audit's case)."""
    before = [f"w{i}" for i in range(words)]
    after = [w if i % 3 else f"z{i}" for i, w in enumerate(before)]
    return " ".join(before), " ".join(after)


@pytest.mark.timeout(60)
def test_a_2000_word_edit_is_diffed_in_bounded_time() -> None:
    before, after = _long_texts(2000)
    item = {"question": before, "choices": ["a", "b", "c", "d"], "answer": 0}
    start = time.perf_counter()
    view = item_view(item, {**item, "question": after}, "fix")
    diff_text(before, after)
    assert time.perf_counter() - start < 2.0
    assert view["kind"] == "rewrite"  # every third word changed: before and after blocks, not an inline diff


@pytest.mark.timeout(60)
def test_a_small_fix_in_a_long_passage_is_still_shown_inline() -> None:
    words = [f"w{i}" for i in range(2000)]
    changed = [*words[:1000], "CHANGED", *words[1001:]]
    item = {"question": " ".join(words), "choices": ["a", "b", "c", "d"], "answer": 0}
    start = time.perf_counter()
    view = item_view(item, {**item, "question": " ".join(changed)}, "fix")
    assert time.perf_counter() - start < 2.0
    assert view["kind"] == "edit"
    assert "w999 <del>w1000</del><ins>CHANGED</ins> w1001" in str(view["blocks"][0]["question"])


def test_ordinary_items_are_diffed_as_before() -> None:
    """Below EXACT_DIFF_TOKENS the diff is difflib's on the whole text, as it always was."""
    pairs = [("Which gas do plants take in?", "Which gas do green plants absorb from the air?"),
             ("a b c", "a c"), ("the cat sat on the mat", "the dog sat on a mat today"), ("", "new text")]
    for before, after in pairs:
        a, b = re.split(r"(\s+)", before), re.split(r"(\s+)", after)
        assert len(a) + len(b) <= EXACT_DIFF_TOKENS
        assert _opcodes(a, b) == difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
    assert str(diff_text("a b c", "a c")) == "a <del>b </del>c"


@pytest.mark.timeout(120)
def test_a_long_edit_in_changes_jsonl_reports_in_seconds(run_dir: Path, tmp_path: Path) -> None:
    run = _copy(run_dir, tmp_path, "long-edit")
    rows = [json.loads(line) for line in (run / "changes.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r.get("before") and r.get("after") and r["operation"] == "fix")
    row["before"]["question"], row["after"]["question"] = _long_texts(2000)
    (run / "changes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, output, seconds = _report(run)
    assert code == 0, output
    assert seconds < REPORT_SECONDS


@pytest.mark.timeout(120)
def test_150_by_150_coverage_cells_report_in_seconds_and_say_what_is_summed(run_dir: Path, tmp_path: Path) -> None:
    run = _copy(run_dir, tmp_path, "many-cells")
    many = {f"d{i}|s{j}": 1 / 22_500 for i in range(150) for j in range(150)}

    def change(data: dict[str, Any]) -> None:
        data["metrics_before"]["coverage"] = many
        data["metrics_before"]["difficulty"] = {f"b{i}": 1 / 300 for i in range(300)}
        data["plans"] = [{"round": r, "by_op": {f"op{k}": {"count": 1, "tokens": 10.0} for k in range(r % 40, r % 40 + 3)}}
                         for r in range(1, 101)]

    _edit_json(run / "report.json", change)
    code, output, seconds = _report(run)
    assert code == 0, output
    assert seconds < REPORT_SECONDS
    html = (run / "report.html").read_text()
    # the fixture's own cells (after) join the 150 × 150 (before)
    assert re.search(r"the 15 largest of 15\d domains are drawn, the other 1\d\d summed in the last row", html)
    assert re.search(r"the 11 largest of 15\d skills are drawn", html)
    assert "shares are shown by colour only" in html
    assert re.search(r"the first 11 of 30\d buckets are drawn", html)
    assert re.search(r"the first 11 of 10\d rounds are drawn", html)
    assert re.search(r"the 9 most frequent of 4\d operations are drawn", html)
    assert html.count('<svg class="plot"') == 4


def test_a_null_token_count_in_the_ledger_is_drawn_as_zero(run_dir: Path, tmp_path: Path) -> None:
    """`LedgerSlot.tokens` may be null (the schema allows it): the report draws it as 0 tokens."""
    run = _copy(run_dir, tmp_path, "null-tokens")

    def change(data: dict[str, Any]) -> None:
        for slot in data["ledger"]["by_node"].values():
            slot["tokens"] = None

    _edit_json(run / "report.json", change)
    code, output, _ = _report(run)
    assert code == 0, output
    assert (run / "report.html").is_file()


BAD_VALUES = {  # case: (file, change, the field the error names)
    "target-share-text": ("settings.json", lambda d: d.update(targets={"coverage": {"STEM": {"recall": "abc"}}}),
                          "targets.coverage.STEM.recall"),
    "target-bucket-object": ("settings.json", lambda d: d.update(targets={"buckets": [{"a": 1}]}), "targets.buckets.0"),
    "target-difficulty-text": ("settings.json", lambda d: d["targets"].update(difficulty={"easy": "x"}),
                               "targets.difficulty.easy"),
    "target-share-infinite": ("settings.json", lambda d: d["targets"].update(coverage={"STEM": {"recall": 1e999}}),
                              "targets.coverage.STEM.recall"),
    "report-share-infinite": ("report.json", lambda d: d["metrics_after"]["coverage"].update({"STEM|recall": 1e999}),
                              "metrics_after.coverage.STEM|recall"),
}


@pytest.mark.parametrize(("name", "change", "field"), BAD_VALUES.values(), ids=BAD_VALUES.keys())
def test_a_bad_value_is_one_line_naming_file_and_field(run_dir: Path, tmp_path: Path, name: str,
                                                        change: Callable[[dict[str, Any]], None], field: str) -> None:
    run = _copy(run_dir, tmp_path, "bad")
    path = run / name
    _edit_json(path, change)
    text = path.read_text()
    code, output, _ = _report(run)
    assert code == 2, output
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert str(path) in lines[0] and f"field '{field}'" in lines[0] and "unexpected" not in lines[0]
    assert not (run / "report.html").exists()  # nothing half-written
    assert path.read_text() == text  # the folder is left as it was
