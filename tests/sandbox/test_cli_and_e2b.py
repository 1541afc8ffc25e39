"""`refinelab sandbox run`, `run_file`, and the E2B client paths (debug and full) over loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from refinelab.cli.sandbox import sandbox_app
from refinelab.tools.sandbox_base import SandboxError
from refinelab.tools.sandboxes import run_file
from tests.support.sbx_helpers import LIMITS, require_bwrap

runner = CliRunner()


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "pot.py"
    path.write_text("from fractions import Fraction\nprint('computing')\nFraction(3, 4) + Fraction(1, 4)\n")
    return path


def test_run_file_local(script: Path) -> None:
    require_bwrap()
    res = run_file(script, "local", 5.0)
    assert res.stdout == "computing\n" and res.result_text == "Fraction(1, 1)" and res.ok


def test_cli_prints_json(script: Path) -> None:
    require_bwrap()
    out = runner.invoke(sandbox_app, ["run", str(script), "--timeout", "5"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["result_text"] == "Fraction(1, 1)" and data["exit_code"] == 0
    assert set(data) >= {"stdout", "stderr", "result_text", "error", "timed_out", "output_truncated", "exit_code"}


def test_cli_timeout_exit_status(tmp_path: Path) -> None:
    require_bwrap()
    path = tmp_path / "loop.py"
    path.write_text("while True:\n    pass\n")
    out = runner.invoke(sandbox_app, ["run", str(path), "--timeout", "0.5"])
    assert out.exit_code == 1
    assert json.loads(out.stdout)["timed_out"] is True


def test_cli_bad_input(tmp_path: Path) -> None:
    assert runner.invoke(sandbox_app, ["run", str(tmp_path / "missing.py")]).exit_code == 2
    assert runner.invoke(sandbox_app, ["run", str(tmp_path), "--backend", "docker"]).exit_code == 2


def test_cli_refuses_without_bwrap(script: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from refinelab.tools import sandbox_local

    monkeypatch.setattr(sandbox_local.shutil, "which", lambda *a, **k: None)
    out = runner.invoke(sandbox_app, ["run", str(script)])
    assert out.exit_code == 3 and "bubblewrap" in out.output


def test_cli_e2b_backend_via_env(script: Path, fake_e2b: object, monkeypatch: pytest.MonkeyPatch) -> None:
    url = fake_e2b.url  # type: ignore[attr-defined]
    monkeypatch.setenv("E2B_API_KEY", "e2b_test_key")
    monkeypatch.setenv("E2B_API_URL", url)
    monkeypatch.setenv("E2B_SANDBOX_URL", url)
    out = runner.invoke(sandbox_app, ["run", str(script), "--backend", "e2b"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["result_text"] == "Fraction(1, 1)"


def test_e2b_debug_path(fake_e2b: object) -> None:
    """E2B_DEBUG mode: no control-plane calls; the fake serves sandbox id debug_sandbox_id."""
    from refinelab.tools.sandbox_e2b import E2BSandbox

    url = fake_e2b.url  # type: ignore[attr-defined]
    with E2BSandbox(LIMITS, debug=True, sandbox_url=url, fresh_context=False) as box:
        res = box.execute("print('dbg')\n2 ** 10")
    assert res.stdout == "dbg\n" and res.result_text == "1024"


def test_e2b_full_path_creates_and_kills(fake_e2b: object) -> None:
    from refinelab.tools.sandbox_e2b import E2BSandbox

    server = fake_e2b
    url = server.url  # type: ignore[attr-defined]
    n0 = len(server.requests)  # type: ignore[attr-defined]
    with E2BSandbox(LIMITS, api_key="e2b_test_key", api_url=url, sandbox_url=url) as box:
        assert box.execute("1 + 1").result_text == "2"
    calls = [(m, p.split("/")[1]) for m, p in server.requests[n0:]]  # type: ignore[attr-defined]
    assert calls[0] == ("POST", "v2") and ("POST", "execute") in calls and calls[-1] == ("DELETE", "sandboxes")


def test_e2b_rejects_wrong_access_token(fake_e2b: object) -> None:
    import httpx

    url = fake_e2b.url  # type: ignore[attr-defined]
    created = httpx.post(f"{url}/v2/sandboxes", json={}, headers={"X-API-KEY": "k"}).json()
    resp = httpx.post(f"{url}/execute", json={"code": "1"},
                      headers={"E2b-Sandbox-Id": created["sandboxID"], "X-Access-Token": "wrong"})  # fmt: skip
    assert resp.status_code == 401
    assert httpx.delete(f"{url}/sandboxes/{created['sandboxID']}").status_code == 204


def test_e2b_unreachable_raises_sandbox_error() -> None:
    from refinelab.tools.sandbox_e2b import E2BSandbox

    box = E2BSandbox(LIMITS, api_key="k", api_url="http://127.0.0.1:9", sandbox_url="http://127.0.0.1:9",
                     request_timeout=2)  # fmt: skip
    with pytest.raises(SandboxError):
        box.execute("1")
