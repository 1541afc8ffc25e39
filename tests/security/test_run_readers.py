"""Run folders read as untrusted input by `export --lm-eval`, `runs`, `trace` and the run store: each damaged
file is a one-line DataError naming the file, row and field (exit 2 from the CLI), never a hang, a memory
blow-up, a RecursionError or a crash, and nothing is half-written. Folders are written by hand (no refine run),
so the module takes a few seconds; the CLI is run as a process only where the exit code and stderr matter."""

from __future__ import annotations

import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from refinelab.api.export_lmeval import export_lm_eval
from refinelab.api.run_folders import run_identity
from refinelab.api.run_list import list_runs
from refinelab.cli.trace_view import render_tree, subtree_tokens
from refinelab.errors import DataError
from refinelab.schema import Diagnostic
from refinelab.tools import trace_jsonl
from refinelab.tools.store import RunStore
from refinelab.tools.tracing import read_trace
from tests.support.sec_helpers import base_env, one_line_error

ITEMS = [{"id": f"q{n}", "question": f"What is {n} + 1?", "choices": [str(n), str(n + 1), "x", "y"], "answer": 1,
          "provenance": {"created_by": "original"}} for n in range(4)]
REPORT = {"run_id": "r", "stop_reason": "finished 1 round(s)", "rounds": 1, "input_items": 4, "output_items": 4,
          "edits": {"attempts": 0, "outcomes": {}}, "ledger": {"cap": 100, "spent": 10, "replayed": 0}}


