"""The ledger never settles above its cap, under concurrency, failures and retries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refinelab.errors import BudgetExhausted
from refinelab.tools.ledger import CallTag, Ledger


def test_reserve_settle_and_attribution(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", cap=1000)
    r = ledger.reserve(300, CallTag(node="profile", operation="label", item_id="q1", model="m"))
    assert ledger.available == 700
    ledger.settle(r, 120, 30)
    assert ledger.spent == 150 and ledger.available == 850
    summary = ledger.summary()
    assert summary["by_node"]["profile"]["tokens"] == 150
    assert summary["by_operation"]["label"]["calls"] == 1
    assert ledger.by_item()["q1"] == 150


def test_cap_raises_budget_exhausted_and_records_nothing(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite", cap=100)
    with pytest.raises(BudgetExhausted) as info:
        ledger.reserve(101, CallTag())
    assert info.value.available == 100
    assert ledger.summary()["calls"] == 0


def test_persisted_and_in_flight_abandoned_on_resume(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite"
    ledger = Ledger(path, cap=1000)
    ledger.settle(ledger.reserve(100, CallTag()), 50, 10)
    ledger.reserve(200, CallTag())  # in flight when the process "dies"
    ledger.close()
    resumed = Ledger(path)  # the cap is read back from the file
    assert resumed.cap == 1000
    assert resumed.abandon_in_flight() == 1
    assert resumed.spent == 60 + 200  # an abandoned call is charged its reservation


@settings(max_examples=25, deadline=None)
@given(
    cap=st.integers(min_value=0, max_value=5000),
    calls=st.lists(
        st.tuples(st.integers(1, 600), st.floats(0, 1.2), st.booleans(), st.booleans()), min_size=1, max_size=40
    ),
    threads=st.integers(1, 8),
)
def test_concurrent_calls_never_settle_above_cap(cap: int, calls: list, threads: int) -> None:
    """Random sizes, usage up to 120% of the reservation, failures and retries, many threads."""
    ledger = Ledger(cap=cap)
    exhausted = []
    recorded_retries = []
    lock = threading.Lock()
    chunks = [calls[i::threads] for i in range(threads)]

    def worker(chunk: list) -> None:
        for size, usage_ratio, fails, is_retry in chunk:
            try:
                r = ledger.reserve(size, CallTag(node="n"), is_retry=is_retry)
            except BudgetExhausted:
                with lock:
                    exhausted.append(size)
                continue
            if is_retry:
                with lock:
                    recorded_retries.append(size)
            used = int(size * usage_ratio)
            ledger.settle(r, used // 2, used - used // 2, failed=fails)
            assert ledger.spent <= cap

    pool = [threading.Thread(target=worker, args=(c,)) for c in chunks]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    summary = ledger.summary()
    assert summary["spent"] <= cap
    assert summary["in_flight"] == 0
    assert summary["calls"] + len(exhausted) == len(calls)
    assert summary["retries"] == len(recorded_retries)
    assert summary["failed_calls"] <= summary["calls"]


def test_running_totals_agree_with_the_calls_across_two_handles(tmp_path: Path) -> None:
    """Two handles on one file (two processes sharing a run's ledger) keep the one totals row in step:
    the cap holds across them, and reopening recounts to the same figures."""
    import sqlite3
    import threading

    from refinelab.errors import BudgetExhausted
    from refinelab.tools.ledger import _SPENT_SQL

    path = tmp_path / "ledger.sqlite"
    first, second = Ledger(path, cap=50_000), Ledger(path)
    assert second.cap == 50_000

    def spend(ledger: Ledger, n: int) -> None:
        for i in range(n):
            try:
                reservation = ledger.reserve(300, CallTag(item_id=str(i)))
            except BudgetExhausted:
                return
            if i % 7 == 0:
                ledger.release(reservation)
            else:
                ledger.settle(reservation, 100 + i % 50, 30, failed=i % 11 == 0)

    # in flight when a third process died (a handle of its own: this process's threads do not wait on it)
    dangling = Ledger(path).reserve(250, CallTag())
    threads = [threading.Thread(target=spend, args=(ledger, 200)) for ledger in (first, second, first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sqlite3.connect(path) as db:
        spent, reserved = db.execute(_SPENT_SQL).fetchone()
    assert (first.spent, second.spent) == (spent, spent) and reserved == 250
    assert spent + reserved <= 50_000 and first.available == 50_000 - spent - 250
    first.close()
    second.close()
    reopened = Ledger(path)
    assert reopened.spent == spent and reopened.available == 50_000 - spent - 250
    assert reopened.abandon_in_flight() == 1 and reopened.spent == spent + dangling.tokens
    assert reopened.summary()["in_flight"] == 0


def _reserve_in_thread(ledger: Ledger, tokens: int) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["reservation"] = ledger.reserve(tokens, CallTag(node="second"))
        except BudgetExhausted as exc:
            outcome["refused"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_call_that_fits_once_another_settles_waits_for_it() -> None:
    """Whether a call fits must not depend on how threads overlapped: at cap 1,000 a 600-token reservation
    beside another thread's 600 in flight waits, and goes through when that call settles at 300."""
    ledger = Ledger(cap=1_000)
    first = ledger.reserve(600, CallTag(node="first"))
    thread, outcome = _reserve_in_thread(ledger, 600)
    thread.join(timeout=0.3)
    assert thread.is_alive() and not outcome  # waiting, neither refused nor reserved
    ledger.settle(first, 250, 50)
    thread.join(timeout=5)
    assert not thread.is_alive() and "reservation" in outcome
    assert ledger.spent == 300 and ledger.summary()["in_flight"] == 600


def test_a_call_that_cannot_fit_whatever_settles_is_refused_at_once() -> None:
    """Spent tokens do not come back: 500 spent + 600 reserved elsewhere leaves no room for 600 either way."""
    ledger = Ledger(cap=1_000)
    ledger.settle(ledger.reserve(500, CallTag()), 500, 0)
    ledger.reserve(400, CallTag())  # in flight
    thread, outcome = _reserve_in_thread(ledger, 600)
    thread.join(timeout=5)
    assert not thread.is_alive() and isinstance(outcome.get("refused"), BudgetExhausted)


def test_a_thread_never_waits_on_its_own_reservations_nor_past_the_wait_limit() -> None:
    ledger = Ledger(cap=1_000, settle_wait_s=0.2)
    ledger.reserve(600, CallTag())
    with pytest.raises(BudgetExhausted):  # the same thread's 600 cannot settle while it waits
        ledger.reserve(600, CallTag())
    thread, outcome = _reserve_in_thread(ledger, 600)  # another thread waits 0.2 s, then is refused
    thread.join(timeout=5)
    assert not thread.is_alive() and isinstance(outcome.get("refused"), BudgetExhausted)


def test_a_released_reservation_wakes_a_waiting_one() -> None:
    ledger = Ledger(cap=1_000)
    first = ledger.reserve(700, CallTag())
    thread, outcome = _reserve_in_thread(ledger, 700)
    thread.join(timeout=0.3)
    assert thread.is_alive()
    ledger.release(first)
    thread.join(timeout=5)
    assert "reservation" in outcome and ledger.summary()["in_flight"] == 700


def test_a_replayed_answer_counts_once_across_reopening(tmp_path: Path) -> None:
    """A resumed run re-asks the node that was cut off: its cached answers count against the budget once,
    not again in the reopened ledger; a key never replayed still counts."""
    path = tmp_path / "l.sqlite"
    first = Ledger(path, cap=1_000)
    first.note_replayed("k1", 300, "profile")
    first.note_replayed("k1", 300, "profile")  # the same answer again in one process
    first.close()
    resumed = Ledger(path)
    resumed.note_replayed("k1", 300, "profile")
    resumed.note_replayed("k2", 200, "refine")
    summary = resumed.summary()
    assert summary["replayed"] == 500 and summary["replayed_by_node"] == {"profile": 300, "refine": 200}
    assert resumed.available == 500
