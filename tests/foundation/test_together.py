"""tools/together.run_together: results in order, every call ends before a failure is raised, and each
call sees the caller's context (so its trace nests under the caller's run)."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from refinelab.tools.together import run_together

_RUN = contextvars.ContextVar("run", default="none")


def test_results_come_back_in_call_order_and_the_calls_overlap() -> None:
    started = threading.Barrier(3, timeout=5)  # only passes when all three run at the same time

    def call(k: int) -> int:
        started.wait()
        time.sleep(0.01 * (3 - k))
        return k

    assert run_together([lambda k=k: call(k) for k in range(3)]) == [0, 1, 2]


def test_the_first_failure_is_raised_only_after_every_call_ended() -> None:
    ended: list[int] = []

    def call(k: int) -> int:
        time.sleep(0.05 if k == 2 else 0.0)
        ended.append(k)
        if k in (0, 1):
            raise ValueError(f"call {k}")
        return k

    with pytest.raises(ValueError, match="call 0"):
        run_together([lambda k=k: call(k) for k in range(3)])
    assert sorted(ended) == [0, 1, 2]


def test_each_call_sees_the_callers_context_and_cannot_change_it() -> None:
    def call() -> str:
        seen = _RUN.get()
        _RUN.set("changed in a thread")
        return seen

    token = _RUN.set("the caller's run")
    try:
        assert run_together([call, call]) == ["the caller's run", "the caller's run"]
        assert run_together([call]) == ["the caller's run"]
        assert _RUN.get() == "the caller's run"
    finally:
        _RUN.reset(token)
    assert run_together([]) == []
