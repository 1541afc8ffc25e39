"""LangSmith-style run trees written to trace.jsonl, and optionally sent to LangSmith.

Every node, LLM call and tool call is a run with the LangSmith fields (id, trace_id, parent_run_id,
run_type, name, inputs, outputs, error, start/end time, token usage, tags, metadata). The parent of a
new run is taken from a context variable, so an LLM call made inside a node nests under it without
the node passing anything along.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from refinelab.atomic import open_append
from refinelab.redact import redact, redact_json

RunType = Literal["chain", "llm", "tool", "retriever", "parser"]

_current_run: contextvars.ContextVar[Run | None] = contextvars.ContextVar("refinelab_run", default=None)


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Run:
    """One node of the run tree while it is open."""

    id: str
    trace_id: str
    parent_run_id: str | None
    run_type: RunType
    name: str
    inputs: dict[str, Any]
    start_time: str
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    error: str | None = None
    end_time: str | None = None
    usage: dict[str, int] | None = None

    def record(self) -> dict[str, Any]:
        return {
            "id": self.id, "trace_id": self.trace_id, "parent_run_id": self.parent_run_id,
            "run_type": self.run_type, "name": self.name, "inputs": self.inputs, "outputs": self.outputs,
            "error": self.error, "start_time": self.start_time, "end_time": self.end_time,
            "usage": self.usage, "tags": self.tags, "metadata": self.metadata,
        }


def langsmith_enabled() -> bool:
    flag = os.environ.get("LANGSMITH_TRACING", os.environ.get("LANGCHAIN_TRACING_V2", "")).lower()
    return flag in {"1", "true", "yes"} and bool(
        os.environ.get("LANGSMITH_API_KEY") or os.environ.get("LANGCHAIN_API_KEY")
    )


class Tracer:
    """Writes finished runs to a JSONL file; mirrors them to LangSmith when its env vars are set."""

    def __init__(self, path: str | Path | None, trace_id: str | None = None, project: str = "refinelab") -> None:
        self.path = Path(path) if path else None
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.trace_id = trace_id or str(uuid.uuid4())
        self.project = os.environ.get("LANGSMITH_PROJECT", project)
        self._lock = threading.Lock()
        self._client: Any = None
        self.root: Run | None = None  # the first run opened; parent of runs started in foreign threads
        if langsmith_enabled():
            from langsmith import Client

            self._client = Client()

    def start(
        self,
        name: str,
        run_type: RunType,
        inputs: dict[str, Any] | None = None,
        *,
        parent: Run | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Run:
        parent = parent if parent is not None else (_current_run.get() or self.root)
        run = Run(
            id=run_id or str(uuid.uuid4()), trace_id=self.trace_id,
            parent_run_id=parent.id if parent else None, run_type=run_type, name=name,
            inputs=redact_json(_jsonable(inputs or {}))[0],
            start_time=_now(), tags=tags or [], metadata=metadata or {},
        )
        if self.root is None:
            self.root = run
        if self._client is not None:
            self._client.create_run(
                id=run.id, trace_id=run.trace_id, parent_run_id=run.parent_run_id, name=name,
                run_type=run_type, inputs=run.inputs, start_time=datetime.fromisoformat(run.start_time), tags=run.tags,
                extra={"metadata": run.metadata}, project_name=self.project,
            )
        return run

    def end(
        self,
        run: Run,
        outputs: dict[str, Any] | None = None,
        *,
        error: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        run.outputs = _jsonable(outputs) if outputs is not None else None
        run.error = redact(error) if error else error
        run.usage = usage
        run.end_time = _now()
        # Endpoint text may quote our key: no configured secret reaches trace.jsonl or LangSmith.
        record, line = redact_json(run.record())
        run.inputs, run.outputs = record["inputs"], record["outputs"]
        if self.path:
            with self._lock, open_append(self.path) as handle:
                handle.write(line + "\n")
        if self._client is not None:
            outputs_for_ls = dict(run.outputs or {})
            if usage:
                outputs_for_ls.setdefault("usage_metadata", usage)
            self._client.update_run(
                run.id, trace_id=run.trace_id, parent_run_id=run.parent_run_id, outputs=outputs_for_ls,
                error=run.error, end_time=datetime.fromisoformat(run.end_time),
            )

    @contextlib.contextmanager
    def span(
        self, name: str, run_type: RunType = "chain", inputs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Iterator[Run]:
        """Open a run, make it the parent of runs started inside, close it (recording any error)."""
        run = self.start(name, run_type, inputs, **kwargs)
        token = _current_run.set(run)
        try:
            yield run
        except BaseException as exc:
            self.end(run, run.outputs, error=f"{type(exc).__name__}: {exc}", usage=run.usage)
            raise
        else:
            self.end(run, run.outputs, usage=run.usage)
        finally:
            _current_run.reset(token)

    def flush(self) -> None:
        if self._client is not None:
            self._client.flush()


def current_run() -> Run | None:
    return _current_run.get()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, ensure_ascii=False))


def read_trace(path: str | Path) -> list[dict[str, Any]]:
    """The runs in a trace file; a damaged line is a DataError naming the file and line."""
    from refinelab.errors import DataError
    from refinelab.safeload import loads_json

    runs = []
    try:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    run = loads_json(line, str(path), number)
                    if not isinstance(run, dict):
                        raise DataError(str(path), number, None, "expected a JSON object per line")
                    runs.append(run)
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    return runs
