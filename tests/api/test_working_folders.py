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
from refinelab.api.run_lock import RunBusy, RunLock
from refinelab.config import load_settings
from refinelab.errors import DataError
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.store import RunStore
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


def _profile(rows: list[dict[str, Any]], folder: Path, tmp_path: Path) -> Any:
    return refinelab.profile(rows, out_dir=folder, settings=_settings(tmp_path),
                             hooks=RunHooks(chat_models=models()), options={"validate_suspects": False})


@pytest.mark.parametrize("change", ["edited key", "edited question", "narrower selection", "added row"])
def test_a_folder_that_measured_other_data_is_refused_and_left_as_it_was(tmp_path: Path, change: str) -> None:
    """Re-profiling into a folder continues it; with other data it reported the old items' measurements
    under the new input's name (a profile of an edited file showed the old question texts)."""
    folder = tmp_path / "prof"
    _profile(ROWS, folder, tmp_path)
    other = [dict(row) for row in ROWS]
    if change == "edited key":
        other[1]["answer"] = 2
    elif change == "edited question":
        other[2]["question"] += " (reworded)"
    elif change == "narrower selection":
        other = other[:2]
    else:
        other.append(dict(ROWS[0], id="q9", question="A fifth question: which option is marked (key A)?"))
    store_before = RunStore(folder / "store.sqlite")
    items_before = [i.model_dump() for i in store_before.items(("kept",))]
    store_before.close()
    ledger = Ledger(folder / "ledger.sqlite")
    calls_before = ledger.summary()["calls"]
    ledger.close()
    with pytest.raises(DataError) as info:
        _profile(other, folder, tmp_path)
    assert str(folder) in str(info.value) and "measured other data" in str(info.value)
    store = RunStore(folder / "store.sqlite")
    assert [i.model_dump() for i in store.items(("kept",))] == items_before
    store.close()
    ledger = Ledger(folder / "ledger.sqlite")
    assert ledger.summary()["calls"] == calls_before
    ledger.close()
    again = _profile(ROWS, folder, tmp_path)  # the same data continues the folder as before
    assert again.report["items"] == len(ROWS) and again.report["ledger"]["calls"] == calls_before


def test_the_default_plan_folder_follows_the_content(tmp_path: Path) -> None:
    from refinelab.api.planning import plan_dir
    from refinelab.io import as_dataset

    settings = _settings(tmp_path)
    data = tmp_path / "data.jsonl"
    same = plan_dir(settings, data, None, None, items=as_dataset(ROWS).items)
    assert same == plan_dir(settings, data, None, None, items=as_dataset([dict(r) for r in ROWS]).items)
    edited = [dict(row) for row in ROWS]
    edited[0]["answer"] = 3
    assert plan_dir(settings, data, None, None, items=as_dataset(edited).items) != same


def test_a_plan_that_profiles_holds_its_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Profiling and planning happen in one hold of the folder: no other process can take it in between,
    and the input is checked against the folder once."""
    from refinelab.api.planning import plan

    holds: list[Path] = []
    real_acquire = RunLock.acquire

    def counted(lock: RunLock, *args: Any, **kwargs: Any) -> Any:
        holds.append(lock.run_dir)
        return real_acquire(lock, *args, **kwargs)

    monkeypatch.setattr(RunLock, "acquire", counted)
    folder = tmp_path / "plan"
    report = plan(ROWS, budget=20_000, folder=folder, settings=_settings(tmp_path),
                  hooks=RunHooks(chat_models=models()), options={"validate_suspects": False})
    assert holds == [folder]  # was two: the profile's hold, then the plan's
    assert (folder / "profile.json").exists() and (folder / "plan.json").exists()
    assert not report["profile"]["reused"] and report["profile"]["tokens"] > 0


def test_a_plan_of_no_valid_rows_is_refused_before_a_folder_is_made(tmp_path: Path) -> None:
    from refinelab.api.planning import plan

    folder = tmp_path / "plan"
    with pytest.raises(DataError, match="no valid items"):
        plan([{"id": "x", "question": "", "choices": ["a"], "answer": 5}], budget=1_000, folder=folder,
             settings=_settings(tmp_path), hooks=RunHooks(chat_models=models()))
    assert not folder.exists()
