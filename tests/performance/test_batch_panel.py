"""`--batch` for the panel's screening probes, against the loopback fake of /v1/files and /v1/batches:
every probe of a profile answered from a batch (none live), the resume of a panel batch a killed run left
pending, and `screen(batch=True)` giving the live path's option probabilities on the same fake answers."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

from refinelab.config import Settings, load_settings
from refinelab.metrics.option_probs import presentation_orders
from refinelab.tools.batch import BatchRequest, BatchRunner
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.fake_batch import FakeBatchServer
from tests.support.fake_openai import scripted
from tests.support.sec_helpers import cli
from tests.support.synthetic import synthetic_dataset

KEY_ENV = "BATCH_TEST_KEY"


class Killed(Exception):
    """Stands for the process dying while it waits on the batch."""


def _settings(url: str, tmp_path: Path) -> Settings:
    spec = {"endpoint": url, "model": "fake", "api_key_env": KEY_ENV}
    return load_settings(overrides={"use_cache": False, "runs_dir": str(tmp_path / "runs"),
                                    "roles": {r: dict(spec) for r in ("judge", "writer", "validator")}})


def _p_options(rows: list[dict[str, Any]]) -> dict[str, list[float] | None]:
    return {row["id"]: row["p_options"] for row in rows}


def test_profile_with_batch_answers_every_panel_probe_from_the_batch(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Labels and the `judge` member's probes (same endpoint and model, two clients) each go as one batch;
    no call is sent live, the ledger's panel spend is the probe lines' usage, and each item's stored
    distribution is the one the fake's logprobs give (0.7 on the letter marked in the stem, per order)."""
    from refinelab.api.profiling import profile
    from refinelab.tools.store import RunStore
    from refinelab.tools.tracing import read_trace

    monkeypatch.setenv(KEY_ENV, "sk-test")
    dataset = synthetic_dataset(8)
    with FakeBatchServer(responder=scripted, delay_s=0.05) as server:
        profile(dataset, out_dir=tmp_path / "p", settings=_settings(server.url, tmp_path),
                options={"batch": True, "panel": ["judge"], "panel_orders": 2, "validate_suspects": False,
                         "difficulty_method": "rating"})
    counters = server.batch_counters
    assert counters.batches_created == 2 and counters.uploads == 2, "one label batch, one panel batch"
    assert counters.probe_lines == 8 * 2 and counters.lines_answered == 8 + 8 * 2
    assert server.counters.requests == 0, "no probe (and no label call) went live"
    ledger = Ledger(tmp_path / "p" / "ledger.sqlite")
    summary = ledger.summary()
    panel = summary["by_operation"]["panel"]
    assert (panel["calls"], panel["tokens"]) == (16, counters.probe_tokens)
    assert ledger.spent == counters.billed_tokens and summary["in_flight"] == 0
    probes = [r for r in read_trace(tmp_path / "p" / "trace.jsonl")
              if r["run_type"] == "llm" and r["metadata"].get("operation") == "panel"]
    assert len(probes) == 16 and all(r["outputs"]["top_logprobs"] for r in probes), "traced as live probes are"
    store = RunStore(tmp_path / "p" / "store.sqlite")
    reversed_order = presentation_orders(4, 2)[1]
    for item in dataset.items:
        panel = store.diagnostic(item.id, "panel")
        assert panel is not None, item.id
        per_order = panel.evidence["probs"]["judge"]["per_order"]
        assert math.isclose(per_order[0][item.answer], 0.7, abs_tol=1e-4)
        assert math.isclose(per_order[1][reversed_order[item.answer]], 0.7, abs_tol=1e-4)


