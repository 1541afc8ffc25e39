"""A fleet per role: least-busy routing over loopback servers, ejection of a dead one, nothing lost or
charged twice, and the fleet's rules (the last healthy member stays; a probe re-admits)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from pydantic import BaseModel

from refinelab.config import ModelSpec, load_settings
from refinelab.errors import ConfigError
from refinelab.tools.fleet import Fleet
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient
from tests.support.fake_openai import FakeServer, ServerProfile


class Echo(BaseModel):
    answer: str


def _messages(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Say the last word back. word{i}"}]


def _client(urls: list[str], ledger: Ledger, monkeypatch: pytest.MonkeyPatch, **spec: object) -> ChatClient:
    monkeypatch.setenv("FLEET_TEST_KEY", "sk-test")
    fields = {"model": "fake", "api_key_env": "FLEET_TEST_KEY", "max_tokens": 20, "timeout_s": 10.0, **spec}
    return ChatClient(ModelSpec(endpoint=urls[0].partition("#")[0], endpoints=urls, **fields), ledger, role="judge")


def test_endpoints_field_parses_urls_and_per_endpoint_slots() -> None:
    spec = ModelSpec(endpoints="http://a:1/v1/, http://b:2/v1#8", concurrency=3)  # type: ignore[arg-type]
    assert spec.fleet() == [("http://a:1/v1", 3), ("http://b:2/v1", 8)]
    assert ModelSpec(endpoint="http://c/v1", concurrency=5).fleet() == [("http://c/v1", 5)]
    with pytest.raises(ConfigError, match="endpoints"):
        load_settings(overrides={"roles": {"judge": {"endpoints": ["ftp://x"]}}})
    with pytest.raises(ConfigError, match="1..256"):
        load_settings(overrides={"roles": {"judge": {"endpoints": ["http://x/v1#0"]}}})


def test_least_busy_routing_follows_each_servers_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two servers, 1 and 3 slots, same speed: the bigger one takes about three quarters of the calls,
    and neither ever holds more requests than its slots."""
    profile = ServerProfile(latency_s=0.03)
    with FakeServer(profile=profile) as small, FakeServer(profile=profile) as big:
        ledger = Ledger(cap=None)
        client = _client([f"{small.url}#1", f"{big.url}#3"], ledger, monkeypatch)
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: client.structured(_messages(i), Echo, CallTag(item_id=str(i))),
                                    range(60)))
        assert [r.parsed.answer for r in results] == [f"word{i}" for i in range(60)]
        assert small.counters.peak_in_flight <= 1 and big.counters.peak_in_flight <= 3
        assert small.counters.answered + big.counters.answered == 60
        assert 0.6 <= big.counters.answered / 60 <= 0.9, (small.counters, big.counters)


def test_killed_server_is_ejected_and_its_work_moves_without_loss_or_double_charge(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """One of two servers dies mid-run with calls in flight: every call still gets its own answer,
    the dead one is ejected, the survivor serves the rest, the run's failure streak never trips, and
    the ledger charges each answer once plus, per the documented rule, the reservation of each attempt
    cut mid-flight (the provider may have billed it) and nothing for connections refused."""
    profile = ServerProfile(latency_s=0.05)
    with FakeServer(profile=profile) as doomed, FakeServer(profile=profile) as survivor:
        ledger = Ledger(cap=None, failure_limit=5)
        client = _client([doomed.url, survivor.url], ledger, monkeypatch, concurrency=4)
        done = threading.Event()

        def killer() -> None:
            while doomed.counters.answered < 10:
                time.sleep(0.005)
            doomed.kill()
            done.set()

        threading.Thread(target=killer, daemon=True).start()
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda i: client.structured(_messages(i), Echo, CallTag(item_id=str(i))),
                                    range(120)))
        assert done.is_set()
        assert [r.parsed.answer for r in results] == [f"word{i}" for i in range(120)]
        stats = {s["url"]: s for s in client.fleet.stats()}
        assert stats[doomed.url]["ejections"] >= 1 and not stats[doomed.url]["healthy"]
        assert stats[survivor.url]["healthy"] and survivor.counters.answered >= 60
        assert ledger.tripped is None

        rows = ledger._db.execute("SELECT status, reserved, prompt_tokens + completion_tokens FROM calls").fetchall()
        settled = [r for r in rows if r[0] == "settled"]
        failed = [r for r in rows if r[0] == "failed"]
        assert len(settled) == 120, "one settled attempt per call: no answer counted twice"
        assert sum(r[2] for r in settled) == sum(r.tokens for r in results)
        assert failed, "the kill cut or refused some attempts"
        assert all(charged in (0, reserved) for _, reserved, charged in failed)
        cut = sum(1 for _, reserved, charged in failed if charged == reserved)
        # cut mid-flight: the 4 requests in the dead server's slots, plus at most one more round racing
        # the ejection on connections its kernel had already accepted (reset, not refused)
        assert cut <= 8, cut
        assert ledger.spent == sum(r.tokens for r in results) + sum(r[2] for r in failed)
        assert ledger.summary()["calls"] == len(rows)


