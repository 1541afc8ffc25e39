"""`find_overlap` / `refinelab data overlap`: which items of one dataset another already holds (a test split
in a training set), as exact copies, the same question with other options, or near-duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.api.overlap import find_overlap, write_matches
from refinelab.cli.app import app
from refinelab.errors import DataError

REFERENCE = [
    {"id": "r1", "question": "Which of the following is the largest planet in the Solar System?",
     "choices": ["Mars", "Jupiter", "Earth", "Venus"], "answer": 1},
    {"id": "r2", "question": "What is the chemical symbol for sodium?", "choices": ["S", "So", "Na", "Sd"],
     "answer": 2},
    {"id": "r3", "question": "How many sides has a hexagon?", "choices": ["5", "6", "7", "8"], "answer": 1},
]
DATA = [
    {"id": "copy", "question": "how many sides  has a HEXAGON?", "choices": ["8", "7", "6", "5"], "answer": 2},
    {"id": "new-options", "question": "How many sides has a hexagon?", "choices": ["4", "6", "10", "12"],
     "answer": 1},
    {"id": "paraphrase", "question": "Which one of these is the biggest planet in our Solar System?",
     "choices": ["Jupiter", "Mars", "Venus", "Earth"], "answer": 0},
    {"id": "unrelated", "question": "Who wrote the novel Moby-Dick?", "choices": ["Melville", "Twain", "Poe",
                                                                                "Hawthorne"], "answer": 0},
    {"id": "reworded", "question": "what is the chemical symbol for sodium", "choices": ["na", "s", "so", "sd"],
     "answer": 0},
]


def _found(report) -> dict[str, tuple[str, str]]:
    return {m.item_id: (m.reference_id, m.kind) for m in report.matches}


def test_exact_copies_and_leaked_questions_whatever_the_options_order_case_and_spacing() -> None:
    """Text matches need no model: the lexical method runs without embeddings."""
    report = find_overlap(DATA, REFERENCE, method="lexical")
    assert _found(report) == {"copy": ("r3", "exact"), "new-options": ("r3", "same_question"),
                              "reworded": ("r2", "near")}
    assert report.counts() == {"exact": 1, "same_question": 1, "near": 1}
    assert report.items == 5 and report.reference_items == 3 and report.share == pytest.approx(0.6)
    assert [m.item_id for m in report.matches] == ["copy", "new-options", "reworded"]  # the data's order
    assert report.matches[0].reference_question == REFERENCE[2]["question"]
    assert find_overlap(DATA, REFERENCE, method="lexical", threshold=1.0).counts()["near"] == 1  # same words
    assert find_overlap(DATA[3:4], REFERENCE, method="lexical").matches == []


def test_paraphrases_are_near_duplicates_by_embedding() -> None:
    """The packaged MiniLM finds a paraphrase with its options reordered, which shares too few words for the
    lexical method, and leaves an unrelated question alone."""
    report = find_overlap(DATA, REFERENCE)
    found = _found(report)
    assert found["paraphrase"] == ("r1", "near") and found["reworded"] == ("r2", "near")
    assert "unrelated" not in found
    near = {m.item_id: m.similarity for m in report.matches if m.kind == "near"}
    assert all(0.92 <= s < 1.0 for s in near.values()), near
    assert "paraphrase" not in _found(find_overlap(DATA, REFERENCE, method="lexical"))
    assert "paraphrase" not in _found(find_overlap(DATA, REFERENCE, threshold=0.99))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="method must be 'embedding' or 'lexical'"):
        find_overlap(DATA, REFERENCE, method="bm25")
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        find_overlap(DATA, REFERENCE, threshold=1.5)
    with pytest.raises(DataError, match="picks a part of a folder or a DatasetDict"):
        find_overlap(DATA, REFERENCE, split="test")


def test_a_split_leaking_into_another_through_the_cli(tmp_path: Path) -> None:
    """The command a benchmark builder runs on a saved DatasetDict: test against train, every match written
    to --out, one line of counts; a missing reference is one line, exit 2."""
    import datasets

    def rows(items: list[dict]) -> dict[str, list]:
        return {key: [item[key] for item in items] for key in ("question", "choices", "answer")}

    folder = tmp_path / "saved"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(REFERENCE)),
                          "test": datasets.Dataset.from_dict(rows(DATA))}).save_to_disk(str(folder))
    matches = tmp_path / "overlap.jsonl"
    result = CliRunner().invoke(app, ["data", "overlap", str(folder), str(folder), "--split", "test",
                                      "--reference-split", "train", "--lexical", "--out", str(matches)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    headline = " ".join(result.output.split())  # the console may wrap it at its width
    assert "test: 3 of 5 items (60.0%) found in train (3 items): exact 1, same question 1, near 1" in headline
    written = [json.loads(line) for line in matches.read_text().splitlines()]
    assert [(m["kind"], m["similarity"]) for m in written] == [("exact", 1.0), ("same_question", 1.0), ("near", 1.0)]
    as_json = CliRunner().invoke(app, ["data", "overlap", str(folder), str(folder), "--split", "test",
                                       "--reference-split", "train", "--lexical", "--json"])
    assert json.loads(as_json.output)["counts"] == {"exact": 1, "same_question": 1, "near": 1}
    missing = CliRunner().invoke(app, ["data", "overlap", str(folder), str(tmp_path / "nope.jsonl"), "--split",
                                       "test", "--lexical"])
    assert missing.exit_code == 2 and "nope.jsonl: no such file or folder" in missing.output
    unnamed = CliRunner().invoke(app, ["data", "overlap", str(folder), str(folder), "--split", "test", "--lexical"],
                                 env={"COLUMNS": "300"})
    assert unnamed.exit_code == 2
    assert "choose one with --reference-split NAME (Python: reference_split=)" in " ".join(unnamed.output.split())


def test_the_items_not_matched_written_as_a_clean_copy(tmp_path: Path) -> None:
    """`--write-unmatched`: DATA without the reference's items (decontaminated, no run, no model tokens), or,
    without a reference, without its own repeats; in DATA's order, readable as a dataset; never over an input
    or the matches file."""
    from refinelab.io import load_dataset, write_jsonl
    from refinelab.schema import QAItem

    data = write_jsonl([QAItem.model_validate(row) for row in DATA], tmp_path / "data.jsonl")
    reference = write_jsonl([QAItem.model_validate(row) for row in REFERENCE], tmp_path / "reference.jsonl")
    clean = tmp_path / "clean.jsonl"
    result = CliRunner().invoke(app, ["data", "overlap", str(data), str(reference), "--lexical",
                                      "--write-unmatched", str(clean)])
    assert result.exit_code == 0, result.output
    assert "2 items not matched written to" in " ".join(result.output.split())
    assert [i.id for i in load_dataset(clean)] == ["paraphrase", "unrelated"]  # lexical misses the paraphrase
    deduplicated = CliRunner().invoke(app, ["data", "overlap", str(data), "--lexical", "--json",
                                            "--write-unmatched", str(tmp_path / "dedup.jsonl")])
    assert json.loads(deduplicated.output)["unmatched"]["items"] == 4
    assert [i.id for i in load_dataset(tmp_path / "dedup.jsonl")] == ["copy", "paraphrase", "unrelated", "reworded"]
    for args in (["--write-unmatched", str(data)], ["--out", str(clean), "--write-unmatched", str(clean)]):
        before = data.read_bytes()
        refused = CliRunner().invoke(app, ["data", "overlap", str(data), str(reference), "--lexical", *args])
        assert refused.exit_code == 2, refused.output
        assert data.read_bytes() == before


def test_matches_as_json_lines_and_a_summary_without_them(tmp_path: Path) -> None:
    report = find_overlap(DATA, REFERENCE, method="lexical")
    path = write_matches(report, tmp_path / "m.jsonl")
    assert [json.loads(line)["item_id"] for line in path.read_text().splitlines()] == ["copy", "new-options",
                                                                                      "reworded"]
    assert report.to_dict(with_matches=False)["found"] == 3 and "matches" not in report.to_dict(with_matches=False)


def test_a_shared_passage_is_not_a_near_duplicate_unless_asked() -> None:
    """MiniLM reads the first 256 word pieces: two questions on one long passage embed alike (MMLU's history
    items scored 1.000 with no option in common). A near match must share half its options; `any_options`
    finds the shared passage all the same."""
    passage = ("This question refers to the following information. " + " ".join(
        f"In the year {1800 + n} the assembly of the northern provinces met again to debate the tariff, the "
        f"railways and the rights of the press, and resolved on measure number {n}." for n in range(12)))
    reference = [{"id": "r1", "question": passage + " Which issue did the assembly debate first?",
                  "choices": ["the tariff", "the army", "the church", "the schools"], "answer": 0}]
    data = [{"id": "other-question", "question": passage + " In which year did the assembly first meet?",
             "choices": ["1800", "1811", "1790", "1850"], "answer": 0},
            {"id": "same-item", "question": passage + " Which issue did the assembly debate first of all?",
             "choices": ["the army", "the tariff", "the schools", "the church"], "answer": 1}]
    report = find_overlap(data, reference)
    assert _found(report) == {"same-item": ("r1", "near")}
    loose = find_overlap(data, reference, any_options=True)
    assert _found(loose) == {"other-question": ("r1", "near"), "same-item": ("r1", "near")}
    assert {m.item_id: m.similarity for m in loose.matches}["other-question"] > 0.99  # the passage is all it reads


def test_an_exact_copy_keyed_otherwise_is_reported(tmp_path: Path) -> None:
    """The same question and options with another key: one of the two keys is wrong. The match says so, the
    report counts it and the command warns; a near match keyed otherwise is told apart the same way."""
    miskeyed = {**REFERENCE[1], "id": "miskeyed", "answer": 0}  # "S" for sodium
    report = find_overlap([miskeyed, DATA[0]], REFERENCE, method="lexical")
    assert {m.item_id: m.same_key for m in report.matches} == {"miskeyed": False, "copy": True}
    assert report.other_key() == {"exact": 1, "same_question": 0, "near": 0}
    data, reference = tmp_path / "d.jsonl", tmp_path / "r.jsonl"
    data.write_text(json.dumps(miskeyed) + "\n")
    reference.write_text("".join(json.dumps(r) + "\n" for r in REFERENCE))
    result = CliRunner().invoke(app, ["data", "overlap", str(data), str(reference), "--lexical"])
    assert result.exit_code == 0, result.output
    assert "1 exact copies are keyed otherwise than the item they copy: one of each pair has a wrong key" in " ".join(
        result.output.split())


def test_a_set_against_itself_reports_each_later_repeat_once() -> None:
    """Without a reference, the items that repeat an earlier one of the same set: an item never matches
    itself, and a pair is reported once, on its later item."""
    items = [*REFERENCE, *DATA]
    report = find_overlap(items)
    assert report.within and report.reference_items == len(items)
    assert _found(report) == {"copy": ("r3", "exact"), "new-options": ("r3", "same_question"),
                              "paraphrase": ("r1", "near"), "reworded": ("r2", "near")}
    assert _found(find_overlap(DATA)) == {"new-options": ("copy", "same_question")}  # DATA's own repeat
    with pytest.raises(ValueError, match="reference_split needs a reference"):
        find_overlap(DATA, reference_split="train")


def test_a_copy_keeping_the_reference_ids_is_still_found() -> None:
    """An item matches a reference item of the same id (a split copied with its ids): only within one set is
    an item's own entry not a match."""
    report = find_overlap(REFERENCE, REFERENCE, method="lexical")
    assert _found(report) == {item["id"]: (item["id"], "exact") for item in REFERENCE}
    assert find_overlap(REFERENCE, method="lexical").matches == []


