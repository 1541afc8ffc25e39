"""Dataset summary of diagnostics."""

from refinelab.metrics.summary import summarise
from refinelab.schema import Diagnostic


def test_counts_means_and_worst_verdict_per_item():
    diags = [
        Diagnostic(item_id="a", check="error", flag=True, score=0.2),
        Diagnostic(item_id="b", check="error", flag=False, score=0.9),
        Diagnostic(item_id="a", check="distractors", flag=False, score=0.8),
        Diagnostic(item_id="a", check="distractors", flag=True, score=0.3),  # worst wins
        Diagnostic(item_id="c", check="distractors", flag=False, score=1.0),
    ]
    s = summarise(diags)
    assert s.n_items == 3 and s.n_flagged_items == 1
    assert s.checks["error"].n_flagged == 1 and s.checks["error"].mean_score == 0.55
    assert s.checks["distractors"].n_items == 2 and s.checks["distractors"].min_score == 0.3
    assert s.checks["distractors"].flagged_ids == ["a"]
    rows = s.rows()
    assert [r["check"] for r in rows] == ["distractors", "error"] and rows[1]["flagged_pct"] == 50.0
    text = s.format_table()
    assert "error" in text and "1 of 3 items flagged" in text
    assert summarise([]).n_items == 0
