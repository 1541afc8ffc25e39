"""Sandbox fixtures: local backends (cold, warm), the E2B backend over a loopback fake, a host
loopback listener that counts connections, and a planted secret in the runner's environment."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from attacks import SECRET  # noqa: E402

from refinelab.tools.sandbox_base import CodeSandbox, SandboxLimits  # noqa: E402

LIMITS = SandboxLimits(timeout_s=5.0)


def require_bwrap() -> None:
    """Skip without bubblewrap on a developer machine; fail in CI, where it must be installed."""
    if shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin"):
        return
    msg = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="session", autouse=True)
def planted_secret() -> Iterator[str]:
    """A fake API key in the runner's own environment; no sandbox may see it."""
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = SECRET
    yield SECRET
    if old is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = old


class Listener:
    """A host TCP listener on 127.0.0.1 counting accepted connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits = 0
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.hits += 1
            conn.close()


@pytest.fixture(scope="session")
def listener() -> Iterator[Listener]:
    lst = Listener()
    yield lst
    lst.sock.close()


@pytest.fixture(scope="session")
def local_cold() -> Iterator[CodeSandbox]:
    require_bwrap()
    from refinelab.tools.sandbox_local import LocalSandbox

    with LocalSandbox(LIMITS, mode="cold") as box:
        yield box


@pytest.fixture(scope="session")
def local_warm() -> Iterator[CodeSandbox]:
    require_bwrap()
    from refinelab.tools.sandbox_local import LocalSandbox

    with LocalSandbox(LIMITS, mode="warm", workers=2) as box:
        yield box


@pytest.fixture(scope="session")
def fake_e2b() -> Iterator[object]:
    require_bwrap()
    from refinelab.tools.e2b_fake_server import FakeE2BServer

    with FakeE2BServer() as server:
        yield server


@pytest.fixture(scope="session")
def e2b_box(fake_e2b: object) -> Iterator[CodeSandbox]:
    """The real e2b-code-interpreter client, full create/kill path, against the loopback fake."""
    pytest.importorskip("e2b_code_interpreter")
    from refinelab.tools.sandbox_e2b import E2BSandbox

    url = fake_e2b.url  # type: ignore[attr-defined]
    with E2BSandbox(LIMITS, api_key="e2b_test_key", api_url=url, sandbox_url=url) as box:
        yield box


@pytest.fixture(params=["local-cold", "local-warm", "e2b"])
def sandbox(request: pytest.FixtureRequest) -> CodeSandbox:
    name = {"local-cold": "local_cold", "local-warm": "local_warm", "e2b": "e2b_box"}[request.param]
    return request.getfixturevalue(name)
