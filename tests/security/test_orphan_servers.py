"""Class 11: an embedded llama.cpp server never outlives the processes using it. `model serve` stopped
by SIGTERM/SIGHUP stops it; a SIGKILLed owner is noticed by the server's lease watchdog; a server
shared by two owners stays up until the last is gone; stale registry entries are removed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.sec_helpers import BIN

pytestmark = pytest.mark.llm
MODEL = os.environ.get("REFINELAB_TEST_MODEL", "smollm2-135m")


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.2)
    return False


def _registry(ws) -> dict:  # noqa: ANN001
    path = Path(ws.env["REFINELAB_MODEL_CACHE"]) / "servers.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _as_a_background_job() -> None:
    """What a non-interactive shell's `cmd &` (or `nohup`) does to its child: SIGINT and SIGHUP ignored.
    Python then installs no KeyboardInterrupt handler; `model serve` must stop on them all the same."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _serve(ws) -> tuple[subprocess.Popen[str], int]:  # noqa: ANN001
    proc = subprocess.Popen([str(BIN / "refinelab"), "model", "serve", "--model", MODEL, "--parallel", "1"],
                            env=ws.env, cwd=ws.tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_as_a_background_job)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    match = re.search(r"\(pid (\d+)\)", line)
    assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
    return proc, int(match.group(1))


OWNER = ("import sys, time; from refinelab.tools.embedded_server import ensure_server; "
         "h = ensure_server(sys.argv[1], parallel=1); print(h.pid, flush=True); time.sleep(600)")


def _owner(ws) -> tuple[subprocess.Popen[str], int]:  # noqa: ANN001
    proc = subprocess.Popen([sys.executable, "-c", OWNER, MODEL], env=ws.env, cwd=ws.tmp, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGKILL])
def test_model_serve_stopped_by_a_signal_leaves_no_server(ws, sig: signal.Signals) -> None:
    cli_proc, server = _serve(ws)
    try:
        assert _alive(server) and MODEL in _registry(ws)
        cli_proc.send_signal(sig)
        cli_proc.wait(timeout=30)
        assert _wait_gone(server), f"llama.cpp server {server} outlived `model serve` ({sig.name})"
        assert MODEL not in _registry(ws), "stale registry entry"
    finally:
        if _alive(server):
            os.kill(server, signal.SIGKILL)
        if cli_proc.poll() is None:
            cli_proc.kill()


def test_sigkilled_run_leaves_no_server(ws) -> None:
    owner, server = _owner(ws)
    try:
        owner.kill()
        owner.wait()
        assert _wait_gone(server), "server outlived its SIGKILLed owner"
        assert _registry(ws) == {}
    finally:
        if _alive(server):
            os.kill(server, signal.SIGKILL)


def test_shared_server_stays_until_the_last_owner_is_gone(ws) -> None:
    first, server = _owner(ws)
    second, reused = _owner(ws)
    try:
        assert reused == server, "the second process should reuse the registered server"
        first.kill()
        first.wait()
        time.sleep(8)  # longer than the watchdog's grace period
        assert _alive(server), "server stopped while the second owner still uses it"
        second.terminate()  # a normal exit: drops its lease
        second.wait(timeout=30)
        assert _wait_gone(server)
        assert _registry(ws) == {}
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.kill()
        if _alive(server):
            os.kill(server, signal.SIGKILL)


def test_stale_registry_entries_are_removed(ws) -> None:
    cache = Path(ws.env["REFINELAB_MODEL_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (cache / "servers.json").write_text(json.dumps({
        MODEL: {"pid": dead.pid, "base_url": "http://127.0.0.1:9/v1"},
        "other": {"pid": dead.pid, "base_url": "http://127.0.0.1:9/v1"}, "junk": {"pid": "x"}}))
    (cache / "leases" / str(dead.pid)).mkdir(parents=True)
    code = ("import sys; from refinelab.tools.embedded_server import find_running; "
            "print(find_running(sys.argv[1]))")
    out = subprocess.run([sys.executable, "-c", code, MODEL], env=ws.env, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "None"
    assert json.loads((cache / "servers.json").read_text()) == {}
    assert not (cache / "leases" / str(dead.pid)).exists()