def test_the_matches_file_never_replaces_an_input_or_a_folder(tmp_path: Path) -> None:
    """`--out` naming the data itself would have replaced it with the matches; it is refused before any work,
    as is a folder, each in one line with exit 2."""
    data = tmp_path / "d.jsonl"
    text = "".join(json.dumps(r) + "\n" for r in REFERENCE)
    data.write_text(text)
    for out in (data, tmp_path):
        result = CliRunner().invoke(app, ["data", "overlap", str(data), "--lexical", "--out", str(out)])
        assert result.exit_code == 2 and result.output.count("error:") == 1, result.output
        assert "write it elsewhere" in result.output
    assert data.read_text() == text


def test_invalid_rows_are_counted_and_a_set_with_none_valid_is_refused(tmp_path: Path) -> None:
    rows = [*REFERENCE, {"id": "bad", "question": "q?", "choices": ["same", "same"], "answer": 0}]
    report = find_overlap(rows, REFERENCE, method="lexical")
    assert report.invalid == 1 and report.items == 3 and report.to_dict()["invalid"] == 1
    with pytest.raises(DataError, match=r"no valid items to compare \(1 invalid row\(s\); first problem: .*choices"):
        find_overlap(rows[-1:], REFERENCE, method="lexical")
    with pytest.raises(DataError, match="no valid items to compare with"):
        find_overlap(REFERENCE, rows[-1:], method="lexical")


