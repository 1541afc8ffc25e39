"""Class 10: item ids are normalised (NFKC) and may not hide control or format characters; ids that
print alike are duplicates. Each is a clear error naming file, row and field."""

from __future__ import annotations

import json

import pytest

from tests.support.sec_helpers import ITEMS, cli, one_line_error

BAD = {
    "zero-width space": "q1\u200b",
    "right-to-left override": "q\u202e1q",
    "left-to-right mark": "\u200eq1",
    "BOM inside": "q\ufeff1",
    "zero-width joiner": "q\u200d1",
    "tab": "q\t1",
    "newline": "q\n1",
    "NUL": "q\x001",
    "escape sequence": "q\x1b[31m1",
    "word joiner": "q\u20601",
    "soft hyphen": "q\u00ad1",
    "line separator": "q\u20281",
    "private use": "q\ue0001",
    "mixed Cyrillic": "q\u04301",
    "mixed Greek": "\u03bfne",
    "leading space": " q1",
}
LOOKALIKE = {
    "fullwidth": "\uff51\uff11",          # NFKC: q1
    "Cyrillic qa": "\u051b1",              # looks like q1
    "mathematical bold": "\U0001d42a1",    # NFKC: q1
    "superscript one": "q\u00b9",          # NFKC: q1
}


def _write(ws, ids: list[str]):  # noqa: ANN001, ANN202
    rows = [{**ITEMS[i], "id": ident} for i, ident in enumerate(ids)]
    path = ws.tmp / "ids.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_validate_reports_every_bad_id(ws) -> None:
    rows = [{**ITEMS[0], "id": "ok", "question": "fine?"}] + [
        {**ITEMS[0], "id": ident, "question": f"question {n}?"} for n, ident in enumerate(BAD.values())]
    path = ws.tmp / "ids.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = cli(["data", "validate", str(path), "--json"], ws.env, ws.tmp)
    assert proc.returncode == 2
    report = json.loads(proc.stdout)
    assert report["items"] == 1
    flagged = {int(p.split(", row ")[1].split(",")[0]) for p in report["invalid_rows"] if "field 'id'" in p}
    assert flagged == set(range(2, len(BAD) + 2)), report["invalid_rows"]


@pytest.mark.parametrize("name", sorted(BAD))
def test_invisible_or_control_characters_are_refused(ws, name: str) -> None:
    path = _write(ws, ["q0", BAD[name]])
    proc = cli(["refine", str(path), "--budget", "0", "--strict", "--runs-dir", str(ws.runs), "--quiet"],
               ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "ids.jsonl, row 2, field 'id'" in line, line
    assert not ws.runs.exists() or not list(ws.runs.iterdir())


@pytest.mark.parametrize("name", sorted(LOOKALIKE))
def test_lookalike_ids_are_duplicates(ws, name: str) -> None:
    path = _write(ws, ["q1", LOOKALIKE[name]])
    proc = cli(["refine", str(path), "--budget", "0", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)
    assert proc.returncode == 2, proc.stderr
    line = one_line_error(proc)
    assert "field 'id'" in line and ("duplicate id" in line or "look-alike" in line), line


def test_nfkc_form_is_what_is_stored(ws) -> None:
    path = _write(ws, ["\uff41\uff42\uff43", "x\u00b2", "a\u00a0b"])  # fullwidth abc, x², a NBSP b
    proc = cli(["refine", str(path), "--budget", "0", "--runs-dir", str(ws.runs), "--run-id", "n", "--quiet"],
               ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stderr
    ids = [json.loads(line)["id"] for line in (ws.runs / "n" / "refined.jsonl").read_text().splitlines()]
    assert ids == ["abc", "x2", "a b"]


@pytest.mark.parametrize("ident", ["q-1", "mmlu/abstract_algebra-12", "题目1", "вопрос-1", "ερώτηση 1", "Q1"])
def test_ordinary_ids_still_load(ws, ident: str) -> None:
    path = _write(ws, ["q1", ident])
    proc = cli(["data", "validate", str(path)], ws.env, ws.tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