def test_last_healthy_member_is_never_ejected_and_a_probe_readmits() -> None:
    state = {"up": False}
    fleet = Fleet.of([("http://a", 1), ("http://b", 1)], eject_after=2, cooldown_s=0.05,
                     probe=lambda url: state["up"])
    a = fleet.acquire()
    assert a.url == "http://a"
    assert fleet.failed(a, down=True).ejected  # refused: out at once
    b = fleet.acquire()
    assert b.url == "http://b"
    for _ in range(5):  # the only healthy member: its failures are the run's, it stays in
        outcome = fleet.failed(b, down=False)
        assert outcome.counts_for_run and not outcome.ejected
        b = fleet.acquire()
        assert b.url == "http://b"
    fleet.released(b)
    time.sleep(0.1)
    fleet.acquire()  # cooldown over: a probe runs (down) and a is ejected again for longer
    fleet.released(fleet.members[1])
    time.sleep(0.05)
    assert not fleet.members[0].healthy and fleet.members[0].ejections == 2
    state["up"] = True
    time.sleep(0.25)
    member = fleet.acquire()  # starts the probe; up: back in
    fleet.released(member)
    deadline = time.monotonic() + 2
    while not fleet.members[0].healthy and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fleet.members[0].healthy


def test_single_endpoint_failures_still_trip_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fleet of one never ejects: a dead endpoint stops the run as before (EndpointUnavailable)."""
    from refinelab.errors import EndpointUnavailable

    monkeypatch.setattr("refinelab.tools.llm.time.sleep", lambda s: None)
    server = FakeServer().start()
    url = server.url
    server.kill()
    ledger = Ledger(cap=None, failure_limit=3)
    client = _client([url], ledger, monkeypatch, max_transport_retries=5)
    with pytest.raises(EndpointUnavailable):
        client.structured(_messages(0), Echo, CallTag())
    assert ledger.spent == 0 and ledger.tripped is not None and ledger.tripped["endpoint"] == url



def test_connect_errors_of_the_openai_clients_httpx_fork_count_as_never_sent() -> None:
    """The openai client raises httpx2's ConnectError (a reset during connect): refused, so charged 0."""
    import httpx2  # the openai client's own dependency
    import openai

    from refinelab.tools.llm import _never_reached

    try:
        try:
            raise httpx2.ConnectError("[Errno 104] Connection reset by peer")
        except httpx2.ConnectError as inner:
            raise openai.APIConnectionError(request=httpx2.Request("POST", "http://127.0.0.1/v1")) from inner
    except openai.APIConnectionError as exc:
        assert _never_reached(exc)
    assert not _never_reached(RuntimeError("Server disconnected without sending a response."))


def test_the_health_probe_reads_the_status_not_the_body() -> None:
    """A server re-admitted by `GET /models` was read whole: one that declares a 10 GB body and then stalls
    timed the probe out (read as down), one that sends it would fill memory. Only the status is read now."""
    import socket

    from refinelab.tools.fleet import http_probe

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n{")
        stop.wait(10)
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        assert http_probe(f"http://127.0.0.1:{port}/v1", timeout_s=2.0)
        assert time.monotonic() - started < 1.5
    finally:
        stop.set()
        thread.join(5)
        listener.close()
