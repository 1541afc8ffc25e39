"""Security suite: the CLI driven as separate processes against loopback endpoints (tests/support/sec_helpers.py)."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import sqlite3
import types
from pathlib import Path

import pytest

from tests.support.sec_helpers import (
    base_env,
    cli,
    endpoint,
    free_port,
    refine_args,
    write_config,
    write_dataset,
    write_prompts,
)

EMBEDDINGS = Path("cache") / "refinelab" / "embeddings.sqlite"  # a workspace's MiniLM vectors (XDG_CACHE_HOME)


@pytest.fixture(scope="session")
def warm_embeddings(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """The MiniLM vectors of the suite's dataset, made once per test session by one scripted refine run to
    its end (under pytest-xdist the workers share it: the first makes it under a lock, ~18 s each before).
    Every workspace starts with a copy: with an empty cache, each CLI process that reached distractor scoring
    imported sentence-transformers and loaded the model for the same texts, ~14 s of a ~20 s resume. What
    this suite checks (folders, ids, keys, endpoints, locks) does not depend on where a vector came from;
    embedding itself is tested in tests/retrieval and tests/profiling."""
    if worker_id == "master":  # one process: its own folder
        return _make_warm_embeddings(tmp_path_factory.mktemp("warm-embeddings"))
    shared = tmp_path_factory.getbasetemp().parent / "warm-embeddings"  # this session's, common to its workers
    shared.mkdir(exist_ok=True)
    with (shared / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        made = shared / EMBEDDINGS
        return made if made.is_file() else _make_warm_embeddings(shared)


def _make_warm_embeddings(tmp: Path) -> Path:
    port = free_port()
    config = write_config(tmp / "c.yaml", f"http://127.0.0.1:{port}/v1", tmp / "runs")
    with endpoint(port=port):
        proc = cli(refine_args(write_dataset(tmp / "data.jsonl"), config, write_prompts(tmp / "prompts"), "warm"),
                   base_env(tmp), tmp)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp / EMBEDDINGS).is_file(), "the scripted run embedded nothing: distractor scoring is off?"
    with contextlib.closing(sqlite3.connect(tmp / EMBEDDINGS)) as db:  # one file to copy: fold the WAL in
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        assert db.execute("SELECT COUNT(*) FROM emb").fetchone()[0] > 0
    return tmp / EMBEDDINGS


@pytest.fixture
def ws(tmp_path: Path, warm_embeddings: Path) -> types.SimpleNamespace:
    """A workspace: environment (isolated caches, the test API key), dataset, prompt folder, runs dir."""
    (tmp_path / EMBEDDINGS).parent.mkdir(parents=True)
    shutil.copyfile(warm_embeddings, tmp_path / EMBEDDINGS)
    return types.SimpleNamespace(
        tmp=tmp_path, env=base_env(tmp_path), data=write_dataset(tmp_path / "data.jsonl"),
        prompts=write_prompts(tmp_path / "prompts"), runs=tmp_path / "runs",
    )