def test_lexical_scores_are_word_set_jaccard_pair_by_pair() -> None:
    """The sparse product counts what a pair-by-pair Jaccard counts: the same score for every pair, words the
    index never saw included in the union, items added in two steps, an empty text scored 0."""
    import random

    from refinelab.agents.dedup import DuplicateIndex, _text, _words
    from refinelab.schema import QAItem

    rng = random.Random(7)
    vocabulary = [f"w{n}" for n in range(60)]

    def item(n: int) -> QAItem:
        words = rng.sample(vocabulary, rng.randint(1, 12))
        return QAItem(id=f"i{n}", question=" ".join(words), choices=[f"x{n}", f"y{n} {rng.choice(vocabulary)}"],
                      answer=0)

    indexed, queries = [item(n) for n in range(40)], [item(100 + n) for n in range(25)]
    index = DuplicateIndex("lexical")
    index.add(indexed[:15])
    index.add(indexed[15:])
    scores = index._scores(queries)
    for row, query in enumerate(queries):
        a = _words(_text(query))
        for column, known in enumerate(indexed):
            b = _words(_text(known))
            assert scores[row, column] == pytest.approx(len(a & b) / max(1, len(a | b)))
    assert index.best_matches([indexed[3]])[0][0] == ("i3", pytest.approx(1.0))


