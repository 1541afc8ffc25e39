"""`make test` runs the suite with `pytest -n 2 --dist loadgroup`, and tests/conftest.py puts every test that
drives a real model server in one xdist group, so they run one after another on one worker: each server takes
every core, and two side by side made each several times slower. pytest 9.2 keeps a node id where pytest-xdist
3.8 cannot add the group, and the groups were silently ignored (both workers ran real-server tests at once);
pyproject.toml keeps pytest below 9.2. This checks the grouping itself, so an upgrade that breaks it fails here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

MODULE = '''
import os, pytest
pytestmark = pytest.mark.xdist_group("together")
@pytest.mark.parametrize("n", range(6))
def test_one(n, tmp_path_factory):
    (tmp_path_factory.getbasetemp().parent / f"worker-{n}").write_text(os.environ["PYTEST_XDIST_WORKER"])
'''


def test_a_group_runs_on_one_worker(tmp_path: Path) -> None:
    (tmp_path / "test_grouped.py").write_text(MODULE)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup", "-p",
                           "no:cacheprovider", "--basetemp", str(tmp_path / "base"), "test_grouped.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    workers = {(tmp_path / "base" / f"worker-{n}").read_text() for n in range(6)}  # each worker: base/popen-gwN
    assert len(workers) == 1, f"one group ran on {sorted(workers)}: `--dist loadgroup` ignored xdist_group"
