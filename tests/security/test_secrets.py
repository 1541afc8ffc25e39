"""Class 2: an endpoint that quotes our credentials back (in an error, a header dump, an answer) never
gets the key onto disk, into the trace, onto the terminal or to LangSmith."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from tests.support.sec_helpers import SECRET, cli, endpoint, refine_args, write_config


def _auth(headers: dict[str, str]) -> str:
    return next((v for k, v in headers.items() if k.lower() == "authorization"), "")


def _key(headers: dict[str, str]) -> str:
    return _auth(headers).removeprefix("Bearer ").strip()


BEHAVIOURS = {
    "401 json quoting the header": lambda ep, body, h: (401, json.dumps({"error": {
        "message": f"Invalid Authorization header: {_auth(h)}", "type": "invalid_request_error"}}).encode()),
    "401 plain header dump": lambda ep, body, h: (401, "\n".join(f"{k}: {v}" for k, v in h.items()).encode()),
    "403 basic-auth form": lambda ep, body, h: (403, json.dumps({"error": {"message": "denied for Basic " + base64.b64encode(
        f":{_key(h)}".encode()).decode()}}).encode()),
    "500 partial and reversed key": lambda ep, body, h: (500, json.dumps({"error": {
        "message": f"upstream rejected key starting {_key(h)[:18]} (reversed {_key(h)[::-1]})"}}).encode()),
    "400 key as json field": lambda ep, body, h: (400, json.dumps({"error": {"message": "bad request",
                                                                             "api_key": _key(h)}}).encode()),
    "200 answer echoing the key": lambda ep, body, h: (200, json.dumps({
        "id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": f"your key is {_key(h)}"},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10}}).encode()),
}

FORMS = [SECRET, SECRET[:18], SECRET[-18:], SECRET[::-1], base64.b64encode(f":{SECRET}".encode()).decode(),
         base64.b64encode(SECRET.encode()).decode()[:24]]


def _leaks(blob: bytes) -> list[str]:
    return [form for form in FORMS if form.encode() in blob]


def _folder_leaks(folder: Path) -> dict[str, list[str]]:
    found = {}
    for path in folder.rglob("*"):
        if path.is_file() and (hit := _leaks(path.read_bytes())):
            found[str(path.relative_to(folder))] = hit
    return found


@pytest.mark.parametrize("name", sorted(BEHAVIOURS))
def test_key_quoted_by_the_endpoint_is_never_written(ws, name: str) -> None:
    with endpoint(BEHAVIOURS[name]) as ep:
        config = write_config(ws.tmp / "c.yaml", ep.url, ws.runs, failures=6)
        proc = cli(refine_args(ws.data, config, ws.prompts, "leak", budget=20_000), ws.env, ws.tmp)
        assert ep.requests > 0
    assert proc.returncode in (0, 3), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not _leaks((proc.stdout + proc.stderr).encode()), "key printed"
    run = ws.runs / "leak"
    assert (run / "trace.jsonl").exists() and (run / "store.sqlite").exists()
    assert _folder_leaks(run) == {}
    if proc.returncode == 0:  # finished: the report and changes exist and are clean too
        assert (run / "report.json").exists()
    if name.startswith("401 json"):  # the key did reach our error text: the redaction left its marker
        assert any(b"[REDACTED]" in p.read_bytes() for p in run.rglob("*") if p.is_file())


@pytest.mark.parametrize("name", ["401 json quoting the header", "401 plain header dump", "403 basic-auth form"])
def test_model_check_does_not_print_the_key(ws, name: str) -> None:
    env = {**ws.env, "OPENAI_API_KEY": SECRET}
    with endpoint(BEHAVIOURS[name]) as ep:
        proc = cli(["model", "check", "--endpoint", ep.url, "--model", "m"], env, ws.tmp)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert not _leaks((proc.stdout + proc.stderr).encode()), proc.stderr


def test_langsmith_receives_redacted_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What goes to LangSmith (a loopback recorder of its ingest endpoints, through the real client) is
    redacted like trace.jsonl: inputs, outputs, model text and error text."""
    from refinelab.tools.tracing import Tracer
    from tests.support.langsmith_recorder import keyed_env, langsmith_recorder

    monkeypatch.setenv("SECURITY_TEST_API_KEY", SECRET)
    with langsmith_recorder() as rec:
        keyed_env(monkeypatch, rec.url)
        tracer = Tracer(tmp_path / "trace.jsonl")
        with tracer.span("refinelab.run", "chain", {"note": f"header Bearer {SECRET}"}) as root:
            root.outputs = {"text": f"echo {SECRET}"}
            call = tracer.llm_call("writer:m", [{"role": "user", "content": f"my key is {SECRET}"}], model="m",
                                   invocation_params={"model": "m"}, metadata={"node": "t"})
            call.fail(RuntimeError(f"401: Authorization: Bearer {SECRET}"), 3, 0)
            with pytest.raises(ValueError), tracer.span("step", "tool", {}):
                raise ValueError(f"endpoint said: api_key={SECRET[::-1]}")
        tracer.flush()
    sent = b"\n".join(rec.raw)
    assert len(rec.runs()) == 3 and b"[REDACTED]" in sent
    assert not _leaks(sent)
    assert not _leaks((tmp_path / "trace.jsonl").read_bytes())


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345", "abcdefghijklmnopqrstuvwxyz012345"),
    ('{"headers": {"authorization": "Bearer Zm9vYmFyYmF6cXV4cXV1eA"}}', "Zm9vYmFyYmF6cXV4cXV1eA"),
    ("x-api-key=QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "QWxhZGRpbjpvcGVuIHNlc2FtZQ"),
    ("token sk-proj-AbCdEfGhIjKlMnOpQrStUvWx", "AbCdEfGhIjKlMnOpQrStUvWx"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
     "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"),
    ("password=hunter2hunter2", "hunter2hunter2"),
    ("Proxy-Authorization: Basic dXNlcjpwYXNzd29yZDEyMzQ1Ng==", "dXNlcjpwYXNzd29yZDEyMzQ1Ng"),
])
def test_credential_shaped_text_is_redacted_without_configuration(text: str, secret: str) -> None:
    from refinelab.redact import redact

    out = redact(text)
    assert "[REDACTED]" in out and secret not in out, out


def test_ordinary_error_text_is_left_alone() -> None:
    from refinelab.redact import redact

    for text in ["token budget exhausted: need 500, 20 of 30000 left", "basic arithmetic question",
                 "data.jsonl, row 3, field 'answer': out of range"]:
        assert redact(text) == text