def test_the_report_reads_as_lines_and_the_command_prints_them(tmp_path: Path) -> None:
    """The text is the library's (`summary_lines`, `warnings`, `match_lines`): twenty matches a line each,
    then how many more once (the command had printed "… 5 more" after each of the twenty)."""
    rows = [{"id": f"q{i}", "question": f"Question   number {i}\nabout topic {i}?",
             "choices": [f"a{i}", f"b{i}", f"c{i}", f"d{i}"], "answer": 1} for i in range(25)]
    report = find_overlap([{**rows[0], "answer": 0}, *rows[1:]], rows, method="lexical")
    assert report.summary_lines((tmp_path / "u.jsonl", 0)) == [
        "records: 25 of 25 items (100.0%) found in records (25 items): exact 25, same question 0, near 0 "
        "(similarity >= 0.8, lexical)", f"0 items not matched written to {tmp_path / 'u.jsonl'}"]
    assert report.warnings() == ["warning: 1 exact copies are keyed otherwise than the item they copy: one of "
                                 "each pair has a wrong key"]
    lines = report.match_lines()
    assert lines[0] == ("q0 found as q0: exact, similarity 1.000, another key; Question number 0 about topic 0?")
    assert len(lines) == 21 and lines[-1] == "… 5 more (--out FILE writes them all)"
    assert report.match_lines(2, tmp_path / "m.jsonl")[-1] == f"… 23 more in {tmp_path / 'm.jsonl'}"
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["data", "overlap", str(data), str(data), "--lexical", "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.output.count(" more") == 1 and result.output.count(" found as ") == 20
