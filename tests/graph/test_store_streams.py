"""The store's streaming readers (what finalize writes the outputs from) give exactly what the list
readers give, in the same order, across several fetch batches; `flagged=True` keeps only the flags."""

from __future__ import annotations

from pathlib import Path

from refinelab.schema import Diagnostic, QAItem
from refinelab.tools.store import RunStore


def _item(i: int) -> QAItem:
    return QAItem(id=f"q{i}", question=f"Question {i}?", choices=["a", "b", "c"], answer=i % 3)


def test_streams_equal_the_lists(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store.sqlite")
    items = [_item(i) for i in range(1203)]  # more than two fetch batches
    store.load_items(items)
    store.replace_item(items[5].model_copy(update={"skill": "recall", "difficulty": 0.4}), "kept")
    store.replace_item(items[7].model_copy(update={"question": "Edited?"}), "edited")
    store.mark("q9", "removed", "removed in round 1")
    store.add_item(_item(5000).model_copy(update={"id": "new1"}))
    for i in range(0, 1203, 3):
        store.record_attempt(f"e{i}", 0, 1, f"q{i}", "fix", "", items[i], items[i], "raw", i)
        store.set_outcome(f"e{i}", f"q{i}", "fix", 1, "gave_up" if i % 2 else "committed", "why", 1)
    store.put_diagnostics(Diagnostic(item_id=f"q{i}", check="error", flag=i % 100 == 0, score=0.1)
                          for i in range(1203))

    assert list(store.iter_items()) == store.items()
    assert list(store.iter_items(("edited", "new"))) == store.items(("edited", "new"))
    assert list(store.iter_edits()) == store.edits() and store.count_edits() == len(store.edits())
    assert list(store.iter_outcomes()) == store.outcomes() and list(store.iter_outcomes(1)) == store.outcomes(1)
    assert list(store.iter_originals()) == store.originals()
    originals = store.original_items()
    assert list(store.iter_original_items()) == originals
    assert [store.original_item(f"q{i}") for i in range(1203)] == originals
    assert store.original_item("new1") is None and store.status("q9") == "removed" and store.status("x") is None
    assert '"skill": "recall"' in originals[5]  # profiling's labels, as `original_items` fills them in
    flagged = store.diagnostics("error", flagged=True)
    assert flagged == [d for d in store.diagnostics("error") if d.flag] and len(flagged) == 13


def test_a_stream_allows_reads_between_batches(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store.sqlite")
    store.load_items(_item(i) for i in range(1100))
    seen = [(item.id, store.item(item.id).id, store.status(item.id)) for item in store.iter_items()]
    assert seen == [(f"q{i}", f"q{i}", "kept") for i in range(1100)]


def test_an_edited_item_keeps_the_labels_profiling_gave_its_original(tmp_path: Path) -> None:
    """Before metrics read the originals: an item edited later (its current version created by an edit)
    still counts in the cell profiling put it in, not as unlabelled."""
    import json

    from refinelab.schema import Provenance

    store = RunStore(tmp_path / "store.sqlite")
    item = _item(1)
    store.load_items([item])
    store.replace_item(item.model_copy(update={"domain": "STEM", "skill": "recall", "difficulty": 0.2}), "kept")
    edited = item.model_copy(update={"question": "Harder?", "domain": "STEM", "skill": "reasoning", "difficulty": 0.8,
                                     "provenance": Provenance(created_by="calibrate", parent_id="q1")})
    store.replace_item(edited, "edited")
    original = json.loads(store.original_item("q1") or "{}")
    assert (original["question"], original["skill"], original["difficulty"]) == ("Question 1?", "recall", 0.2)
    assert store.item("q1").skill == "reasoning"


def test_a_second_load_appends_and_a_repeated_load_changes_nothing(tmp_path: Path) -> None:
    """Items keep the order they came in across loads (a planted calibration sample after the input, the
    probes' examples read from the front); positions restarting at 0 had interleaved the two loads."""
    store = RunStore(tmp_path / "store.sqlite")
    store.load_items([_item(i) for i in range(3)])
    store.load_items([_item(i) for i in (10, 11)])
    store.load_items([_item(i) for i in range(3)])  # a resumed load: nothing new
    assert [i.id for i in store.items()] == ["q0", "q1", "q2", "q10", "q11"]
    assert [QAItem.model_validate_json(raw).id for raw in store.original_items()] == ["q0", "q1", "q2", "q10", "q11"]
