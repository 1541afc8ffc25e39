"""In-sandbox bootstrap: runs INSIDE bubblewrap, bound read-only at ``/sbx/boot.py``.

Started as ``python -I -S -B /sbx/boot.py cold META_FD`` (one snippet, request on stdin) or
``... zygote MOD,MOD`` (warm worker: pre-imports modules, then forks one jailed child per request
read from stdin as length-prefixed JSON). Stdlib only, no relative imports: ``seccomp_bpf`` is
imported from ``/sbx``, extra packages (numpy, sympy) from the read-only ``/sbx/site`` view.

Every snippet runs in ``enter_jail``: scratch cwd, hard rlimits, then the strict seccomp filter.
The user's code runs Jupyter style: the repr of a trailing expression is the result; an exception
becomes ``{name, value, traceback}`` on the meta fd. Output caps and the wall clock are enforced
by whoever reads the pipes (the host in cold mode, the zygote in warm mode).
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import json
import linecache
import os
import resource
import selectors
import shutil
import signal
import struct
import sys
import time
import traceback

SBX_DIR = "/sbx"
SITE_DIR = "/sbx/site"
SCRATCH = "/tmp/work"
CELL = "<cell>"

sys.path[:0] = [SBX_DIR, SITE_DIR]
import seccomp_bpf  # noqa: E402  (bound next to this file inside the sandbox)


# --- the jail -------------------------------------------------------------------------------
def prepare_scratch() -> None:
    """Empty ``/tmp`` and ``/dev/shm`` (both private tmpfs) and recreate ``/tmp/work``."""
    for root in ("/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(root))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
            except OSError:
                pass
    os.makedirs(SCRATCH, exist_ok=True)


def enter_jail(lim: dict, pid: int) -> None:
    """Scratch cwd, rlimits (hard = soft; CPU hard = soft + 1 -> SIGKILL), strict seccomp."""
    os.chdir(SCRATCH)
    cpu = int(lim["cpu_s"])
    limits = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, lim["as_bytes"], lim["as_bytes"]),
        (resource.RLIMIT_FSIZE, lim["fsize_bytes"], lim["fsize_bytes"]),
        (resource.RLIMIT_NOFILE, lim["nofile"], lim["nofile"]),
        (resource.RLIMIT_NPROC, lim["nproc"], lim["nproc"]),
        (resource.RLIMIT_CORE, 0, 0),
        (resource.RLIMIT_MEMLOCK, 0, 0),
        (resource.RLIMIT_MSGQUEUE, 0, 0),
    ]
    for which, soft, hard in limits:
        resource.setrlimit(which, (soft, hard))
    if not lim.get("allow_subprocess"):
        seccomp_bpf.install(seccomp_bpf.strict_program(pid))


# --- running user code ----------------------------------------------------------------------
def _format_tb(exc: BaseException) -> str:
    """Traceback without the bootstrap's own frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != CELL:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def run_user(code: str, meta_fd: int) -> None:
    """Run ``code`` Jupyter style, write ``{result, error}`` to ``meta_fd`` and exit."""
    meta: dict = {"result": None, "error": None}
    status = 0
    linecache.cache[CELL] = (len(code), None, code.splitlines(True), CELL)
    glb: dict = {"__name__": "__main__", "__builtins__": builtins}
    try:
        tree = ast.parse(code, CELL, "exec")
        last = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, CELL, "exec"), glb)
        if last is not None:
            value = eval(compile(last, CELL, "eval"), glb)
            if value is not None:
                meta["result"] = repr(value)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            status = exc.code or 0
        else:
            print(exc.code, file=sys.stderr)
            status = 1
    except BaseException as exc:  # noqa: BLE001 - every user failure becomes data
        meta["error"] = {"name": type(exc).__name__, "value": str(exc), "traceback": _format_tb(exc)}
        status = 1
    with contextlib.suppress(BaseException):
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(BaseException):  # the user may have closed it; the host copes
        os.write(meta_fd, json.dumps(meta).encode())
    os._exit(status & 0xFF)


def _line_buffered_stdio() -> None:
    """Fresh line-buffered stdio on fds 1/2 so output before a kill is not lost."""
    opts = {"buffering": 1, "encoding": "utf-8", "errors": "backslashreplace", "closefd": False}
    sys.stdout = open(1, "w", **opts)  # noqa: SIM115 - replaces the process-wide stream
    sys.stderr = open(2, "w", **opts)  # noqa: SIM115


