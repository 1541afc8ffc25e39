"""Class 3: when the model endpoint is down the run stops with exit 3 and a clear message, charges
nothing for calls that never reached a server, keeps every item, and `resume` continues once the
endpoint is back. A run in which most calls failed is never reported as finished."""

from __future__ import annotations

import json

import pytest

from tests.support.sec_helpers import (
    answer_ok,
    cli,
    endpoint,
    free_port,
    ledger_figures,
    one_line_error,
    refine_args,
    statuses,
    write_config,
)

EXIT_ENDPOINT = 3


def _status(code: int):  # noqa: ANN202
    return lambda ep, body, h: (code, json.dumps({"error": {"message": f"status {code}"}}).encode())


def _every_fifth_ok(ep, body, h):  # noqa: ANN001, ANN202
    return answer_ok(ep, body, h) if ep.requests % 5 == 0 else (500, b'{"error": {"message": "flaky"}}')


def _assert_stopped(proc, run_dir, n_items: int) -> None:  # noqa: ANN001
    assert proc.returncode == EXIT_ENDPOINT, (proc.returncode, proc.stderr[-3000:])
    line = one_line_error(proc)
    assert "unavailable" in line and "resume" in line, line
    assert set(statuses(run_dir).values()) == {"kept"} and len(statuses(run_dir)) == n_items
    assert not (run_dir / "report.json").exists(), "a stopped run must not look finished"


def test_connection_refused_costs_nothing_and_resume_finishes(ws) -> None:
    port = free_port()
    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{port}/v1", ws.runs)
    proc = cli(refine_args(ws.data, config, ws.prompts, "dead"), ws.env, ws.tmp)
    run = ws.runs / "dead"
    _assert_stopped(proc, run, 6)
    figures = ledger_figures(run)
    assert figures["calls"] >= 4 and figures["spent"] == 0, figures

    again = cli(["resume", "dead", "--runs-dir", str(ws.runs), "--quiet"], ws.env, ws.tmp)  # still down
    _assert_stopped(again, run, 6)
    assert ledger_figures(run)["spent"] == 0

    with endpoint(port=port) as ep:
        done = cli(["resume", "dead", "--runs-dir", str(ws.runs), "--json", "--quiet"], ws.env, ws.tmp)
        assert ep.requests > 0
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((run / "report.json").read_text())
    assert report["stop_reason"].startswith("finished")
    assert sum(report["items_by_status"].values()) == 6
    assert 0 < report["ledger"]["spent"] <= 30_000


@pytest.mark.parametrize(("name", "behaviour", "retries"), [
    ("always 500", _status(500), 0),
    ("always 503 with retries", _status(503), 2),
    ("always 401", _status(401), 0),
    ("connection dropped", lambda ep, body, h: (0, b""), 0),
])
def test_endpoint_that_never_answers_stops_the_run(ws, name: str, behaviour, retries: int) -> None:  # noqa: ANN001
    with endpoint(behaviour) as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs, transport_retries=retries)
        proc = cli(refine_args(ws.data, config, ws.prompts, "down"), ws.env, ws.tmp)
        assert 4 <= ep.requests <= 40, ep.requests  # stops soon: no hundreds of doomed requests
    _assert_stopped(proc, ws.runs / "down", 6)
    if name != "connection dropped":  # a status answer is not billed; a dropped one may have been
        assert ledger_figures(ws.runs / "down")["spent"] == 0


def test_most_calls_failing_is_not_reported_finished(ws) -> None:
    """80% of requests fail, never many in a row: the failed-call ratio stops the run."""
    with endpoint(_every_fifth_ok) as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs, failures=1000)
        proc = cli(refine_args(ws.data, config, ws.prompts, "mostly"), ws.env, ws.tmp)
    assert proc.returncode == EXIT_ENDPOINT, proc.stderr[-3000:]
    assert "failed" in one_line_error(proc)
    assert not (ws.runs / "mostly" / "report.json").exists()


def test_python_api_raises_a_typed_error(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    from refinelab.api import refine
    from refinelab.config import load_settings
    from refinelab.errors import EndpointUnavailable
    from refinelab.io import load_dataset

    monkeypatch.setenv("SECURITY_TEST_API_KEY", "sk-test-api")
    config = write_config(ws.tmp / "c.yaml", f"http://127.0.0.1:{free_port()}/v1", ws.runs)
    with pytest.raises(EndpointUnavailable) as caught:
        refine(load_dataset(ws.data), budget=10_000, settings=load_settings(config), run_id="api",
               prompts_dir=str(ws.prompts))
    assert caught.value.run_id == "api"
    assert set(statuses(ws.runs / "api").values()) == {"kept"}
