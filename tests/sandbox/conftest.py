"""Sandbox fixtures: local backends (cold, warm), the E2B backend over a loopback fake, a host
loopback listener that counts connections, and a planted secret in the runner's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from refinelab.tools.sandbox_base import CodeSandbox
from tests.sandbox.attacks import SECRET
from tests.support.sbx_helpers import LIMITS, Listener, require_bwrap


@pytest.fixture(scope="module")
def planted_secret() -> Iterator[str]:
    """A fake API key in the runner's own environment while the attack suite runs; no sandbox may
    see it. Module scope, restored afterwards, so other test folders never see it."""
    old = os.environ.get("OPENAI_API_KEY")
    os.environ["OPENAI_API_KEY"] = SECRET
    yield SECRET
    if old is None:
        os.environ.pop("OPENAI_API_KEY", None)
    else:
        os.environ["OPENAI_API_KEY"] = old


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
    from tests.support.e2b_fake_server import FakeE2BServer

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