# --- cold mode ------------------------------------------------------------------------------
def cold(meta_fd: int) -> None:
    req = json.loads(sys.stdin.buffer.read())
    devnull = os.open("/dev/null", os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    prepare_scratch()
    _line_buffered_stdio()
    enter_jail(req["limits"], os.getpid())
    run_user(req["code"], meta_fd)


# --- warm mode (zygote) ---------------------------------------------------------------------
def _read_exact(fd: int, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def _send(obj: dict) -> None:
    data = json.dumps(obj).encode()
    os.write(1, struct.pack(">I", len(data)) + data)


def _status_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _fork_jailed_child(req: dict, devnull: int) -> tuple[int, int, int, int]:
    """Fork the child that runs one snippet in the jail, stdin from /dev/null and its stdout, stderr and meta
    (fd 3) into pipes; (pid, stdout, stderr, meta read ends). The child never returns here."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    meta_r, meta_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setsid()
            os.dup2(devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            os.dup2(meta_w, 3)
            os.closerange(4, 65536)
            _line_buffered_stdio()
            enter_jail(req["limits"], os.getpid())
            run_user(req["code"], 3)
        finally:
            os._exit(70)
    for fd in (out_w, err_w, meta_w):
        os.close(fd)
    return pid, out_r, err_r, meta_r


def _read_pipes(pid: int, bufs: dict[int, bytearray], limits: dict[int, int],
                deadline: float) -> tuple[int | None, bool, bool, bool]:
    """Read the child's pipes into `bufs`, each up to its limit, until they all close, the deadline passes,
    one overflows, or the child has exited and a short drain found nothing more (a leftover holding the pipes
    must not stall us). (wait status or None while the child runs, timed out, truncated, pipes left open)."""
    sel = selectors.DefaultSelector()
    for fd in bufs:
        sel.register(fd, selectors.EVENT_READ)
    timed_out = truncated = False
    status: int | None = None
    drain_until: float | None = None
    open_fds = set(bufs)
    while open_fds:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if drain_until is not None and now >= drain_until:
            break  # child gone; a leftover holding the pipes must not stall us
        wait = min(deadline - now, 0.05)
        for key, _ in sel.select(wait):
            fd = key.fd
            chunk = os.read(fd, 65536)
            if not chunk:
                sel.unregister(fd)
                open_fds.discard(fd)
                continue
            buf = bufs[fd]
            room = limits[fd] - len(buf)
            buf += chunk[:room]
            if len(chunk) > room:
                truncated = True
        if truncated:
            break
        if status is None:
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                status = st
                drain_until = time.monotonic() + 0.05
    sel.close()
    return status, timed_out, truncated, bool(open_fds)


def _sweep_strays() -> None:
    """Kill whatever the snippet left running and reap it: every process but bwrap (pid 1) and ourselves."""
    with contextlib.suppress(OSError):
        os.kill(-1, signal.SIGKILL)  # every process we may signal: not pid 1 (bwrap), not ourselves
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


def _meta(raw: bytearray) -> dict | None:
    """The child's meta record (`run_user`'s result and error), None when it wrote none or garbage."""
    try:
        meta = json.loads(bytes(raw) or b"null")
    except ValueError:
        meta = None
    return meta if isinstance(meta, dict) else None


def serve_one(req: dict, devnull: int) -> dict:
    """Fork a jailed child for one snippet; cap its output, enforce the wall clock, sweep after."""
    t0 = time.monotonic()
    cap = int(req["output_bytes"])
    pid, out_r, err_r, meta_r = _fork_jailed_child(req, devnull)
    bufs = {out_r: bytearray(), err_r: bytearray(), meta_r: bytearray()}
    limits = {out_r: cap, err_r: cap, meta_r: 4 * cap + 65536}
    status, timed_out, truncated, pipes_open = _read_pipes(pid, bufs, limits, t0 + float(req["timeout_s"]))
    if status is None:
        if timed_out or truncated or pipes_open:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    for fd in bufs:
        os.close(fd)
    _sweep_strays()
    prepare_scratch()
    return {
        "stdout": bufs[out_r].decode("utf-8", "replace"),
        "stderr": bufs[err_r].decode("utf-8", "replace"),
        "meta": _meta(bufs[meta_r]),
        "exit_code": _status_code(status),
        "timed_out": timed_out,
        "output_truncated": truncated,
        "duration_s": time.monotonic() - t0,
    }


def zygote(preload: list[str]) -> None:
    loaded = []
    for name in preload:
        try:
            __import__(name)
            loaded.append(name)
        except Exception:  # noqa: BLE001 - a missing optional package just is not preloaded
            pass
    import ctypes

    ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE=0: no ptrace / proc peeking
    devnull = os.open("/dev/null", os.O_RDWR)
    prepare_scratch()
    _send({"ready": True, "preloaded": loaded, "pid": os.getpid()})
    while True:
        head = _read_exact(0, 4)
        if head is None:
            os._exit(0)
        body = _read_exact(0, struct.unpack(">I", head)[0])
        if body is None:
            os._exit(0)
        _send(serve_one(json.loads(body), devnull))


def main(argv: list[str]) -> None:
    mode = argv[1]
    if mode == "cold":
        cold(int(argv[2]))
    elif mode == "zygote":
        zygote([m for m in (argv[2] if len(argv) > 2 else "").split(",") if m])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