def _run_folder(folder: Path, items: list[dict[str, Any]] | None = None, report: dict[str, Any] | None = None) -> Path:
    """A finished run's readable files: settings.json, report.json, refined.jsonl, an empty changes.jsonl."""
    folder.mkdir(parents=True)
    (folder / "settings.json").write_text(json.dumps({"settings": {}, "targets": {}, "dataset": "d.jsonl",
                                                      "budget": 100}))
    (folder / "report.json").write_text(json.dumps(report or REPORT))
    (folder / "refined.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items or ITEMS))
    (folder / "changes.jsonl").write_text("")
    return folder


def _cli(args: list[str], cwd: Path, memory: int | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m refinelab ARGS` in its own process, with an address-space limit when `memory` is given (so a
    regression that reads /dev/zero fails with MemoryError instead of taking the machine's memory)."""
    def limit() -> None:
        if memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (memory, memory))

    return subprocess.run([sys.executable, "-m", "refinelab", *args], env=base_env(cwd), cwd=cwd, text=True,
                          capture_output=True, timeout=60, preexec_fn=limit)


# ------------------------------------------------------------------------- export --lm-eval (findings 3, 6)


@pytest.mark.parametrize("plant", ["fifo", "dev-zero"])
def test_lm_eval_export_refuses_a_refined_set_that_is_no_regular_file(tmp_path: Path, plant: str) -> None:
    """A named pipe hung the export in open(); a link to /dev/zero read without limit. `export --jsonl` and
    `report` refused both already; the lm-eval export now reads through the same reader."""
    run = _run_folder(tmp_path / "runs" / "r")
    (run / "refined.jsonl").unlink()
    if plant == "fifo":
        os.mkfifo(run / "refined.jsonl")
    else:
        (run / "refined.jsonl").symlink_to("/dev/zero")
    proc = _cli(["export", str(run), "--lm-eval", str(tmp_path / "out")], tmp_path, memory=3 * 2**30)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refined.jsonl: is not a regular file" in one_line_error(proc)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("field", "value"), [
    ("provenance", "x"),  # crashed with an AttributeError, exit 1
    ("choices", "ABCD"),  # became the options A, B, C, D
    ("answer", True),  # became 1
    ("answer", 1.9),  # became 1
    ("subject", {"x": [1, 2]}),  # written as a dict
])
def test_lm_eval_export_refuses_rows_the_other_exports_refuse(tmp_path: Path, field: str, value: Any) -> None:
    items = [dict(i) for i in ITEMS]
    items[1][field] = value
    run = _run_folder(tmp_path / "r", items)
    with pytest.raises(DataError) as caught:
        export_lm_eval(run, tmp_path / "out")
    error = caught.value
    assert (error.path, error.row, error.field) == (str(run / "refined.jsonl"), 2, field), str(error)
    assert "\n" not in str(error)
    assert not (tmp_path / "out").exists()  # nothing half-written


def test_lm_eval_export_of_a_bad_row_is_one_line_exit_2(tmp_path: Path) -> None:
    items = [dict(i) for i in ITEMS]
    items[1]["provenance"] = "x"
    run = _run_folder(tmp_path / "runs" / "r", items)
    proc = _cli(["export", str(run), "--lm-eval", str(tmp_path / "out")], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "refined.jsonl, row 2, field 'provenance'" in one_line_error(proc)


def test_lm_eval_export_writes_the_items_as_read(tmp_path: Path) -> None:
    run = _run_folder(tmp_path / "r")
    yaml_path = export_lm_eval(run, tmp_path / "out", task_name="t")
    docs = [json.loads(line) for line in yaml_path.with_suffix(".jsonl").read_text().splitlines()]
    assert [(d["id"], d["choices"], d["answer"], d["letters"], d["created_by"]) for d in docs] == [
        (i["id"], i["choices"], 1, ["A", "B", "C", "D"], "original") for i in ITEMS]


# ------------------------------------------------------------------------------------- runs (finding 4)


@pytest.mark.parametrize(("field", "value"), [("replayed", "x"), ("replayed", [1]), ("replayed", -5),
                                              ("prompt_tokens", "7"), ("cached_prompt_tokens", True)])
def test_one_bad_ledger_count_lists_that_run_as_unreadable_and_the_others(tmp_path: Path, field: str,
                                                                          value: Any) -> None:
    _run_folder(tmp_path / "runs" / "good")
    _run_folder(tmp_path / "runs" / "bad", report={**REPORT, "ledger": {**REPORT["ledger"], field: value}})
    entries = {e.run_id: e for e in list_runs(tmp_path / "runs")}
    assert entries["good"].state == "finished" and entries["good"].used == 10
    bad = entries["bad"]
    assert bad.state == "unreadable" and bad.used is None
    assert "report.json" in bad.detail and f"ledger.{field}" in bad.detail
    assert all(e.to_dict() for e in entries.values())  # what `runs --json` prints


def test_list_runs_looks_where_refine_writes_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFINELAB_RUNS_DIR", str(tmp_path / "configured"))
    _run_folder(tmp_path / "configured" / "good")
    assert [e.run_id for e in list_runs()] == ["good"]


# ---------------------------------------------------------------------------------- trace (findings 7, 8)


def _span(run_id: str, parent: str | None = None, **fields: Any) -> dict[str, Any]:
    return {"id": run_id, "trace_id": "t", "parent_run_id": parent, "name": "n", "run_type": "chain",
            "start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:00:01+00:00", **fields}


def _trace(path: Path, spans: list[dict[str, Any]] | list[str]) -> Path:
    path.write_text("".join((s if isinstance(s, str) else json.dumps(s)) + "\n" for s in spans))
    return path


def test_a_trace_line_over_the_limit_is_refused_before_it_is_parsed(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A 30 MB line of `[{},{},…]` took about 890 MB; the limit is lowered here to keep the test small."""
    monkeypatch.setattr(trace_jsonl, "MAX_TRACE_LINE_CHARS", 10_000)
    big = json.dumps(_span("b", inputs=[{}] * 5_000))
    path = _trace(tmp_path / "trace.jsonl", [_span("a"), big])
    with pytest.raises(DataError, match=r"trace.jsonl, row 2: line longer than 10,000") as caught:
        read_trace(path)
    assert caught.value.path == str(path)


def test_a_trace_with_too_many_runs_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace_jsonl, "MAX_TRACE_RUNS", 5)
    path = _trace(tmp_path / "trace.jsonl", [_span(f"r{n}") for n in range(5)] + [{"id": "r0", "end_time": None}])
    assert len(read_trace(path)) == 5  # a run's end record is no new run
    _trace(path, [_span(f"r{n}") for n in range(6)])
    with pytest.raises(DataError, match=r"row 6: more than 5 runs"):
        read_trace(path)


def test_the_tree_keeps_only_what_it_shows(tmp_path: Path) -> None:
    path = _trace(tmp_path / "trace.jsonl", [
        _span("a", inputs={"messages": ["x" * 1000]}, outputs={"text": "y"}, metadata={"k": 1},
              dotted_order="o", usage={"total_tokens": 7, "extra": [1] * 100}, error="E" * 5000)])
    [full] = read_trace(path)
    [tree] = read_trace(path, tree_only=True)
    assert full["inputs"] and full["outputs"] and full["metadata"]
    assert set(tree) <= set(trace_jsonl.TREE_FIELDS) | {"inputs"} and tree.get("inputs") is None
    assert tree["usage"] == {"total_tokens": 7} and len(tree["error"]) == trace_jsonl.MAX_TRACE_TEXT


@pytest.mark.parametrize("field", ["id", "name", "parent_run_id", "start_time"])
def test_overlong_ids_names_and_times_are_refused(tmp_path: Path, field: str) -> None:
    span = _span("a", parent="p")
    span[field] = "2026-01-01T00:00:00" + "0" * 300 if field == "start_time" else "z" * 300
    path = _trace(tmp_path / "trace.jsonl", [span])
    with pytest.raises(DataError, match=rf"row 1, field '{field}': longer than"):
        read_trace(path)


def test_a_deep_chain_of_parents_renders(tmp_path: Path) -> None:
    """3,000 runs, each the parent of the next: a RecursionError (exit 2, no file named) before."""
    spans = [_span(f"r{n}", f"r{n - 1}" if n else None, usage={"total_tokens": 1}) for n in range(3_000)]
    path = _trace(tmp_path / "trace.jsonl", spans)
    runs = read_trace(path)
    totals = subtree_tokens(runs)
    assert totals["r0"] == 3_000 and totals["r2999"] == 1
    assert "3000 runs, 3000 tokens" in str(render_tree(path).label)
    render_tree(path, depth=5_000)  # the tree is built without recursion too


def test_the_tree_is_unchanged_for_siblings_and_groups(tmp_path: Path) -> None:
    """The iterative tree shows what the recursive one did: siblings in start order, a group of more than
    GROUP_OVER runs of one name on one line, the cut-off line at the depth."""
    from rich.console import Console

    spans = [_span("root"), _span("a", "root", name="a", start_time="2026-01-01T00:00:00.1+00:00"),
             *[_span(f"g{n}", "root", name="g", usage={"total_tokens": 2}) for n in range(4)],
             _span("b", "a", name="b", usage={"total_tokens": 3}), _span("c", "b", name="c")]
    path = _trace(tmp_path / "trace.jsonl", spans)
    console = Console(width=120, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed with the console
    console.print(render_tree(path, depth=3))
    assert console.export_text().splitlines() == [
        "trace t: 8 runs, 11 tokens",
        "└── n (chain) 11 tok 1.00s",
        "    ├── g (chain) ×4: 8 tok, 4.00s total",
        "    └── a (chain) 3 tok 0.90s",
        "        └── b (chain) 3 tok 1.00s",
        "            └── … 1 more run(s)",
    ]
    console.file.close()


def test_a_naive_start_beside_an_aware_end_is_one_line(tmp_path: Path) -> None:
    """Subtracting them was a TypeError (exit 1, naming nothing)."""
    path = _trace(tmp_path / "trace.jsonl", [_span("a"), _span("b", "a", name="span-b",
                                                                start_time="2026-01-01T00:00:00")])
    with pytest.raises(DataError, match=r"row 2, field 'end_time': run 'span-b' \(b\): one of its start and end"):
        render_tree(path)


# ----------------------------------------------------------------------------------- the store (finding 9)


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "store.sqlite")
    store.set_meta("run_id", "r")
    store.record_attempt("e1", 0, 1, "q1", "fix", "", None, None, "", 5)
    store.record_verdict("e1", 0, "pass", "ok", {"score": 0.5})
    store.put_diagnostics([Diagnostic(item_id="q1", check="error", flag=True, score=0.5, evidence={"a": 1})])
    yield store
    store.close()


def _set(store: RunStore, sql: str, value: str) -> None:
    with sqlite3.connect(store.path) as db:
        db.execute(sql, (value,))
    db.close()


DAMAGE = {"bad": "{", "deep": "[" * 100_000 + "]" * 100_000, "nan": '{"a": NaN, "b": 1e999}', "not-an-object": "[1]"}


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_edit_evidence_names_the_store_table_and_row(store: RunStore, damage: str) -> None:
    _set(store, "UPDATE edits SET evidence=? WHERE edit_id='e1'", DAMAGE[damage])
    with pytest.raises(DataError) as caught:
        store.edits()
    error = caught.value
    assert (error.path, error.field) == (str(store.path), "edits.evidence") and "row 'e1 attempt 0'" in str(error)
    assert "\n" not in str(error)


@pytest.mark.parametrize("damage", DAMAGE)
def test_damaged_diagnostic_evidence_names_the_store_table_and_row(store: RunStore, damage: str) -> None:
    _set(store, "UPDATE diagnostics SET evidence=? WHERE item_id='q1'", DAMAGE[damage])
    for read in (lambda: store.diagnostics(), lambda: store.diagnostic("q1", "error")):
        with pytest.raises(DataError) as caught:
            read()
        assert (caught.value.path, caught.value.field) == (str(store.path), "diagnostics.evidence")
        assert "row 'q1 error'" in str(caught.value)


@pytest.mark.parametrize("damage", DAMAGE)
@pytest.mark.parametrize(("table", "where", "row"), [("edits", "edit_id='e1'", "e1 attempt 0"),
                                                     ("diagnostics", "item_id='q1'", "q1 error")])
def test_the_folder_check_refuses_damaged_evidence_before_a_resume_starts(store: RunStore, damage: str, table: str,
                                                                          where: str, row: str) -> None:
    """`check_store_items` runs before resume and review: damaged evidence is refused there, not partway."""
    from refinelab.api.run_checks import check_store_items

    check_store_items(store.path)  # sound as built
    _set(store, f"UPDATE {table} SET evidence=? WHERE {where}", DAMAGE[damage])
    with pytest.raises(DataError) as caught:
        check_store_items(store.path)
    assert caught.value.field == f"{table}.evidence" and f"row {row!r}" in str(caught.value)


@pytest.mark.parametrize("damage", ["bad", "deep", "nan"])
def test_a_damaged_run_id_names_the_store_and_meta(store: RunStore, damage: str) -> None:
    _set(store, "UPDATE meta SET value=? WHERE key='run_id'", DAMAGE[damage])
    for read in (lambda: run_identity(store.path.parent), lambda: store.get_meta("run_id")):
        with pytest.raises(DataError) as caught:
            read()
        assert (caught.value.path, caught.value.field) == (str(store.path), "meta.value")
        assert "row 'run_id'" in str(caught.value)


def test_a_run_id_that_is_not_text_is_refused(store: RunStore) -> None:
    _set(store, "UPDATE meta SET value=? WHERE key='run_id'", '{"a": 1}')
    with pytest.raises(DataError, match="expected text"):
        run_identity(store.path.parent)


def test_the_store_never_writes_what_its_reader_refuses(store: RunStore) -> None:
    """NaN evidence was written and read back as NaN, so `review --export` wrote a queue `review --import`
    refused; now a non-finite number is stored as null, and a NaN planted in the store is refused on read."""
    store.record_attempt("e2", 0, 1, "q2", "fix", "", None, None, "", 5)
    store.record_verdict("e2", 0, "pass", "ok", {"p": float("nan"), "q": [float("inf"), 1.5]})
    store.put_diagnostics([Diagnostic(item_id="q2", check="error", flag=False, score=0.0,
                                      evidence={"x": float("-inf")})])
    store.set_meta("figures", {"m": float("nan")})
    evidence = {e["edit_id"]: e["evidence"] for e in store.edits()}
    assert evidence["e2"] == {"p": None, "q": [None, 1.5]}
    assert store.diagnostic("q2", "error").evidence == {"x": None}  # type: ignore[union-attr]
    assert store.get_meta("figures") == {"m": None}
    json.dumps(evidence, allow_nan=False)  # what the review queue writes
