"""Local backend specifics: refusal without bwrap, the seccomp tables, the bwrap argv, recycling."""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import pytest

from refinelab.tools import sandbox_local, seccomp_bpf
from refinelab.tools.sandbox_base import SandboxLimits, SandboxUnavailable
from refinelab.tools.sandbox_local import LocalSandbox, build_argv
from tests.support.sbx_helpers import require_bwrap

UNISTD = Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h")


def test_refuses_without_bwrap(monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[object] = []
    monkeypatch.setattr(sandbox_local.subprocess, "Popen", lambda *a, **k: started.append(a))
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        LocalSandbox(bwrap="/nonexistent/bwrap")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(sandbox_local.shutil, "which", lambda *a, **k: None)
    with pytest.raises(SandboxUnavailable, match="never runs untrusted code"):
        LocalSandbox(mode="cold")
    assert started == []  # nothing was run unsandboxed


@pytest.mark.skipif(not UNISTD.exists(), reason="kernel headers not installed")
def test_syscall_numbers_match_kernel_header() -> None:
    header = dict(
        (m.group(1), int(m.group(2)))
        for m in re.finditer(r"#define __NR_(\w+) (\d+)", UNISTD.read_text())
    )
    for name, nr in seccomp_bpf.NR.items():
        if name in header:
            assert header[name] == nr, name


def test_programs_are_well_formed() -> None:
    for prog in (seccomp_bpf.base_program(), seccomp_bpf.strict_program(1234)):
        assert len(prog) % 8 == 0 and 0 < len(prog) // 8 < 4096
        first = struct.unpack("<HBBI", prog[:8])
        assert first == (0x20, 0, 0, 4)  # load arch first
        second = struct.unpack("<HBBI", prog[8:16])
        assert second[3] == seccomp_bpf.AUDIT_ARCH_X86_64


def test_root_argv_has_no_user_namespace_and_drops_uid() -> None:
    argv = build_argv(bwrap="bwrap", python="/usr/bin/python3", prefix="/usr", boot_args=["cold", "4"],
                      seccomp_fd=3, limits=SandboxLimits(tmpfs_mb=8), uid=61007, package_binds=[])  # fmt: skip
    joined = " ".join(argv)
    assert "--unshare-user" not in argv and "--unshare-net" in argv and "--unshare-pid" in argv
    assert "--reuid=61007" in argv and "--no-new-privs" in joined and "--bounding-set=-all" in joined
    assert f"--size {8 * 1024 * 1024} --tmpfs /tmp" in joined
    assert "--remount-ro /dev" in joined
    root_ro = max(i for i in range(len(argv) - 1) if argv[i : i + 2] == ["--remount-ro", "/"])
    assert root_ro > max(i for i, a in enumerate(argv) if a in ("--ro-bind", "--tmpfs", "--dir"))  # "/" read-only last
    assert argv.index("--clearenv") < argv.index("--setenv")
    assert argv[-5:] == ["-S", "-B", "/sbx/boot.py", "cold", "4"]


def test_nonroot_argv_uses_user_namespace() -> None:
    argv = build_argv(bwrap="bwrap", python="/usr/bin/python3", prefix="/usr", boot_args=["zygote", ""],
                      seccomp_fd=3, limits=SandboxLimits(), uid=None, package_binds=[])  # fmt: skip
    assert "--unshare-user" in argv and "--disable-userns" in argv and "--unshare-all" in argv
    assert not any("setpriv" in a for a in argv)


def test_cpu_limit_kill_counts_as_timeout() -> None:
    require_bwrap()
    box = LocalSandbox(SandboxLimits(timeout_s=4, cpu_s=1), mode="cold")
    res = box.execute("while True:\n    pass")
    assert res.timed_out and res.duration_s < 3.9  # SIGXCPU at 1 s of CPU, before the wall clock


def test_warm_worker_recycled_after_abnormal_exit() -> None:
    require_bwrap()
    with LocalSandbox(SandboxLimits(timeout_s=5), mode="warm", preload=()) as box:
        assert box.execute("import os\nos.getpid()").ok
        zygote_before = {w.proc.pid for w in box._workers}
        res = box.execute("import ctypes\nctypes.string_at(0)")
        assert res.exit_code == -11
        assert box.execute("6 * 7").result_text == "42"
        assert {w.proc.pid for w in box._workers}.isdisjoint(zygote_before)


def test_check_self_test(local_warm: LocalSandbox) -> None:
    local_warm.check()


def test_closed_sandbox_refuses() -> None:
    require_bwrap()
    box = LocalSandbox(mode="cold")
    box.close()
    with pytest.raises(Exception, match="closed"):
        box.execute("1")


def test_sandbox_cannot_see_the_checkout(local_warm: LocalSandbox) -> None:
    res = local_warm.execute(f"import os\nos.path.exists({str(Path.cwd())!r}), os.path.exists({os.getcwd()!r} + '/tools')")
    assert res.result_text == "(False, False)"
