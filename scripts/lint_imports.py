"""Check the import-linter contracts in pyproject.toml against the package as it is installed.

The distribution maps top-level folders into `refinelab` (setuptools `package-dir`: `graph/` is
`refinelab.graph`, …), which import-linter's graph builder cannot follow in a source tree. So the
package is laid out as installed — each mapped folder copied under one `refinelab/` in a temporary
directory — and `lint-imports` runs there. Exit code and output are lint-imports' own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    mapping: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    with tempfile.TemporaryDirectory(prefix="refinelab-imports-") as tmp:
        root = Path(tmp)
        for package, folder in sorted(mapping.items(), key=lambda kv: kv[0].count(".")):
            target = root.joinpath(*package.split("."))
            shutil.copytree(REPO / folder, target, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
        lint = Path(sys.executable).with_name("lint-imports")
        env = {**os.environ, "PYTHONPATH": str(root)}
        return subprocess.call([str(lint), str(root / "pyproject.toml"), "--no-cache"], cwd=root, env=env)


if __name__ == "__main__":
    raise SystemExit(main())
