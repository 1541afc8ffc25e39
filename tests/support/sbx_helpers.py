"""Helpers shared by the sandbox tests (a plain module: importing `conftest` by name is fragile
when several test folders each have one)."""

from __future__ import annotations

import os
import shutil
import socket
import threading

import pytest

from refinelab.tools.sandbox_base import SandboxLimits

LIMITS = SandboxLimits(timeout_s=5.0)


def require_bwrap() -> None:
    """Skip without bubblewrap on a developer machine; fail in CI, where it must be installed."""
    if shutil.which("bwrap", path="/usr/bin:/bin:/usr/local/bin"):
        return
    msg = "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)



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
