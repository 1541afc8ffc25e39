"""The adversarial snippets for the local sandbox, as data (stdlib only).

Shared by test_attacks.py (root, in-process) and nonroot_harness.py (run as an unprivileged uid
under the system Python). Every snippet prints ``ESCAPED: ...`` when an attack gets through;
``check`` adds per-case expectations about how it was stopped. ``{HOSTFILE}``, ``{HOSTDIR}``,
``{PORT}`` and ``{SECRET}`` are filled in by the harness.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

SECRET = "sk-test-planted-secret-0123456789"


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    check: Callable[[dict[str, Any]], str | None] = lambda r: None
    allow_subprocess: bool = False
    limits: dict[str, Any] = field(default_factory=dict)


def _killed(r: dict[str, Any]) -> bool:
    return bool(r["timed_out"]) or r["exit_code"] in (137, -9, 152, -24)


def _expect(cond: bool, why: str) -> str | None:
    return None if cond else why


ATTACKS: list[Attack] = [
    Attack("read_secrets", r"""
import glob, os
for p in ["/etc/shadow", "/etc/passwd", "/etc/hostname", "/root/.bashrc", "/root/.ssh/id_rsa",
          "{HOSTFILE}", "/work/main/pyproject.toml", "/work/shared/docs/DESIGN.md", "/home"]:
    try:
        if os.path.isdir(p):
            print("ESCAPED: listed", p, os.listdir(p)[:3])
        else:
            with open(p) as f:
                print("ESCAPED: read", p, f.read(20))
    except OSError:
        pass
print("etc:", sorted(os.listdir("/etc")))
""", lambda r: _expect("etc: ['ld.so.cache', 'localtime']" in r["stdout"] or "etc: ['ld.so.cache']" in r["stdout"],
                      "unexpected /etc view")),
    Attack("write_outside_tmp", r"""
import os, sys
targets = ["/evil", "/usr/evil", "/etc/evil", "/sbx/boot.py", "/sbx/evil", "/proc/sys/kernel/hostname",
           "/dev/evil", "{HOSTDIR}/written", os.path.join(sys.prefix, "evil"), "/home/evil"]
for t in targets:
    try:
        with open(t, "a") as f:
            f.write("x")
        print("ESCAPED: wrote", t)
    except OSError:
        pass
open("/tmp/ok.txt", "w").write("fine")  # scratch is writable
print("scratch ok")
""", lambda r: _expect("scratch ok" in r["stdout"], "scratch not writable")),
    Attack("connect_host_loopback", r"""
import socket
for fam, addr in [(socket.AF_INET, ("127.0.0.1", {PORT})), (socket.AF_INET6, ("::1", {PORT}))]:
    try:
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(addr)
        print("ESCAPED: connected", addr)
    except OSError as e:
        print("blocked", addr[0], type(e).__name__)
"""),
    Attack("connect_outside", r"""
import socket
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    s.connect(("192.0.2.1", 80))  # TEST-NET-1, never routed
    print("ESCAPED: connected out")
except OSError as e:
    print("blocked", type(e).__name__)
try:
    socket.getaddrinfo("example.com", 80)
    print("ESCAPED: DNS works")
except OSError:
    pass
"""),
    Attack("connect_with_sockets_allowed", r"""
import os, socket
print("ifaces", sorted(os.listdir("/sys/class/net")) if os.path.exists("/sys/class/net") else "no /sys")
for addr in [("127.0.0.1", {PORT}), ("192.0.2.1", 80)]:
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(1)
        s.connect(addr)
        print("ESCAPED: connected", addr)
    except OSError as e:
        print("blocked", addr[0], type(e).__name__)
""", allow_subprocess=True),
    Attack("fork_bomb_strict", r"""
import os
n = 0
for _ in range(200):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        os._exit(0)
    n += 1
print("forks", n)
if n:
    print("ESCAPED: forked", n)
"""),
    Attack("fork_bomb_nproc", r"""
import os, time
n = 0
for _ in range(300):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    n += 1
print("forks", n)
if n >= 40:
    print("ESCAPED: forked", n)
""", lambda r: _expect("forks" in r["stdout"], "no fork count"), allow_subprocess=True, limits={"nproc": 16}),
    Attack("subprocess_shell", r"""
import subprocess
try:
    print("ESCAPED:", subprocess.run(["/bin/sh", "-c", "id"], capture_output=True).stdout)
except OSError as e:
    print("blocked", type(e).__name__)
try:
    import os
    os.execv("/usr/bin/id", ["id"])
except OSError as e:
    print("blocked exec", type(e).__name__)
"""),
    Attack("memory_bomb", r"""
chunks = []
try:
    for i in range(64):
        chunks.append(bytearray(64 * 1024 * 1024))
    print("ESCAPED: allocated", len(chunks) * 64, "MiB")
except MemoryError:
    print("MemoryError at", len(chunks) * 64, "MiB")
""", lambda r: _expect("MemoryError at" in r["stdout"] or _killed(r), "memory not limited")),
    Attack("fill_tmpfs", r"""
import os
block = b"\0" * (1 << 20)
for root, limit_mib in [("/tmp", 64), ("/dev/shm", 1), ("/dev", 0)]:
    written, err = 0, None
    try:
        for i in range(40):  # 8 MiB files: RLIMIT_FSIZE (16 MiB) is per file, the tmpfs cap is total
            with open(f"{root}/fill{i}", "wb") as f:
                for _ in range(8):
                    f.write(block)
                    f.flush()
                    written += 1
    except OSError as e:
        err = type(e).__name__ + " " + str(e.errno)
    print(root, written, "MiB", err)
    if written > limit_mib:
        print("ESCAPED: wrote", written, "MiB to", root)
