"""`profile`, `screen` and `plan` folders are continued by a re-run, so they are held like a run's: one
process at a time (RunBusy naming the holder), and what a killed earlier process left reserved in the
ledger is abandoned, charged at its reservation, instead of holding the budget for good."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import refinelab
from refinelab.agents.options import RunHooks
from refinelab.api.context import working_folder
from refinelab.api.run_folders import RunBusy, RunLock
from refinelab.config import load_settings
from refinelab.tools.ledger import CallTag, Ledger
from tests.support.scripted import models

ROWS: list[dict[str, Any]] = [
    {"id": f"q{i}", "question": f"Working folder question {i}: which option is marked (key A)?",
     "choices": [f"alpha {i}", f"beta {i}", f"gamma {i}", f"delta {i}"], "answer": 0, "subject": "astronomy"}
    for i in range(4)
]


def _settings(tmp_path: Path) -> Any:
    return load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite"),
                                    "use_cache": False})


def _left_reserved(folder: Path, tokens: int) -> None:
    """The ledger as a profile killed mid-call leaves it: one reservation never settled."""
    folder.mkdir(parents=True)
    ledger = Ledger(folder / "ledger.sqlite", cap=5_000)
    ledger.reserve(tokens, CallTag(node="profile", operation="label", item_id="q0"))
    ledger.close()


def test_a_profile_rerun_abandons_what_a_killed_one_left_reserved(tmp_path: Path) -> None:
    folder = tmp_path / "prof"
    _left_reserved(folder, 1_500)
    result = refinelab.profile(ROWS, out_dir=folder, budget=5_000, settings=_settings(tmp_path),
                               hooks=RunHooks(chat_models=models()), options={"validate_suspects": False})
    ledger = result.report["ledger"]
    assert ledger["in_flight"] == 0, "the dead process's reservation still holds budget"
    assert ledger["spent"] >= 1_500  # charged at its reservation: the provider may have billed it
    assert result.report["profiled"] == len(ROWS)
    reopened = Ledger(folder / "ledger.sqlite")
    statuses = [row[0] for row in reopened._db.execute("SELECT status FROM calls")]
    reopened.close()
    assert "reserved" not in statuses and statuses.count("abandoned") == 1


def test_a_second_process_on_a_working_folder_is_refused_naming_the_holder(tmp_path: Path) -> None:
    folder = tmp_path / "prof"
    folder.mkdir()
    holder = RunLock(folder).acquire()  # stands for another process profiling into it
    try:
        with pytest.raises(RunBusy) as info:
            refinelab.profile(ROWS, out_dir=folder, settings=_settings(tmp_path),
                              hooks=RunHooks(chat_models=models()), options={"validate_suspects": False})
        assert str(holder.run_dir) in str(info.value)
    finally:
        holder.release()


def test_the_folder_is_free_again_and_its_handles_closed_after_use(tmp_path: Path) -> None:
    folder = tmp_path / "w"
    with working_folder(folder, settings=_settings(tmp_path)) as ctx:
        ctx.store.set_meta("k", "v")
    RunLock(folder).acquire().release()  # no RunBusy: released
    with pytest.raises(Exception, match="closed"):  # sqlite3.ProgrammingError: the handle was closed
        ctx.ledger._db.execute("SELECT 1")
