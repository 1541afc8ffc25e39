"""Local sandbox backend: bubblewrap + setpriv + seccomp-BPF + rlimits (host side).

Two privilege modes, chosen by the euid (see docs/sandbox.md):

* root: privileged bwrap WITHOUT a user namespace, keeping only CAP_SETUID/SETGID/SETPCAP, then
  ``setpriv`` drops to a spare uid (61000 + slot, one slot per live sandbox process, chosen with
  lock files) before Python starts. Root + ``--unshare-user`` would leave the code as kernel uid 0,
  where RLIMIT_NPROC is not enforced, so that combination is never used.
* non-root: unprivileged bwrap ``--unshare-all --unshare-user --uid 65534 --disable-userns``.

Two execution modes: ``cold`` (fresh bwrap per snippet, the reference path) and ``warm`` (a pool of
long-lived sandboxes, each running a pre-imported zygote that forks one jailed child per snippet).

The interpreter is the host's base Python (``realpath(sys.executable)``, its prefix bound
read-only) started with ``-I -S``: no site-packages, no ``.pth`` files. Only the packages named in
``packages`` (default numpy, sympy, mpmath, when installed on the host) are bound read-only into a
``/sbx/site`` view; nothing else of the project venv or the checkout is visible.

There is deliberately no unsandboxed fallback: without bwrap (or setpriv as root, or on a
non-x86_64 kernel) construction raises ``SandboxUnavailable``.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import os
import queue
import selectors
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from . import seccomp_bpf
from .sandbox_base import (
    MIB,
    ExecError,
    ExecResult,
    SandboxError,
    SandboxLimits,
    SandboxUnavailable,
)

HERE = Path(__file__).resolve().parent
BOOT_PY = HERE / "sandbox_boot.py"
SECCOMP_PY = HERE / "seccomp_bpf.py"

DEFAULT_PACKAGES: tuple[str, ...] = ("numpy", "sympy", "mpmath")
DEFAULT_PRELOAD: tuple[str, ...] = ("math", "fractions", "decimal", "statistics", "itertools", "json")
UID_BASE = 61000
MAX_SLOTS = 1000
SLOT_DIR = Path("/run/refinelab-sandbox-slots") if os.geteuid() == 0 else None
COLD_STARTUP_GRACE_S = 0.5  # cold mode: the wall clock also covers bwrap + interpreter start
WARM_REPLY_GRACE_S = 5.0  # warm mode: how long past the deadline the host waits for the zygote
INSTALL_HINT = (
    "bubblewrap (bwrap) is required for the local sandbox: install it with "
    "`apt-get install bubblewrap` (Debian/Ubuntu), `dnf install bubblewrap` or `pacman -S bubblewrap`. "
    "RefineLab never runs untrusted code outside a sandbox."
)
SANDBOX_ENV = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "LANG": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    "PYTHONHASHSEED": "0",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MALLOC_ARENA_MAX": "2",
}
HOST_ENV = {"PATH": "/usr/bin:/bin"}  # bwrap's own pid 1 keeps this env: keep it clean


# --- uid slots (root mode) -----------------------------------------------------------------
class _Slot:
    """A spare uid held through a lock file: without a user namespace RLIMIT_NPROC is counted per
    kernel uid host-wide, so concurrent sandboxes must not share one."""

    def __init__(self) -> None:
        assert SLOT_DIR is not None
        SLOT_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        start = os.getpid() % MAX_SLOTS
        for i in range(MAX_SLOTS):
            n = (start + i) % MAX_SLOTS
            fd = os.open(SLOT_DIR / f"{n}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.fd: int | None = fd
            self.uid = UID_BASE + n
            return
        raise SandboxError("no free sandbox uid slot")

    def release(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


# --- spawning ------------------------------------------------------------------------------
class _Spawner:
    """Starts warm workers from one long-lived daemon thread.

    ``bwrap --die-with-parent`` uses PR_SET_PDEATHSIG, which fires when the *thread* that forked
    bwrap exits, not the process: a worker started from a short-lived thread (a thread pool)
    would be SIGKILLed with it. This thread lives as long as the process.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]] = queue.Queue()
        self._pid = -1

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        with self._lock:
            if self._pid != os.getpid():  # first use, or we are a forked child without the thread
                self._queue = queue.Queue()
                threading.Thread(target=self._loop, args=(self._queue,), name="sandbox-spawner", daemon=True).start()
                self._pid = os.getpid()
            fut: Future[subprocess.Popen[bytes]] = Future()
            self._queue.put((fut, argv, kwargs))
        return fut.result()

    @staticmethod
    def _loop(q: queue.Queue[tuple[Future[subprocess.Popen[bytes]], list[str], dict[str, Any]]]) -> None:
        while True:
            fut, argv, kwargs = q.get()
            try:
                fut.set_result(subprocess.Popen(argv, **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                fut.set_exception(exc)


_SPAWNER = _Spawner()


# --- bwrap argv ----------------------------------------------------------------------------
def _parents(path: str) -> list[str]:
    """Every ancestor of ``path`` below ``/``, outermost first."""
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _package_binds(packages: tuple[str, ...]) -> list[tuple[str, str]]:
    """(host path, sandbox path) for each installed package in ``packages`` (+ ``NAME.libs``)."""
    binds: list[tuple[str, str]] = []
    for name in packages:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue
        if spec.submodule_search_locations:
            src = Path(list(spec.submodule_search_locations)[0])
        elif spec.origin:
            src = Path(spec.origin)
        else:
            continue
        binds.append((str(src), f"/sbx/site/{src.name}"))
        libs = src.parent / f"{name}.libs"  # auditwheel-vendored shared libraries (numpy.libs)
        if libs.is_dir():
            binds.append((str(libs), f"/sbx/site/{libs.name}"))
    return binds


def build_argv(
    *,
    bwrap: str,
    python: str,
    prefix: str,
    boot_args: list[str],
    seccomp_fd: int,
    limits: SandboxLimits,
    uid: int | None,
    package_binds: list[tuple[str, str]],
) -> list[str]:
    """The bwrap command line. ``uid`` set means root mode (privileged bwrap + setpriv)."""
    if uid is not None:
        argv = [bwrap, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
                "--unshare-cgroup-try", "--cap-drop", "ALL",
                "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--cap-add", "CAP_SETPCAP"]  # fmt: skip
    else:
        argv = [bwrap, "--unshare-all", "--unshare-user", "--uid", "65534", "--gid", "65534",
                "--disable-userns", "--cap-drop", "ALL"]  # fmt: skip
    argv += ["--die-with-parent", "--new-session", "--clearenv"]
    for key, value in SANDBOX_ENV.items():
        argv += ["--setenv", key, value]
    argv += ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.lexists(f"/usr/{link}"):
            argv += ["--symlink", f"usr/{link}", f"/{link}"]
    argv += ["--perms", "0755", "--dir", "/etc"]
    for f in ("/etc/ld.so.cache", "/etc/localtime"):
        argv += ["--ro-bind-try", f, f]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(limits.tmpfs_mb * MIB), "--tmpfs", "/tmp",
             "--perms", "1777", "--size", str(MIB), "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]  # fmt: skip
    made: set[str] = {"/etc", "/usr", "/tmp", "/dev", "/proc"}
    if not (prefix == "/usr" or prefix.startswith("/usr/")):
        for parent in _parents(prefix):
            if parent not in made:
                argv += ["--perms", "0755", "--dir", parent]
                made.add(parent)
        argv += ["--ro-bind", prefix, prefix]
    argv += ["--perms", "0755", "--dir", "/sbx", "--perms", "0755", "--dir", "/sbx/site",
             "--ro-bind", str(BOOT_PY), "/sbx/boot.py", "--ro-bind", str(SECCOMP_PY), "/sbx/seccomp_bpf.py"]  # fmt: skip
    for src, dst in package_binds:
        argv += ["--ro-bind", src, dst]
    argv += ["--remount-ro", "/", "--chdir", "/tmp", "--seccomp", str(seccomp_fd), "--"]
    if uid is not None:
        argv += [_setpriv(), f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--"]  # fmt: skip
    argv += [python, "-I", "-S", "-B", "/sbx/boot.py", *boot_args]
    return argv


def _setpriv() -> str:
    return shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin") or "/usr/bin/setpriv"


def _seccomp_fd() -> int:
    """An inheritable memfd holding the BASE program, positioned at 0 for bwrap to read."""
    fd = os.memfd_create("refinelab-seccomp", 0)
    os.write(fd, seccomp_bpf.base_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _to_result(raw: dict[str, Any], *, timed_out: bool, truncated: bool, duration: float) -> ExecResult:
    """Raw pipes + meta -> ExecResult. SIGXCPU (CPU rlimit) counts as a timeout."""
    meta = raw.get("meta") or {}
    err = meta.get("error")
    code = raw.get("exit_code")
    if code in (128 + signal.SIGXCPU, -signal.SIGXCPU):
        timed_out = True
    return ExecResult(
        stdout=raw.get("stdout", ""),
        stderr=raw.get("stderr", ""),
        result_text=meta.get("result"),
        error=ExecError(str(err.get("name")), str(err.get("value")), str(err.get("traceback")))
        if isinstance(err, dict)
        else None,
        exit_code=code,
        timed_out=timed_out,
        output_truncated=truncated,
        duration_s=duration,
    )


# --- warm worker ---------------------------------------------------------------------------
class WarmWorker:
    """One long-lived sandbox running the zygote; serves one snippet at a time."""

    def __init__(self, owner: LocalSandbox) -> None:
        self.owner = owner
        self.runs = 0
        self._kill_lock = threading.Lock()
        self._killed = False
        self.slot = _Slot() if owner.privileged else None
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker
        sec_fd = _seccomp_fd()
        try:
            argv = owner._argv(["zygote", ",".join(owner.preload)], sec_fd, self.slot)
            self.proc = _SPAWNER.popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                env=HOST_ENV, start_new_session=True, close_fds=True, pass_fds=(sec_fd,),
            )  # fmt: skip
        except BaseException:
            self._release()
            raise
        finally:
            os.close(sec_fd)
        ready = self._recv(time.monotonic() + owner.worker_start_timeout_s)
        if not ready or not ready.get("ready"):
            diag = self._diagnostics()
            self.kill()
            raise SandboxError(f"sandbox worker failed to start: {diag}")
        self.preloaded: list[str] = ready.get("preloaded", [])

    def _diagnostics(self) -> str:
        with contextlib.suppress(OSError):
            self._stderr.seek(0)
            return self._stderr.read(4000).decode("utf-8", "replace").strip()
        return ""

    def _recv(self, deadline: float) -> dict[str, Any] | None:
        """Read one length-prefixed JSON frame before ``deadline``; None on EOF/timeout."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = b""
        need = 4
        length: int | None = None
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while len(buf) < need:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    return None
                chunk = os.read(fd, need - len(buf))
                if not chunk:
                    return None
                buf += chunk
                if length is None and len(buf) == 4:
                    length = struct.unpack(">I", buf)[0]
                    need, buf = length, b""
                    if length == 0:
                        break
        return json.loads(buf)

    def run(self, code: str, limits: SandboxLimits) -> tuple[ExecResult, bool]:
        """Run one snippet; returns (result, healthy). Unhealthy workers get recycled."""
        t0 = time.monotonic()
        req = {"code": code, "limits": limits.rlimits(), "timeout_s": limits.timeout_s,
               "output_bytes": limits.output_bytes}  # fmt: skip
        data = json.dumps(req).encode()
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(struct.pack(">I", len(data)) + data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            diag = self._diagnostics()
            self.kill()
            raise SandboxError(f"sandbox worker died: {diag}") from exc
        self.runs += 1
        raw = self._recv(t0 + limits.timeout_s + WARM_REPLY_GRACE_S)
        if raw is None:  # zygote hung or died: the whole sandbox goes
            alive = self.proc.poll() is None
            diag = f"status {self.proc.poll()}: {self._diagnostics()}"
            self.kill()
            if alive:
                return ExecResult(timed_out=True, exit_code=-signal.SIGKILL,
                                  duration_s=time.monotonic() - t0), False  # fmt: skip
            raise SandboxError(f"sandbox worker died: {diag}")
        res = _to_result(raw, timed_out=bool(raw.get("timed_out")),
                         truncated=bool(raw.get("output_truncated")), duration=time.monotonic() - t0)  # fmt: skip
        healthy = not (res.timed_out or res.output_truncated or (res.exit_code or 0) < 0)
        healthy = healthy and self.runs < self.owner.max_runs_per_worker
        return res, healthy

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """Kill the whole sandbox (idempotent; may race with ``close()`` from another thread)."""
        with self._kill_lock:
            if self._killed:
                return
            self._killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=5)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()  # type: ignore[union-attr]
        self._release()

    def _release(self) -> None:
        with contextlib.suppress(Exception):
            self._stderr.close()
        if self.slot is not None:
            self.slot.release()


# --- the backend ---------------------------------------------------------------------------
class LocalSandbox:
    """``CodeSandbox`` on bubblewrap. Thread-safe; ``workers`` snippets run concurrently in warm mode.

    Args:
        limits: default resource policy (``execute(timeout_s=...)`` overrides the wall clock).
        mode: ``"warm"`` (zygote pool, ~ms per snippet) or ``"cold"`` (fresh sandbox per snippet).
        workers: warm pool size (one per core is a good default for batch validation).
        preload: modules the zygote imports once (add ``"sympy", "numpy"`` for PoT; ~0.3 s start).
        packages: host packages exposed read-only under ``/sbx/site``.
        bwrap: path or name of the bwrap binary.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        mode: str = "warm",
        workers: int = 1,
        preload: tuple[str, ...] = DEFAULT_PRELOAD,
        packages: tuple[str, ...] = DEFAULT_PACKAGES,
        bwrap: str = "bwrap",
        max_runs_per_worker: int = 500,
        worker_start_timeout_s: float = 60.0,
    ) -> None:
        if mode not in ("warm", "cold"):
            raise ValueError("mode must be 'warm' or 'cold'")
        self.limits = limits or SandboxLimits()
        self.mode = mode
        self.preload = tuple(preload)
        self.max_runs_per_worker = max_runs_per_worker
        self.worker_start_timeout_s = worker_start_timeout_s
        self.bwrap = self._find_bwrap(bwrap)
        if not seccomp_bpf.supported():
            raise SandboxUnavailable("the local sandbox's seccomp filter supports x86_64 Linux only")
        self.privileged = os.geteuid() == 0
        if self.privileged and not os.access(_setpriv(), os.X_OK):
            raise SandboxUnavailable("setpriv (util-linux) is required to drop privileges as root")
        self.python = os.path.realpath(sys.executable)
        self.prefix = os.path.realpath(sys.base_prefix)
        if not self.python.startswith(self.prefix + "/"):
            raise SandboxUnavailable(f"interpreter {self.python} is not under its prefix {self.prefix}")
        self.package_binds = _package_binds(tuple(packages))
        self._pool: queue.Queue[WarmWorker | None] = queue.Queue()
        for _ in range(max(1, workers) if mode == "warm" else 0):
            self._pool.put(None)
        self._workers: set[WarmWorker] = set()
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def _find_bwrap(bwrap: str) -> str:
        path = bwrap if os.sep in bwrap else shutil.which(bwrap, path="/usr/bin:/bin:/usr/local/bin")
        if not path or not os.access(path, os.X_OK):
            raise SandboxUnavailable(INSTALL_HINT)
        return path

    def _argv(self, boot_args: list[str], seccomp_fd: int, slot: _Slot | None, limits: SandboxLimits | None = None) -> list[str]:
        return build_argv(
            bwrap=self.bwrap, python=self.python, prefix=self.prefix, boot_args=boot_args,
            seccomp_fd=seccomp_fd, limits=limits or self.limits,
            uid=slot.uid if slot is not None else None, package_binds=self.package_binds,
        )  # fmt: skip

    # -- public API --
    def execute(self, code: str, *, timeout_s: float | None = None) -> ExecResult:
        """Run ``code`` in a fresh jailed interpreter; user failures come back in the result."""
        if self._closed:
            raise SandboxError("sandbox is closed")
        limits = self.limits.with_timeout(timeout_s)
        if self.mode == "cold":
            return self._run_cold(code, limits)
        return self._run_warm(code, limits)

    def check(self) -> None:
        """Run a trivial snippet; raise ``SandboxUnavailable`` if the sandbox cannot work here."""
        try:
            res = self.execute("6 * 7", timeout_s=max(self.limits.timeout_s, 30.0))
        except SandboxError as exc:
            raise SandboxUnavailable(str(exc)) from exc
        if res.result_text != "42":
            raise SandboxUnavailable(f"sandbox self-test failed: {res.to_json()}")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            workers, self._workers = list(self._workers), set()
        for w in workers:
            w.kill()

    def __enter__(self) -> LocalSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # -- warm --
    def _run_warm(self, code: str, limits: SandboxLimits) -> ExecResult:
        worker = self._pool.get()
        try:
            if worker is None or not worker.alive():
                if worker is not None:
                    self._discard(worker)
                worker = WarmWorker(self)
                with self._lock:
                    self._workers.add(worker)
                if self._closed:
                    raise SandboxError("sandbox is closed")
            res, healthy = worker.run(code, limits)
            if not healthy:
                self._discard(worker)
                worker = None
            return res
        except BaseException:
            if worker is not None:
                self._discard(worker)
                worker = None
            raise
        finally:
            self._pool.put(worker)

    def _discard(self, worker: WarmWorker) -> None:
        worker.kill()
        with self._lock:
            self._workers.discard(worker)

    # -- cold --
    def _run_cold(self, code: str, limits: SandboxLimits) -> ExecResult:
        t0 = time.monotonic()
        slot = _Slot() if self.privileged else None
        sec_fd = _seccomp_fd()
        meta_r, meta_w = os.pipe()
        try:
            argv = self._argv(["cold", str(meta_w)], sec_fd, slot, limits)
            proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=HOST_ENV, start_new_session=True, close_fds=True, pass_fds=(sec_fd, meta_w),
            )  # fmt: skip
        except BaseException:
            os.close(meta_r)
            if slot:
                slot.release()
            raise
        finally:
            os.close(sec_fd)
            os.close(meta_w)
        try:
            raw, timed_out, truncated = self._pump(proc, meta_r, code, limits, t0)
        finally:
            os.close(meta_r)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                with contextlib.suppress(Exception):
                    stream.close()  # type: ignore[union-attr]
            if slot:
                slot.release()
        raw["exit_code"] = proc.returncode
        if raw["meta"] is None and proc.returncode == 1 and raw["stderr"].startswith("bwrap:"):
            raise SandboxError(f"bubblewrap failed to set up the sandbox: {raw['stderr'].strip()}")
        return _to_result(raw, timed_out=timed_out, truncated=truncated, duration=time.monotonic() - t0)

    @staticmethod
    def _pump(
        proc: subprocess.Popen[bytes], meta_r: int, code: str, limits: SandboxLimits, t0: float
    ) -> tuple[dict[str, Any], bool, bool]:
        """Feed the request, read capped stdout/stderr/meta until EOF, the cap or the deadline."""
        assert proc.stdin and proc.stdout and proc.stderr
        request = memoryview(json.dumps({"code": code, "limits": limits.rlimits()}).encode())
        out_fd, err_fd, in_fd = proc.stdout.fileno(), proc.stderr.fileno(), proc.stdin.fileno()
        bufs = {out_fd: bytearray(), err_fd: bytearray(), meta_r: bytearray()}
        caps = {out_fd: limits.output_bytes, err_fd: limits.output_bytes, meta_r: 4 * limits.output_bytes + 65536}
        os.set_blocking(in_fd, False)
        deadline = t0 + limits.timeout_s + COLD_STARTUP_GRACE_S
        timed_out = truncated = False
        with selectors.DefaultSelector() as sel:
            for fd in bufs:
                sel.register(fd, selectors.EVENT_READ)
            sel.register(in_fd, selectors.EVENT_WRITE)
            open_fds = set(bufs)
            while open_fds and not truncated:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                for key, _ in sel.select(left):
                    fd = key.fd
                    if fd == in_fd:
                        try:
                            n = os.write(in_fd, request[:65536])
                        except (BrokenPipeError, BlockingIOError, OSError):
                            n = len(request)
                        request = request[n:]
                        if not request:
                            sel.unregister(in_fd)
                            proc.stdin.close()
                        continue
                    chunk = os.read(fd, 65536)
                    if not chunk:
                        sel.unregister(fd)
                        open_fds.discard(fd)
                        continue
                    room = caps[fd] - len(bufs[fd])
                    bufs[fd] += chunk[:room]
                    if len(chunk) > room:
                        truncated = True
        try:
            meta = json.loads(bytes(bufs[meta_r]) or b"null")
        except ValueError:
            meta = None
        raw = {
            "stdout": bufs[out_fd].decode("utf-8", "replace"),
            "stderr": bufs[err_fd].decode("utf-8", "replace"),
            "meta": meta if isinstance(meta, dict) else None,
        }
        return raw, timed_out, truncated
