"""The package imports from the editable install and from a built wheel in a clean venv."""

from __future__ import annotations

import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

MODULES = ("refinelab, refinelab.graph, refinelab.agents, refinelab.agents.validation, refinelab.tools, refinelab.planner, "
           "refinelab.metrics, refinelab.prompts, refinelab.cli")
REPO = Path(__file__).resolve().parents[2]


def test_editable_install_imports() -> None:
    code = f"import {MODULES}, refinelab.tools.ledger; print(refinelab.tools.ledger.__file__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True)
    assert out.stdout.strip().startswith(str(REPO / "refinelab" / "tools"))


def test_built_wheel_imports_in_clean_venv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(REPO)],
        check=True, capture_output=True,
    )
    wheel = next(dist.glob("refinelab-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    # test machinery lives under tests/support, never in the product
    assert not [n for n in names if re.search(r"fault_proxy|e2b_fake_server|scripted|testing\.py|/tests?/", n)], names
    assert "refinelab/metrics/irt.py" in names and "refinelab/agents/validation/verdicts.py" in names
    assert "refinelab/cli/app.py" in names and "refinelab/api/context.py" in names
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    code = f"import {MODULES}; import refinelab.prompts as p; print(p.__file__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, cwd=tmp_path, check=True)
    assert "site-packages/refinelab/prompts" in out.stdout
