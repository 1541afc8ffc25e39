"""The validator's sandbox attack suite, run from the reliability suite (the cases live in
tests/sandbox/attacks.py; this only runs them against a cold local sandbox and checks containment)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.sandbox.attack_runner import run_all
from tests.sandbox.attacks import ATTACKS, SECRET
from tests.support.sbx_helpers import Listener, require_bwrap


@pytest.mark.serial  # shares the sandbox's uids with every other sandbox run on the machine
def test_every_sandbox_attack_is_contained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_bwrap()
    if os.geteuid() != 0:
        pytest.skip("the in-process attack run needs euid 0 (CI runs as root); tests/sandbox covers non-root")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)  # planted: no sandbox may see it
    listener = Listener()
    hostdir, hostfile = tmp_path / "hostdir", tmp_path / "canary.txt"
    hostdir.mkdir()
    hostfile.write_text(f"canary {SECRET}\n")
    try:
        results = run_all("cold", port=listener.port, hostfile=str(hostfile), hostdir=str(hostdir))
    finally:
        listener.sock.close()
    names = {r["name"] for r in results}
    assert {a.name for a in ATTACKS} | {"still_usable"} <= names
    escaped = [r for r in results if r["verdict"] is not None]
    assert not escaped, json.dumps(escaped, indent=1)[:4000]
    assert listener.hits == 0 and list(hostdir.iterdir()) == []
    assert hostfile.read_text() == f"canary {SECRET}\n"
