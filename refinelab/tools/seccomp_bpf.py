"""Hand-assembled seccomp-BPF programs for the local sandbox (x86_64 only, stdlib only).

Why hand-assembled: no dependency (libseccomp / pyseccomp) and the same file is bound read-only
into the sandbox at ``/sbx/seccomp_bpf.py``, where the bootstrap imports it with ``python -I -S``.
So this module must stay stdlib-only and must not use relative imports.

Two programs (see docs/sandbox.md):

* ``base_program()`` is installed by bwrap (``--seccomp FD``) for the whole sandbox: namespace
  creation, mounts, kernel-attack-surface syscalls (bpf, io_uring, keyctl, ptrace, ...) -> EPERM.
* ``strict_program(pid)`` is stacked per snippet (filters stack, the strictest verdict wins): no
  exec, no new processes (threads allowed), signals only to itself, AF_UNIX sockets only.

Other architectures are killed by the arch check (safe but unusable) until they get a table.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct

# --- BPF opcodes (linux/filter.h) ------------------------------------------------------------
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K

# --- seccomp return values (linux/seccomp.h) -------------------------------------------------
RET_KILL_PROCESS = 0x80000000
RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000

AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000

# offsets into struct seccomp_data {int nr; u32 arch; u64 ip; u64 args[6];} (little endian)
_OFF_NR = 0
_OFF_ARCH = 4


def _arg_lo(i: int) -> int:
    """Offset of the low 32 bits of syscall argument ``i``."""
    return 16 + 8 * i


# --- x86_64 syscall numbers (asm/unistd_64.h; checked against the header in the tests) ------
NR: dict[str, int] = {
    "socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "kill": 62,
    "ptrace": 101, "syslog": 103, "rt_sigqueueinfo": 129, "uselib": 134, "ustat": 136,
    "vhangup": 153, "modify_ldt": 154, "pivot_root": 155, "_sysctl": 156, "adjtimex": 159,
    "chroot": 161, "acct": 163, "settimeofday": 164, "mount": 165, "umount2": 166,
    "swapon": 167, "swapoff": 168, "reboot": 169, "sethostname": 170, "setdomainname": 171,
    "iopl": 172, "ioperm": 173, "create_module": 174, "init_module": 175, "delete_module": 176,
    "get_kernel_syms": 177, "query_module": 178, "quotactl": 179, "nfsservctl": 180,
    "getpmsg": 181, "putpmsg": 182, "afs_syscall": 183, "tuxcall": 184, "security": 185,
    "tkill": 200, "lookup_dcookie": 212, "clock_settime": 227, "tgkill": 234, "vserver": 236,
    "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250, "migrate_pages": 256,
    "unshare": 272, "move_pages": 279, "rt_tgsigqueueinfo": 297, "perf_event_open": 298,
    "fanotify_init": 300, "prlimit64": 302, "name_to_handle_at": 303, "open_by_handle_at": 304,
    "clock_adjtime": 305, "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311,
    "kcmp": 312, "finit_module": 313, "kexec_file_load": 320, "bpf": 321, "execveat": 322,
    "userfaultfd": 323, "pidfd_send_signal": 424, "io_uring_setup": 425, "io_uring_enter": 426,
    "io_uring_register": 427, "open_tree": 428, "move_mount": 429, "fsopen": 430,
    "fsconfig": 431, "fsmount": 432, "fspick": 433, "pidfd_open": 434, "clone3": 435,
    "pidfd_getfd": 438, "mount_setattr": 442, "quotactl_fd": 443, "memfd_secret": 447,
}  # fmt: skip

# Refused for the whole sandbox (bwrap --seccomp).
BASE_DENY: tuple[str, ...] = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "bpf", "perf_event_open",
    "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register", "keyctl", "add_key",
    "request_key", "kexec_load", "kexec_file_load", "create_module", "init_module",
    "finit_module", "delete_module", "get_kernel_syms", "query_module", "ptrace",
    "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "open_by_handle_at",
    "name_to_handle_at", "swapon", "swapoff", "reboot", "syslog", "acct", "quotactl",
    "quotactl_fd", "lookup_dcookie", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "iopl", "ioperm", "uselib", "vhangup", "fanotify_init", "nfsservctl",
    "memfd_secret", "migrate_pages", "move_pages", "sethostname", "setdomainname", "_sysctl",
    "ustat", "modify_ldt", "getpmsg", "putpmsg", "afs_syscall", "tuxcall", "security", "vserver",
)  # fmt: skip

# Added per snippet on top of BASE (unless subprocesses are allowed).
STRICT_DENY: tuple[str, ...] = (
    "execve", "execveat", "fork", "vfork", "tkill", "pidfd_open", "pidfd_send_signal",
    "rt_sigqueueinfo", "rt_tgsigqueueinfo",
)  # fmt: skip

CLONE_THREAD = 0x00010000
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NEW_MASK = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x00000080
AF_UNIX = 1


def ret_errno(err: int) -> int:
    """seccomp verdict: fail the syscall with ``err``."""
    return _RET_ERRNO | (err & 0xFFFF)


class _Asm:
    """Tiny BPF assembler with forward labels (classic BPF only jumps forward, max 255)."""

    def __init__(self) -> None:
        self.ins: list[tuple[int, object, object, int]] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, k: int = 0, jt: object = 0, jf: object = 0) -> None:
        self.ins.append((code, jt, jf, k & 0xFFFFFFFF))

    def label(self, name: str) -> None:
        assert name not in self.labels, name
        self.labels[name] = len(self.ins)

    def ret(self, verdict: int) -> None:
        self.op(_RET_K, verdict)

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (code, jt, jf, k) in enumerate(self.ins):
            offs = []
            for target in (jt, jf):
                off = self.labels[target] - pc - 1 if isinstance(target, str) else int(target)  # type: ignore[call-overload]
                if not 0 <= off <= 255:
                    raise ValueError(f"BPF jump out of range at {pc}: {off}")
                offs.append(off)
            out += struct.pack("<HBBI", code, offs[0], offs[1], k)
        return bytes(out)


def _preamble(a: _Asm) -> None:
    a.op(_LD_W_ABS, _OFF_ARCH)
    a.op(_JEQ_K, AUDIT_ARCH_X86_64, 0, "kill")
    a.op(_LD_W_ABS, _OFF_NR)
    a.op(_JGE_K, X32_SYSCALL_BIT, "enosys", 0)


def _epilogue(a: _Asm) -> None:
    a.label("allow")
    a.ret(RET_ALLOW)
    a.label("eperm")
    a.ret(ret_errno(errno.EPERM))
    a.label("enosys")
    a.ret(ret_errno(errno.ENOSYS))
    a.label("kill")
    a.ret(RET_KILL_PROCESS)


def base_program() -> bytes:
    """Whole-sandbox filter: no namespaces/mounts/kernel attack surface; clone3 -> ENOSYS."""
    a = _Asm()
    _preamble(a)
    a.op(_JEQ_K, NR["clone3"], "enosys", 0)  # glibc then falls back to clone(), which we can inspect
    for name in BASE_DENY:
        a.op(_JEQ_K, NR[name], "eperm", 0)
    a.op(_JEQ_K, NR["clone"], "clone", 0)
    a.ret(RET_ALLOW)
    a.label("clone")
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JSET_K, CLONE_NEW_MASK, "eperm", 0)
    a.ret(RET_ALLOW)
    _epilogue(a)
    return a.assemble()


def strict_program(pid: int) -> bytes:
    """Per-snippet filter for process ``pid``: threads yes; exec, fork, foreign signals, inet no."""
    me = pid & 0xFFFFFFFF
    neg_me = (-pid) & 0xFFFFFFFF
    a = _Asm()
    _preamble(a)
    for name in STRICT_DENY:
        a.op(_JEQ_K, NR[name], "eperm", 0)
    a.op(_JEQ_K, NR["clone"], "clone", 0)
    a.op(_JEQ_K, NR["kill"], "kill_sys", 0)
    a.op(_JEQ_K, NR["tgkill"], "tgkill", 0)
    a.op(_JEQ_K, NR["prlimit64"], "prlimit", 0)
    a.op(_JEQ_K, NR["socket"], "socket", 0)
    a.ret(RET_ALLOW)
    a.label("clone")  # only threads: CLONE_THREAD must be set
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JSET_K, CLONE_THREAD, "allow", "eperm")
    a.label("kill_sys")  # kill(pid, sig): pid in {0, self, -self}
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JEQ_K, 0, "allow", 0)
    a.op(_JEQ_K, me, "allow", 0)
    a.op(_JEQ_K, neg_me, "allow", "eperm")
    a.label("tgkill")  # tgkill(tgid, tid, sig): own thread group only
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JEQ_K, me, "allow", "eperm")
    a.label("prlimit")  # prlimit64(pid, ...): self only
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JEQ_K, 0, "allow", 0)
    a.op(_JEQ_K, me, "allow", "eperm")
    a.label("socket")  # socket(domain, ...): AF_UNIX only (no network exists anyway)
    a.op(_LD_W_ABS, _arg_lo(0))
    a.op(_JEQ_K, AF_UNIX, "allow", "eperm")
    _epilogue(a)
    return a.assemble()


def supported() -> bool:
    """True where these tables apply (x86_64 Linux)."""
    return platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")


# --- installer ----------------------------------------------------------------------------
_PR_SET_NO_NEW_PRIVS = 38
_SYS_SECCOMP = 317
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install(program: bytes) -> None:
    """Install ``program`` on the calling process (all threads); raises OSError on failure."""
    if len(program) % 8:
        raise ValueError("BPF program length must be a multiple of 8")
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "prctl(PR_SET_NO_NEW_PRIVS) failed: " + os.strerror(err))
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(
        ctypes.c_long(_SYS_SECCOMP),
        ctypes.c_long(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_long(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(prog),
    )
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, "seccomp(SET_MODE_FILTER) failed: " + os.strerror(err))
