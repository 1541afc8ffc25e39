"""The package-dir mapping works from the editable install and from a built wheel in a clean venv."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

MODULES = "refinelab.graph, refinelab.agents, refinelab.planner, refinelab.tools, refinelab.prompts"
REPO = Path(__file__).resolve().parents[2]


def test_editable_install_imports() -> None:
    code = f"import {MODULES}, refinelab.tools.ledger; print(refinelab.tools.ledger.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip().startswith(str(REPO / "tools"))


def test_built_wheel_imports_in_clean_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True,
    )
    wheel = next(dist.glob("refinelab-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    code = f"import {MODULES}; import refinelab.prompts as p; print(p.__file__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "site-packages/refinelab/prompts" in out.stdout
