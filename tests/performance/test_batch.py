"""The Batch API path against a loopback fake of /v1/files and /v1/batches: a round trip, the resume of a
batch a killed run left pending, and the fallback where a server has no Batch API."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from refinelab.config import ModelSpec
from refinelab.tools.batch import BatchRequest, BatchRunner
from refinelab.tools.cache import ResponseCache
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.fake_batch import FakeBatchServer
from tests.support.fake_openai import FakeServer


class Echo(BaseModel):
    answer: str


def _requests(n: int) -> list[BatchRequest]:
    return [BatchRequest([{"role": "user", "content": f"Say the last word back. word{i}"}], Echo,
                         CallTag(node="profile", operation="label", item_id=f"q{i}"), max_tokens=20)
            for i in range(n)]


def _client(url: str, ledger: Ledger, monkeypatch: pytest.MonkeyPatch, cache: ResponseCache | None = None) -> ChatClient:
    monkeypatch.setenv("BATCH_TEST_KEY", "sk-test")
    return ChatClient(ModelSpec(endpoint=url, model="fake", api_key_env="BATCH_TEST_KEY", max_tokens=40), ledger,
                      cache=cache, role="judge")


class Killed(Exception):
    """Stands for the process dying while it waits on the batch."""


def test_batch_round_trip_settles_from_results_and_failed_lines_go_live(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBatchServer(delay_s=0.1, fail_every=5) as server:
        ledger = Ledger(tmp_path / "ledger.sqlite", cap=100_000)
        client = _client(server.url, ledger, monkeypatch, ResponseCache(tmp_path / "cache.sqlite"))
        runner = BatchRunner(client, poll_s=0.05)
        report = runner.run(_requests(10))
        assert (report.answered, report.failed, len(report.batch_ids)) == (8, 2, 1)
        assert server.batch_counters.uploads == 1 and server.counters.requests == 0  # no live call yet
        assert ledger.summary()["in_flight"] == 0 and ledger.spent == server.batch_counters.billed_tokens
        results = [client.structured(r.messages, Echo, r.tag, max_tokens=20) for r in _requests(10)]
        assert [r.parsed.answer for r in results] == [f"word{i}" for i in range(10)]
        assert server.counters.requests == 2, "only the two lines that failed inside the batch went live"
        assert ledger.spent == server.batch_counters.billed_tokens + server.counters.billed_tokens
        assert ledger.spent == sum(r.tokens for r in results), "each answer charged once"
        again = BatchRunner(client, poll_s=0.05).run(_requests(10))  # all cached now: nothing submitted
        assert again.skipped == 10 and server.batch_counters.uploads == 1


def test_a_killed_run_resumes_polling_its_batch_instead_of_resubmitting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeBatchServer(delay_s=0.3) as server:
        ledger = Ledger(tmp_path / "ledger.sqlite", cap=100_000)

        def die(_: float) -> None:
            raise Killed

        with pytest.raises(Killed):
            BatchRunner(_client(server.url, ledger, monkeypatch), sleep=die).run(_requests(6))
        reserved = ledger.summary()["in_flight"]
        assert reserved > 0 and server.batch_counters.batches_created == 1
        ledger.close()

        resumed = Ledger(tmp_path / "ledger.sqlite")  # the resumed process
        assert resumed.abandon_in_flight() == 0, "a pending batch's reservations are not abandoned"
        assert resumed.available == 100_000 - reserved
        client = _client(server.url, resumed, monkeypatch)
        report = BatchRunner(client, poll_s=0.05).run(_requests(6))
        assert report.answered == 6 and server.batch_counters.batches_created == 1
        assert server.batch_counters.uploads == 1, "polled the old batch, submitted nothing"
        assert resumed.summary()["in_flight"] == 0 and resumed.spent == server.batch_counters.billed_tokens
        assert resumed.pending_batches(client.fleet.members[0].url, "fake") == {}
        results = [client.structured(r.messages, Echo, r.tag, max_tokens=20) for r in _requests(6)]
        assert [r.parsed.answer for r in results] == [f"word{i}" for i in range(6)]
        assert server.counters.requests == 0 and resumed.spent == server.batch_counters.billed_tokens


def test_a_server_without_the_batch_api_sends_everything_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeServer() as server:
        ledger = Ledger(cap=100_000)
        client = _client(server.url, ledger, monkeypatch)
        report = BatchRunner(client, poll_s=0.05).run(_requests(3))
        assert report.unsupported and report.answered == 0
        assert ledger.spent == 0 and ledger.summary()["in_flight"] == 0 and ledger.summary()["calls"] == 0
        result = client.structured(_requests(1)[0].messages, Echo, CallTag(), max_tokens=20)
        assert result.parsed.answer == "word0" and server.counters.requests == 1


def test_profile_with_batch_labels_every_item_through_one_batch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`profile(options={"batch": True})` on the scripted model behind the fake: every label call is
    answered by the batch, none is sent live, and the ledger holds one settled call per item."""
    from refinelab.api.profiling import profile
    from refinelab.config import load_settings
    from tests.support.fake_openai import scripted
    from tests.support.synthetic import synthetic_dataset

    monkeypatch.setenv("BATCH_TEST_KEY", "sk-test")
    with FakeBatchServer(responder=scripted, delay_s=0.05) as server:
        spec = {"endpoint": server.url, "model": "fake", "api_key_env": "BATCH_TEST_KEY"}
        settings = load_settings(overrides={"use_cache": False, "runs_dir": str(tmp_path / "runs"),
                                            "roles": {r: dict(spec) for r in ("judge", "writer", "validator")}})
        dataset = synthetic_dataset(12)
        result = profile(dataset, out_dir=tmp_path / "p", settings=settings,
                         # rating: the label calls are all this run makes (IRT would add the judge member's probe batch)
                         options={"batch": True, "validate_suspects": False, "difficulty_method": "rating"})
    assert server.batch_counters.batches_created == 1 and server.batch_counters.lines_answered == 12
    assert server.counters.requests == 0, "no label call went live"
    ledger = Ledger(tmp_path / "p" / "ledger.sqlite")
    label = ledger.summary()["by_operation"]["label"]
    assert label["calls"] == 12 and ledger.spent == server.batch_counters.billed_tokens
    assert result is not None
