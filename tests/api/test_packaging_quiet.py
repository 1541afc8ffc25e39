"""The wheel builds without setuptools' "Package would be ignored" warnings and ships py.typed and the data."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_wheel_build_is_quiet_and_complete(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy, so the build's egg-info and build/ never land in the checkout
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv", "runs", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", "evals", "tests"))
    proc = subprocess.run([sys.executable, "-c", "from setuptools import build_meta; "
                           f"print(build_meta.build_wheel({str(tmp_path / 'dist')!r}))"],
                          cwd=source, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "would be ignored" not in log.lower() and "absent from the `packages`" not in log, log[-3000:]
    wheel = tmp_path / "dist" / proc.stdout.strip().splitlines()[-1]
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "refinelab/py.typed" in names and "refinelab/__main__.py" in names
    assert any(n.startswith("refinelab/data/") and n.endswith(".yaml") for n in names)
    assert any(n.startswith("refinelab/prompts/packs/") for n in names)
    assert any(n.startswith("refinelab/prompts/default/") for n in names)
    assert "refinelab/api/templates/report.html.j2" in names  # the report's page; `refinelab report` needs it
