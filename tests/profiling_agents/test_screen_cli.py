"""`refinelab screen` as its own process: bad input exits 2 with one line; a calibrated screen on the real
embedded server writes one line per item, calibration.json and a summary with the tokens spent."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from refinelab.tools.store import RunStore
from tests.support.sec_helpers import cli, one_line_error

REPO = Path(__file__).resolve().parents[2]
MMLU_DEV = REPO.parent / "shared" / "data" / "mmlu" / "dev"


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "REFINELAB_RUNS_DIR": str(tmp_path / "runs"),
            "REFINELAB_CACHE_PATH": str(tmp_path / "cache.sqlite")}


def test_screen_refuses_bad_input_with_one_line(tmp_path: Path) -> None:
    missing = cli(["screen", str(tmp_path / "nope.jsonl"), "--quiet"], _env(tmp_path), tmp_path)
    assert missing.returncode == 2 and "nope.jsonl" in one_line_error(missing)
    bad = tmp_path / "calibration.json"
    bad.write_text(json.dumps({"features": ["a"], "mean": [0], "scale": [0], "coef": [1], "intercept": 0}))
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    proc = cli(["screen", str(data), "--calibration", str(bad), "--quiet", "--out", str(tmp_path / "o")],
               _env(tmp_path), tmp_path)
    line = one_line_error(proc)
    assert proc.returncode == 2 and "calibration.json" in line and "scale" in line
    assert not (tmp_path / "o" / "screening.jsonl").exists()


def test_a_share_outside_0_1_is_refused_by_the_library_and_the_cli(tmp_path: Path) -> None:
    """`target_precision` and `prevalence` are shares: the library refuses one outside (0, 1) before any
    folder exists, so a notebook call is checked as the command line is."""
    import refinelab
    from refinelab.errors import ConfigError

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "a", "question": "q?", "choices": ["x", "y"], "answer": 0}) + "\n")
    with pytest.raises(ConfigError, match=r"^prevalence 1.5: must lie strictly between 0 and 1$"):
        refinelab.screen(data, out_dir=tmp_path / "lib", prevalence=1.5)
    assert not (tmp_path / "lib").exists()
    proc = cli(["screen", str(data), "--target-precision", "0", "--quiet", "--out", str(tmp_path / "o")],
               _env(tmp_path), tmp_path)
    assert proc.returncode == 2 and "target_precision 0.0: must lie strictly between 0 and 1" in one_line_error(proc)
    assert not (tmp_path / "o").exists()


@pytest.mark.llm
@pytest.mark.timeout(900)
def test_calibrated_screen_on_the_embedded_model(embedded_server, tmp_path: Path) -> None:
    out = tmp_path / "scr"
    proc = cli(["screen", str(MMLU_DEV), "--limit", "14", "--panel", "smollm2-135m", "--calibrate", "--sample", "12",
                "--budget", "200000", "--out", str(out), "--quiet"], _env(tmp_path), tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in (out / "screening.jsonl").read_text().splitlines()]
    assert len(lines) == 14 and all(0.0 <= x["p_error"] <= 1.0 for x in lines)
    assert all(abs(sum(x["p_options"]) - 1.0) < 1e-3 for x in lines)
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["sample"] == 12 and 0.0 < calibration["threshold"] < 1.0
    assert set(calibration["estimates"]["per_type"]) <= {"wrong_groundtruth", "no_correct_answer",
                                                        "multiple_correct_answers", "bad_options_clarity",
                                                        "bad_question_clarity"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["screened"] == 14 and 0 < summary["tokens_spent"] <= 200000 and summary["tokens_replayed"] == 0
    assert 0 <= summary["cached_prompt_tokens"] <= summary["prompt_tokens"] <= summary["tokens_spent"]
    # the same screen again is answered from the response cache: nothing spent, and the summary says what it used
    again = cli(["screen", str(MMLU_DEV), "--limit", "14", "--panel", "smollm2-135m", "--calibrate", "--sample", "12",
                 "--budget", "200000", "--out", str(tmp_path / "again"), "--quiet"], _env(tmp_path), tmp_path, timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    replay = json.loads((tmp_path / "again" / "summary.json").read_text())
    assert replay["tokens_spent"] == 0 and replay["tokens_replayed"] == summary["tokens_spent"]

    # the calibration then scores a profile's panel evidence (as `refine --calibration` does): its path is each
    # screened item's evidence, and the run's options come from a file beside the flags
    options = tmp_path / "profile.yaml"
    options.write_text("panel: [smollm2-135m]\nskill_method: exemplars\ndistractors: false\n", encoding="utf-8")
    profiled = tmp_path / "profiled"
    proc = cli(["profile", str(MMLU_DEV), "--limit", "4", "--options", str(options), "--calibration",
                str(out / "calibration.json"), "--no-validator", "--out", str(profiled), "--quiet"],
               _env(tmp_path), tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = RunStore(profiled / "store.sqlite")
    errors = store.diagnostics("error")
    store.close()
    assert len(errors) == 4
    assert {d.evidence.get("screening_model") for d in errors} == {str((out / "calibration.json").resolve())}
    assert all("p_error_pooling" in d.evidence for d in errors)
