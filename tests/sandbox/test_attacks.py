"""Adversarial suite for the local backend: every attack must be contained, as root (privileged
bwrap + setpriv, what CI runs) and as an unprivileged uid (user-namespace bwrap) where possible."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.sandbox.attack_runner import run_all
from tests.sandbox.attacks import ATTACKS, SECRET
from tests.support.sbx_helpers import Listener, require_bwrap

HERE = Path(__file__).resolve().parent
TOOLS = HERE.parents[1] / "refinelab" / "tools"
NONROOT_UID = 64123
SLOT_UIDS = range(61000, 62000)
# the attack runs count the sandbox uids' processes machine-wide: alone, not beside other workers
pytestmark = pytest.mark.serial
CASES = [a.name for a in ATTACKS] + ["still_usable"]


def uids_processes(uids: range | set[int]) -> set[int]:
    """Pids of live processes whose real uid is in ``uids``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) in uids:
                            found.add(int(entry))
                        break
        except OSError:
            continue
    return found


def strays_after(uids: range | set[int], before: set[int], grace_s: float = 3.0) -> set[int]:
    """New processes of ``uids`` still alive after ``grace_s`` (killed sandboxes take a moment to
    be torn down: PDEATHSIG and the pid-namespace teardown are asynchronous)."""
    deadline = time.monotonic() + grace_s
    while True:
        new = uids_processes(uids) - before - {os.getpid()}
        if not new or time.monotonic() > deadline:
            return new
        time.sleep(0.05)


class Run:
    def __init__(self, results: list[dict[str, Any]], strays: set[int], hostdir: Path, hostfile: Path) -> None:
        self.by_name: dict[str, list[dict[str, Any]]] = {}
        for r in results:
            self.by_name.setdefault(r["name"], []).append(r)
        self.strays = strays
        self.hostdir = hostdir
        self.hostfile = hostfile


def _host_canaries(tmp: Path) -> tuple[Path, Path]:
    hostdir = tmp / "hostdir"
    hostdir.mkdir()
    hostfile = tmp / "canary.txt"
    hostfile.write_text(f"canary {SECRET}\n")
    return hostdir, hostfile


# --- root ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["cold", "warm"])
def root_run(
    request: pytest.FixtureRequest, listener: Listener, tmp_path_factory: pytest.TempPathFactory, planted_secret: str
) -> Run:
    require_bwrap()
    if os.geteuid() != 0:
        pytest.skip("root variant: needs euid 0 (CI runs as root)")
    hostdir, hostfile = _host_canaries(tmp_path_factory.mktemp(f"root-{request.param}"))
    before = uids_processes(SLOT_UIDS)
    results = run_all(request.param, port=listener.port, hostfile=str(hostfile), hostdir=str(hostdir))
    strays = strays_after(SLOT_UIDS, before)
    return Run(results, strays, hostdir, hostfile)


@pytest.mark.parametrize("case", CASES)
def test_root_attack_contained(root_run: Run, case: str) -> None:
    for res in root_run.by_name[case]:
        assert res["verdict"] is None, f"{case}: {res['verdict']}\n{json.dumps(res, indent=1)[:3000]}"


def test_root_host_untouched(root_run: Run, listener: Listener) -> None:
    assert listener.hits == 0, "a sandbox reached the host loopback listener"
    assert list(root_run.hostdir.iterdir()) == []
    assert root_run.hostfile.read_text() == f"canary {SECRET}\n"
    assert not Path("/evil").exists() and not Path("/usr/evil").exists()
    assert root_run.strays == set(), f"sandbox processes left behind: {root_run.strays}"


def test_root_runs_as_unprivileged_slot_uid(root_run: Run) -> None:
    (res,) = root_run.by_name["raw_syscalls"]
    uid_line = next(line for line in res["stdout"].splitlines() if line.startswith("uid "))
    uid = int(uid_line.split()[1])
    assert uid in SLOT_UIDS


# --- non-root -----------------------------------------------------------------------------
def _nonroot_prereqs() -> str | None:
    """Why the non-root variant cannot run here, or None."""
    if os.geteuid() != 0:
        return None  # already unprivileged: run the harness directly
    if not shutil.which("setpriv"):
        return "setpriv missing: cannot switch to an unprivileged uid"
    if not os.access("/usr/bin/python3", os.X_OK):
        return "no system /usr/bin/python3 readable by an unprivileged uid"
    probe = subprocess.run(
        ["setpriv", f"--reuid={NONROOT_UID}", f"--regid={NONROOT_UID}", "--clear-groups",
         "bwrap", "--unshare-all", "--unshare-user", "--disable-userns", "--ro-bind", "/usr", "/usr",
         "--symlink", "usr/lib64", "/lib64", "--symlink", "usr/lib", "/lib", "/usr/bin/true"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, cwd="/", check=False,
    )  # fmt: skip
    if probe.returncode != 0:
        return f"unprivileged user namespaces unavailable here: {probe.stderr.strip()[:200]}"
    return None


@pytest.fixture(scope="module", params=["cold", "warm"])
def nonroot_run(
    request: pytest.FixtureRequest, listener: Listener, tmp_path_factory: pytest.TempPathFactory, planted_secret: str
) -> Run:
    require_bwrap()
    why = _nonroot_prereqs()
    if why:
        pytest.skip(f"non-root variant skipped: {why}")
    hostdir, hostfile = _host_canaries(tmp_path_factory.mktemp(f"user-{request.param}"))
    args = [str(HERE / "attack_runner.py"), str(TOOLS), request.param, str(listener.port), str(hostfile), str(hostdir)]
    if os.geteuid() == 0:
        cmd = ["setpriv", f"--reuid={NONROOT_UID}", f"--regid={NONROOT_UID}", "--clear-groups",
               "/usr/bin/python3", "-I", *args]  # fmt: skip
        uid = NONROOT_UID
    else:
        cmd = [sys.executable, "-I", *args]
        uid = os.getuid()
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "OPENAI_API_KEY": SECRET}
    before = uids_processes({uid})
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    strays = strays_after({uid}, before)
    return Run(json.loads(proc.stdout), strays, hostdir, hostfile)


@pytest.mark.parametrize("case", CASES)
def test_nonroot_attack_contained(nonroot_run: Run, case: str) -> None:
    for res in nonroot_run.by_name[case]:
        assert res["verdict"] is None, f"{case}: {res['verdict']}\n{json.dumps(res, indent=1)[:3000]}"


def test_nonroot_host_untouched(nonroot_run: Run, listener: Listener) -> None:
    assert listener.hits == 0
    assert list(nonroot_run.hostdir.iterdir()) == []
    assert nonroot_run.strays == set(), f"sandbox processes left behind: {nonroot_run.strays}"