def test_a_killed_screen_resumes_polling_its_panel_batch_instead_of_resubmitting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The panel batch is submitted, then the process dies while polling; `screen` on the same folder
    polls that batch (no second upload, no live probe) and settles it from its results."""
    from refinelab.agents.batching import panel_batch_jobs
    from refinelab.agents.options import RunOptions
    from refinelab.api.context import close_run_context, open_run_context
    from refinelab.api.screening import screen

    monkeypatch.setenv(KEY_ENV, "sk-test")
    dataset = synthetic_dataset(6)
    folder = tmp_path / "screen"
    with FakeBatchServer(responder=scripted, delay_s=0.3) as server:
        settings = _settings(server.url, tmp_path)
        ctx = open_run_context(folder, settings=settings, options=RunOptions(panel=["judge"], batch=True))
        [(client, requests)] = panel_batch_jobs(ctx, dataset.items, ["judge"])
        assert len(requests) == 6 * 2

        def die(_: float) -> None:
            raise Killed

        with pytest.raises(Killed):
            BatchRunner(client, sleep=die).run(requests)
        reserved = ctx.ledger.summary()["in_flight"]
        assert reserved > 0 and server.batch_counters.batches_created == 1
        close_run_context(ctx)

        result = screen(dataset, out_dir=folder, settings=settings, options={"panel": ["judge"], "batch": True})
    counters = server.batch_counters
    assert counters.uploads == 1 and counters.batches_created == 1, "polled the old batch, submitted nothing"
    assert server.counters.requests == 0 and counters.probe_lines == 12
    assert all(row["p_options"] is not None for row in result.rows)
    ledger = Ledger(folder / "ledger.sqlite")
    assert ledger.summary()["in_flight"] == 0 and ledger.spent == counters.billed_tokens
    assert result.summary["tokens_spent"] == counters.billed_tokens
    assert ledger.pending_batches(client.fleet.members[0].url, "fake") == {}


def test_screen_with_batch_gives_the_live_option_probabilities(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same fake answers, live and batched (every fourth batch line failing, so sent live): the same
    p_options and p_error per item; the batched run sends only the failed lines live."""
    from refinelab.api.screening import screen

    monkeypatch.setenv(KEY_ENV, "sk-test")
    dataset = synthetic_dataset(10)
    options = {"panel": ["judge"], "panel_orders": 2}
    with FakeBatchServer(responder=scripted, delay_s=0.05, fail_every=4) as server:
        settings = _settings(server.url, tmp_path)
        live = screen(dataset, out_dir=tmp_path / "live", settings=settings, options=options)
        assert server.counters.requests == 10 * 2 and server.batch_counters.uploads == 0
        batched = screen(dataset, out_dir=tmp_path / "batched", settings=settings, options={**options, "batch": True})
    assert server.batch_counters.uploads == 1 and server.batch_counters.probe_lines == 15
    assert server.counters.requests == 20 + 5, "only the five lines that failed inside the batch went live"
    assert _p_options(batched.rows) == _p_options(live.rows)
    assert [r["p_error"] for r in batched.rows] == [r["p_error"] for r in live.rows]
    for item, row in zip(dataset.items, batched.rows, strict=True):
        assert row["p_options"] is not None and math.isclose(row["p_options"][item.answer], 0.4, abs_tol=1e-4)
    assert batched.summary["tokens_spent"] == live.summary["tokens_spent"], "each probe charged once"


def test_a_probe_request_has_the_live_calls_cache_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """`BatchRequest.probe` prepares to the key `first_token_logprobs` looks up (one token, logprobs, the
    same number of alternatives): otherwise a batched answer would never be found and paid twice."""
    from refinelab.config import ModelSpec

    monkeypatch.setenv(KEY_ENV, "sk-test")
    client = ChatClient(ModelSpec(endpoint="http://127.0.0.1:9/v1", model="fake", api_key_env=KEY_ENV), Ledger())
    messages = [{"role": "user", "content": "2 + 2?\nA. 3\nB. 4\nAnswer:"}]
    _, params, key = BatchRequest.probe(messages, CallTag()).prepared(client)
    assert params["max_tokens"] == 1 and params["logprobs"] is True and params["top_logprobs"] == 20
    assert key == client.prepare(messages, None, 1, 0, 20)[2]
    assert key != client.prepare(messages, None, 1, 0, 5)[2]


def test_a_plugged_in_chat_model_is_never_batched(tmp_path: Path) -> None:
    """A chat model a caller plugged in has no server: nothing is reserved or uploaded (the API client
    would otherwise fall back to OpenAI's own address), and the calls go live."""
    from refinelab.config import ModelSpec
    from tests.support.scripted_model import ScriptedChatModel, logprobs_block

    model = ScriptedChatModel(respond=lambda m: logprobs_block({"A": 0.6, "B": 0.4}))
    ledger = Ledger(cap=10_000)
    client = ChatClient(ModelSpec(endpoint="http://127.0.0.1:9/v1", model="fake"), ledger, chat_model=model)
    messages = [{"role": "user", "content": "Answer:"}]
    report = BatchRunner(client).run([BatchRequest.probe(messages, CallTag())])
    assert report.unsupported and report.answered == 0 and ledger.summary()["calls"] == 0
    assert client.first_token_logprobs(messages, CallTag()).top_logprobs is not None and model.calls == 1


def test_the_screen_command_takes_batch(tmp_path: Path) -> None:
    """`refinelab screen --batch` (its own process) sends the panel's probes as one batch, none live."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": i.id, "question": i.question, "choices": i.choices, "answer": i.answer})
                            + "\n" for i in synthetic_dataset(4).items))
    env = {**os.environ, KEY_ENV: "sk-test", "REFINELAB_RUNS_DIR": str(tmp_path / "runs"),
           "REFINELAB_CACHE_PATH": str(tmp_path / "cache.sqlite")}
    with FakeBatchServer(responder=scripted, delay_s=0.05) as server:
        proc = cli(["screen", str(data), "--panel", "judge", "--endpoint", server.url, "--model", "fake",
                    "--api-key-env", KEY_ENV, "--batch", "--quiet", "--out", str(tmp_path / "o")], env, tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert server.batch_counters.batches_created == 1 and server.batch_counters.probe_lines == 4 * 2
    assert server.counters.requests == 0, "every probe answered from the batch"
    rows = [json.loads(x) for x in (tmp_path / "o" / "screening.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(r["p_options"] is not None for r in rows)