"""),
    Attack("cpu_loop_ignoring_sigxcpu", r"""
import signal
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
while True:
    pass
""", lambda r: _expect(_killed(r), "busy loop not killed")),
    Attack("sleep_forever", r"""
import time
print("sleeping", flush=True)
time.sleep(3600)
print("ESCAPED: woke up")
""", lambda r: _expect(r["timed_out"] and "sleeping" in r["stdout"], "wall clock not enforced")),
    Attack("endless_output", r"""
while True:
    print("x" * 1000)
""", lambda r: _expect(r["output_truncated"] and len(r["stdout"]) <= 64 * 1024, "output not capped")),
    Attack("env_dump", r"""
import glob, os
print(dict(os.environ))
for p in ["/proc/self/environ", "/proc/1/environ", "/proc/2/environ"] + glob.glob("/proc/*/environ"):
    try:
        with open(p, "rb") as f:
            print(p, f.read())
    except OSError as e:
        print(p, type(e).__name__)
""", lambda r: _expect(SECRET not in r["stdout"] and "OPENAI" not in r["stdout"], "secret leaked")),
    Attack("kill_parent", r"""
import os, signal
me = os.getpid()
for target in [-1, os.getppid(), 1, 2, 3, 0 - os.getppid()]:
    if target == me:
        continue
    try:
        os.kill(target, signal.SIGKILL)
        print("ESCAPED: killed", target)
    except OSError as e:
        print("kill", target, type(e).__name__)
"""),
    Attack("raw_syscalls", r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
calls = {
    "unshare(NEWUSER)": (272, 0x10000000), "unshare(NEWNS)": (272, 0x00020000),
    "mount": (165, 0, 0, 0, 0, 0), "ptrace(ATTACH,1)": (101, 16, 1, 0, 0),
    "setuid(0)": (105, 0), "chroot": (161, ctypes.c_char_p(b"/tmp")), "bpf": (321, 0, 0, 0),
    "io_uring_setup": (425, 1, 0), "keyctl": (250, 0, 0, 0, 0), "setns": (308, 0, 0),
    "clone(NEWUSER)": (56, 0x10000000 | 17, 0, 0, 0, 0), "init_module": (175, 0, 0, 0),
}
for name, args in calls.items():
    rc = libc.syscall(*args)
    if rc >= 0:
        print("ESCAPED:", name, rc)
        if rc == 0 and name.startswith("clone"):
            os._exit(0)
    else:
        print(name, "errno", ctypes.get_errno())
print("uid", os.getuid(), os.geteuid())
if os.geteuid() == 0:
    print("ESCAPED: running as uid 0")
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("CapEff") and int(line.split()[1], 16) != 0:
            print("ESCAPED: capabilities", line.strip())
"""),
    Attack("segfault", r"""
import ctypes
ctypes.string_at(0)
""", lambda r: _expect(r["exit_code"] in (139, -11), f"expected a segfault exit code, got {r['exit_code']}")),
    Attack("proc_snooping", r"""
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("pids", pids)
if len(pids) > 3:
    print("ESCAPED: sees", len(pids), "processes")
host_only = {"work", "root", "home", "var", "boot", "srv", "opt", "mnt"}
for pid in [p for p in pids if p != os.getpid()]:
    try:  # user mode: pid 1 is bwrap's init as the same uid, so this is the sandbox's own root
        seen = set(os.listdir(f"/proc/{pid}/root"))
        print("pid", pid, "root", sorted(seen))
        if seen & host_only:
            print("ESCAPED: host root via /proc", pid, sorted(seen))
    except OSError:
        print("pid", pid, "root denied")
    try:
        with open(f"/proc/{pid}/mem", "rb") as f:
            f.seek(0x400000)
            f.read(16)
        print("ESCAPED: read memory of", pid)
    except (OSError, ValueError, OverflowError):
        pass
if os.path.exists("/sys/kernel"):
    print("ESCAPED: /sys visible")
try:
    with open("/proc/sys/kernel/core_pattern", "w") as f:
        f.write("|/tmp/x")
    print("ESCAPED: core_pattern writable")
except OSError:
    pass
"""),
    Attack("thread_bomb", r"""
import threading, time
n = 0
try:
    for _ in range(2000):
        t = threading.Thread(target=time.sleep, args=(5,), daemon=True)
        t.start()
        n += 1
except (RuntimeError, MemoryError):
    pass
print("threads", n)
import os
os._exit(0)
""", lambda r: _expect(not r["timed_out"] or "threads" in r["stdout"], "thread bomb stalled")),
    Attack("setsid_daemon", r"""
import os, time
pid = os.fork()
if pid == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3600)  # holds stdout open
    os._exit(0)
print("parent done")
""", lambda r: _expect("parent done" in r["stdout"], "parent did not finish"), allow_subprocess=True),
]

BY_NAME = {a.name: a for a in ATTACKS}


def render(attack: Attack, *, hostfile: str, hostdir: str, port: int) -> str:
    return (
        attack.code.replace("{HOSTFILE}", hostfile).replace("{HOSTDIR}", hostdir).replace("{PORT}", str(port))
    )


def verdict(attack: Attack, result: dict[str, Any]) -> str | None:
    """None when contained; otherwise why not."""
    text = result["stdout"] + result["stderr"]
    if "ESCAPED" in text:
        return "ESCAPED: " + " | ".join(line for line in text.splitlines() if "ESCAPED" in line)[:500]
    return attack.check(result)
