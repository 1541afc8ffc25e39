"""Run llama.cpp's OpenAI-compatible server (xllamacpp) on 127.0.0.1 for the embedded model.

The server runs in a child process (`python -m refinelab.tools.serve_llm`) so that a crash in
llama.cpp cannot take the caller down and SIGTERM shuts it down cleanly. A small JSON file under the
cache dir records running servers so a second caller reuses one instead of loading the model twice.

Every process using a server holds a lease on it (tools/leases.py) and the server watches its owners'
pids: when none is alive it exits, so a SIGKILLed run or a SIGTERMed `model serve` never leaves a
1.5 GB llama.cpp process behind. Registry entries of dead servers are removed whenever it is read.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from refinelab.config import DEFAULT_MODEL
from refinelab.tools import leases
from refinelab.tools.model_weights import cache_dir, model_path

#: How many times a llama.cpp thread spins at an OpenMP barrier before it sleeps (libgomp's GOMP_SPINCOUNT).
#: llama.cpp runs one thread per core and meets its other threads at a barrier after every operation; by
#: default libgomp spins there ~300,000 times. When any other process wants a core (the run's own
#: embeddings, a test beside it, the user's editor), the thread it displaced is waited for by a thread
#: that spins away its whole time slice, at every barrier: 12 chat replies of the 1.5B took 31 s alone and
#: had not finished after 150 s beside one busy process. Spinning 1,000 times, then sleeping: 34 s alone,
#: 57 s beside the busy process (evals/results/bench_server_contention.md). A value the user set is kept.
GOMP_SPINCOUNT = "1000"


def server_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the server process starts with: ours, with a bounded OpenMP spin (above)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("GOMP_SPINCOUNT", GOMP_SPINCOUNT)
    return env


class ServerStartError(RuntimeError):
    """The embedded server did not become healthy."""


@dataclass
class ServerHandle:
    """A running embedded server: its base URL and, if we started it, its process."""

    model: str
    base_url: str  # e.g. http://127.0.0.1:43227/v1
    pid: int
    process: subprocess.Popen[bytes] | None = None

    def healthy(self) -> bool:
        return _health(self.base_url.removesuffix("/v1"))

    def release(self) -> None:
        """Drop this process's lease; stop the server if we started it and nobody else uses it (the
        server's watchdog stops it anyway once its last owner is gone)."""
        leases.remove_owner(cache_dir(), self.pid)
        if self.process is not None and not leases.live_owners(cache_dir(), self.pid, exclude=os.getpid()):
            self.stop()

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        leases.remove_owner(cache_dir(), self.pid)
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        _forget(self.model, self.pid)


