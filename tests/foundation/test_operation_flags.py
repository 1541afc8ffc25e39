"""The registry's drafting and checking flags hold for exactly the operations the code once named.

Each flag replaced a comparison with an operation's name (refiner, graph, validator, pilot, planner); this
pins the set each one selects, so moving a decision into the registry changed no behaviour."""

from __future__ import annotations

from refinelab.operations import REGISTRY, Op, cleared_error


def _having(flag: str) -> set[Op]:
    return {op for op, spec in REGISTRY.items() if getattr(spec, flag)}


def test_each_flag_selects_the_operations_that_were_named() -> None:
    assert _having("batched") == {Op.EXPAND}
    assert _having("measured_first") == {Op.FIX}
    assert _having("multi_draft") == {Op.CALIBRATE}
    assert _having("needs_fix_check") == {Op.FIX}
    assert _having("failure_marks_defect") == {Op.FIX}
    assert _having("clears_error") == {Op.FIX}  # graph/outputs.py counted p_error 0 after `Op.FIX` by name
    assert _having("may_change_only_distractors") == {Op.REWRITE_DISTRACTORS, Op.CALIBRATE}
    assert _having("moves_bucket") == {Op.CALIBRATE}
    assert _having("removes_item") == {Op.REMOVE}
    assert {op for op, spec in REGISTRY.items() if not spec.validated} == {Op.REMOVE}
    assert {op: spec.target for op, spec in REGISTRY.items() if spec.creates_item} == {Op.EXPAND: "cell",
                                                                                     Op.GENERATE: "bucket"}


def test_only_an_error_clearing_operation_named_in_a_provenance_clears_its_error() -> None:
    """A provenance names an operation, "original", "review" (a reviewer's own edit), or nothing."""
    assert cleared_error("fix") and cleared_error(Op.FIX)
    assert not any(cleared_error(name) for name in ("original", "review", None, "calibrate", "rewrite_distractors",
                                                     "expand", "generate", "remove", "FIX"))
