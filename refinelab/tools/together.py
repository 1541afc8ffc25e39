"""Run a few independent calls at the same time, each under a copy of the caller's context.

The model server answers concurrent requests in its slots, so calls that do not depend on each other —
a probe's option orders, the panel's members, a calibration's drafts and their measurements — are asked
together rather than one after another. Each call runs under a copy of the caller's `contextvars`
context, so its trace nests under the caller's run (tools/tracing.py) and its ledger tags stay the
caller's. This is the one place that pattern is spelled.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

T = TypeVar("T")


def run_together(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Every call's result, in the calls' order. All calls run to their end before the first failure (in
    order) is raised, so no call is left running behind an exception. One call runs in this thread (still
    under a copy of the context)."""
    if len(calls) == 1:
        return [contextvars.copy_context().run(calls[0])]
    if not calls:
        return []
    contexts = [contextvars.copy_context() for _ in calls]
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        futures = [pool.submit(context.run, call) for context, call in zip(contexts, calls, strict=True)]
        wait(futures)
    return [future.result() for future in futures]
