"""What every handler of the run tree does the same way before a run is written or sent.

Both handlers (`trace_jsonl.JsonlTracer` and `trace_langsmith.LangSmithTracer`) are LangChain tracers fed
by the same callback events, so they must agree on what a run looks like: a run name may have a *view*
that replaces its inputs or outputs (the ILP tool is given the whole planning instance; the tree keeps a
summary of it), and a finished run is not kept as a child of its parent (LangChain's default keeps every
run of a run alive until the root ends, which for a long refinement run is every prompt it sent), nor in
the tracer's `order_map` (LangChain never removes an entry there: ~0.5 KB per run, ~6 KB per edit, for
the whole process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from langchain_core.tracers.schemas import Run

View = Callable[[dict[str, Any]], dict[str, Any]]


class RunViews:
    """Per run name, how its inputs and outputs are shown (thread-safe; shared by all handlers of a tree)."""

    def __init__(self) -> None:
        self._inputs: dict[str, View] = {}
        self._outputs: dict[str, View] = {}
        self._lock = threading.Lock()

    def set(self, name: str, *, inputs: View | None = None, outputs: View | None = None) -> None:
        with self._lock:
            if inputs is not None:
                self._inputs[name] = inputs
            if outputs is not None:
                self._outputs[name] = outputs

    def inputs(self, name: str, value: dict[str, Any]) -> dict[str, Any]:
        view = self._inputs.get(name)
        return view(value) if view is not None and value else value

    def outputs(self, name: str, value: dict[str, Any] | None) -> dict[str, Any] | None:
        view = self._outputs.get(name)
        return view(value) if view is not None and value else value


class ViewedTracer:
    """Mixin for a `BaseTracer` subclass: apply the tree's views, keep no finished children in memory.

    Put first in the bases (`class T(ViewedTracer, BaseTracer)`), so these run before the tracer's own
    `_start_trace`/`_end_trace`, which is where a subclass persists or posts the run.
    """

    views: RunViews

    def _start_trace(self, run: Run) -> Any:
        run.inputs = self.views.inputs(run.name, run.inputs)
        return super()._start_trace(run)  # type: ignore[misc]

    def _end_trace(self, run: Run) -> Any:
        run.outputs = self.views.outputs(run.name, run.outputs)
        result = super()._end_trace(run)  # type: ignore[misc]
        # A run's (trace id, dotted order) is looked up only when a child starts; once the run has ended no
        # child of it will, so its entry can go. A root's stays: it is the anchor that later top-level
        # runs of the folder (another API call, a resumed process) are parented to.
        if run.parent_run_id is not None:
            self.order_map.pop(run.id, None)  # type: ignore[attr-defined]
        return result

    @staticmethod
    def _add_child_run(parent_run: Run, child_run: Run) -> None:
        """Children are written and sent on their own; holding them on the parent would only use memory."""