def _health(root: str) -> bool:
    try:
        return httpx.get(f"{root}/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _registry_file() -> Path:
    return cache_dir() / "servers.json"


def _read_registry() -> dict[str, dict[str, object]]:
    """Registered servers whose process is alive; entries of dead servers are removed from the file."""
    try:
        data = json.loads(_registry_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    live: dict[str, dict[str, object]] = {}
    for model, entry in data.items():
        try:
            pid = int(entry["pid"])
        except (TypeError, KeyError, ValueError):
            continue
        if _pid_alive(pid):
            live[model] = entry
        else:
            leases.drop_all(cache_dir(), pid)
    if live != data:
        with contextlib.suppress(OSError):
            _write_registry(live)
    return live


def _write_registry(data: dict[str, dict[str, object]]) -> None:
    from refinelab.atomic import atomic_write_text

    atomic_write_text(_registry_file(), json.dumps(data))


def _forget(model: str, pid: int) -> None:
    data = _read_registry()
    if data.get(model, {}).get("pid") == pid:
        del data[model]
        _write_registry(data)


def forget_server(pid: int) -> None:
    """Remove every registry entry of server `pid` (called by the server itself as it exits)."""
    try:
        data = json.loads(_registry_file().read_text())
    except (OSError, ValueError):
        return
    if isinstance(data, dict):
        kept = {m: e for m, e in data.items() if not (isinstance(e, dict) and e.get("pid") == pid)}
        if kept != data:
            with contextlib.suppress(OSError):
                _write_registry(kept)


def _pid_alive(pid: int) -> bool:
    return leases.alive(pid)


def find_running(model: str = DEFAULT_MODEL) -> ServerHandle | None:
    """A healthy server for `model` started earlier by any process, or None."""
    entry = _read_registry().get(model)
    if not entry:
        return None
    pid, url = int(entry["pid"]), str(entry["base_url"])
    if _pid_alive(pid) and _health(url.removesuffix("/v1")):
        leases.add_owner(cache_dir(), pid)  # we use it now: it stays up until we are gone
        atexit.register(leases.remove_owner, cache_dir(), pid, os.getpid())
        return ServerHandle(model=model, base_url=url, pid=pid)
    return None


def start_server(
    model: str = DEFAULT_MODEL,
    *,
    ctx: int = 4096,
    threads: int | None = None,
    parallel: int = 2,
    startup_timeout_s: float = 120.0,
    register: bool = True,
    stop_at_exit: bool = True,
) -> ServerHandle:
    """Start a fresh server for `model` on a free loopback port and wait until /health answers."""
    gguf = model_path(model)
    threads = threads or max(1, os.cpu_count() or 1)
    log_path = cache_dir() / f"server-{model}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "refinelab.tools.serve_llm", "--model", str(gguf), "--alias", model,
        "--ctx", str(ctx), "--threads", str(threads), "--parallel", str(parallel), "--port", "0",
        "--owner-pid", str(os.getpid()), "--lease-root", str(cache_dir()),
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, start_new_session=True,
                                   env=server_environment())
    assert process.stdout is not None
    deadline = time.monotonic() + startup_timeout_s
    address = process.stdout.readline().decode().strip()  # the launcher prints its address once loaded
    if not address.startswith("http"):
        process.kill()
        raise ServerStartError(f"embedded server for {model} failed to start; see {log_path}")
    handle = ServerHandle(model=model, base_url=f"{address}/v1", pid=process.pid, process=process)
    leases.add_owner(cache_dir(), process.pid)
    while not handle.healthy():
        if process.poll() is not None or time.monotonic() > deadline:
            handle.stop()
            raise ServerStartError(f"embedded server for {model} not healthy; see {log_path}")
        time.sleep(0.2)
    if register:
        data = _read_registry()
        data[model] = {"pid": process.pid, "base_url": handle.base_url}
        _write_registry(data)
    if stop_at_exit:
        atexit.register(handle.release)
    return handle


def serve_until_signalled(handle: ServerHandle, announce: Callable[[], None] | None = None) -> None:
    """Block while the server runs; Ctrl-C, SIGTERM or SIGHUP stop it (and a SIGKILL of this process
    is caught by the server's lease watchdog).

    SIGINT gets the handler too: a process started in the background by a non-interactive shell (or
    under `nohup`) inherits SIGINT (SIGHUP) as ignored, and Python then installs no KeyboardInterrupt
    handler, so Ctrl-C-by-signal was silently ignored. `announce` (e.g. printing the address) runs only
    once the handlers are in place: whoever reads it may signal at once."""

    def stop_now(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop_now) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    if announce is not None:
        announce()
    try:
        while handle.process is not None and handle.process.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        handle.stop()


def ensure_server(model: str = DEFAULT_MODEL, **kwargs: object) -> ServerHandle:
    """Reuse a running server for `model` or start one."""
    running = find_running(model)
    if running is not None:
        return running
    return start_server(model, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def serving(model: str = DEFAULT_MODEL, **kwargs: object):  # type: ignore[no-untyped-def]
    """Context manager that starts a private server and always stops it."""
    handle = start_server(model, register=False, stop_at_exit=False, **kwargs)  # type: ignore[arg-type]
    try:
        yield handle
    finally:
        handle.stop()
