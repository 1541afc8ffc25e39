"""Who is using an embedded model server: one lease file per owning process, and the server's watchdog.

A server must not outlive everything that uses it. Each process that starts or reuses a server holds a
lease: a file `leases/<server pid>/<owner pid>` holding the owner's pid and its kernel start time (so a
recycled pid is not mistaken for the owner). The server runs a watchdog thread that looks at its leases
every second; when no owner is alive for `grace_s` seconds it shuts itself down. An owner that exits
normally drops its lease; one that is SIGKILLed simply stops being alive, which the watchdog notices.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_GRACE_S = 5.0


def _start_time(pid: int) -> str | None:
    """The kernel start time of `pid` (field 22 of /proc/PID/stat), or None if it is not running."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return "?"  # no /proc (not Linux): alive, start time unknown
    fields = stat.rsplit(")", 1)[-1].split()
    if len(fields) > 19 and fields[0] == "Z":
        return None  # a zombie is not an owner
    return fields[19] if len(fields) > 19 else "?"


def alive(pid: int, start_time: str | None = None) -> bool:
    now = _start_time(pid)
    if now is None:
        return False
    return start_time in (None, "?") or now in ("?", start_time)


def lease_dir(root: Path, server_pid: int) -> Path:
    return root / "leases" / str(server_pid)


def add_owner(root: Path, server_pid: int, pid: int | None = None) -> Path:
    """Record `pid` (default: this process) as a user of the server."""
    pid = pid or os.getpid()
    folder = lease_dir(root, server_pid)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / str(pid)
    path.write_text(f"{pid} {_start_time(pid) or '?'}\n")
    return path


def remove_owner(root: Path, server_pid: int, pid: int | None = None) -> None:
    with contextlib.suppress(OSError):
        (lease_dir(root, server_pid) / str(pid or os.getpid())).unlink()


def live_owners(root: Path, server_pid: int, exclude: int | None = None) -> list[int]:
    """Pids of the server's owners that are still running; leases of dead owners are removed."""
    folder = lease_dir(root, server_pid)
    owners = []
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    for entry in entries:
        try:
            pid_text, _, start = entry.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        if alive(pid, start or None):
            if pid != exclude:
                owners.append(pid)
        else:
            with contextlib.suppress(OSError):
                entry.unlink()
    return owners


def drop_all(root: Path, server_pid: int) -> None:
    shutil.rmtree(lease_dir(root, server_pid), ignore_errors=True)


def watchdog(root: Path, server_pid: int, on_orphaned: Callable[[], None], grace_s: float = DEFAULT_GRACE_S,
             interval_s: float = 1.0) -> threading.Thread:
    """A daemon thread calling `on_orphaned()` once no owner has been alive for `grace_s` seconds."""

    def loop() -> None:
        alone_since: float | None = None
        while True:
            time.sleep(interval_s)
            if live_owners(root, server_pid):
                alone_since = None
                continue
            alone_since = alone_since or time.monotonic()
            if time.monotonic() - alone_since >= grace_s:
                on_orphaned()
                return

    thread = threading.Thread(target=loop, name="refinelab-lease-watchdog", daemon=True)
    thread.start()
    return thread
