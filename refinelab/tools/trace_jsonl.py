"""`trace.jsonl`: the run tree of a run folder, written by a LangChain tracer and read back.

`JsonlTracer` is a `langchain_core.tracers.BaseTracer`, so it sees exactly the events LangSmith's tracer
sees (graph, node, span, LLM and tool runs) with the same ids and parents. It writes a run twice: when it
starts (all fields, no end time yet) and when it ends (`END_FIELDS` only). A process killed mid-run therefore leaves the runs it had open
in the file, and the runs of the process that resumes it still have their parents there.

A line is one run record with the LangSmith fields: `id`, `trace_id`, `parent_run_id`, `dotted_order`,
`run_type`, `name`, `inputs`, `outputs`, `error`, `start_time`, `end_time`, `usage`, `tags`, `metadata`.
For an LLM run, `inputs.messages` is the prompt as role/content pairs, `outputs` is `{text, cached}` (and
`top_logprobs`, `[[token, logprob]…]`, for a logprobs request) and
`usage` is what the ledger charged for the request (prompt, completion and total tokens). `read_trace`
merges the two records of a run (the end record's fields win), so each run appears once. Every record is redacted
(`refinelab.redact`) before it is written.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import weakref
from datetime import datetime
from pathlib import Path
from typing import Any

from langchain_core.tracers import BaseTracer
from langchain_core.tracers.schemas import Run

from refinelab.atomic import open_append, open_regular
from refinelab.errors import DataError
from refinelab.redact import redact, redact_json
from refinelab.safeload import loads_json
from refinelab.tools.trace_views import RunViews, ViewedTracer

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
# every record's, as text; trace_id too: `refinelab trace` heads the tree with it (a KeyError, exit 1, before)
REQUIRED = ("id", "trace_id", "name", "run_type", "start_time")
END_FIELDS = ("id", "outputs", "error", "end_time", "usage")


class JsonlTracer(ViewedTracer, BaseTracer):
    """Appends each run's start and end records to `path` (one JSON object per line)."""

    raise_error = True  # a trace that cannot be written (a symlink planted in the folder) stops the run

    def __init__(self, path: str | Path, views: RunViews, twin: BaseTracer | None = None) -> None:
        super().__init__(_schema_format="original+chat")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.views = views
        self.twin = twin
        self._lock = threading.Lock()
        self._fd: int | None = None  # opened on the first write, kept: reopening per record serialised 256 threads
        self._finalizer: weakref.finalize | None = None  # closes it if the tracer is dropped unclosed

    def _start_trace(self, run: Run) -> None:
        """Take the start time the LangSmith tracer (called first) gave the same run: each tracer stamps
        its own, and the dotted order built from it must be the same in the file and in LangSmith (a
        resumed process continues the tree from the file)."""
        twin = self.twin.run_map.get(str(run.id)) if self.twin is not None else None
        if twin is not None:
            run.start_time = twin.start_time
        super()._start_trace(run)

    @staticmethod
    def _get_stacktrace(error: BaseException) -> str:
        """One redacted line, not LangChain's full traceback: endpoint errors may quote our key."""
        return redact(f"{type(error).__name__}: {error}")

    def _persist_run(self, run: Run) -> None:
        """Nothing to do at the root's end: every run was written as it started and ended."""

    def _on_run_create(self, run: Run) -> None:
        self._write(record(run))

    def _on_run_update(self, run: Run) -> None:
        self._write({k: v for k, v in record(run).items() if k in END_FIELDS})  # the rest is in the start record

    def _write(self, fields: dict[str, Any]) -> None:
        _, line = redact_json(fields)
        data = (line + "\n").encode()
        with self._lock:
            if self._fd is None:
                handle = open_append(self.path)  # refuses a symlink or a non-regular file, as before
                self._fd = os.dup(handle.fileno())
                handle.close()
                self._finalizer = weakref.finalize(self, _close_quietly, self._fd)
            view = memoryview(data)
            while view:  # O_APPEND: each record lands whole at the end, even if several processes append
                view = view[os.write(self._fd, view):]

    def close(self) -> None:
        """Release the file; a later record reopens it (a resumed run in the same process)."""
        with self._lock:
            fd, self._fd = self._fd, None
            if self._finalizer is not None:
                self._finalizer.detach()
                self._finalizer = None
        if fd is not None:
            _close_quietly(fd)


def _close_quietly(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _messages(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The first prompt of a chat-model run, from LangChain's serialized messages to role/content pairs."""
    batches = inputs.get("messages") or [[]]
    out = []
    for message in batches[0]:
        kwargs = message.get("kwargs", message) if isinstance(message, dict) else {"content": str(message)}
        out.append({"role": _ROLES.get(str(kwargs.get("type", "")), str(kwargs.get("type", ""))),
                    "content": kwargs.get("content", "")})
    return out


def llm_usage(outputs: dict[str, Any] | None) -> dict[str, int] | None:
    """Tokens of an LLM run, from the usage on its generated message (what the ledger charged)."""
    try:
        message = outputs["generations"][0][0]["message"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        return None
    usage = (message.get("kwargs", message) if isinstance(message, dict) else {}).get("usage_metadata")
    if not isinstance(usage, dict):
        return None
    prompt, completion = int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))
    out = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    details = usage.get("input_token_details")
    cached = details.get("cache_read") if isinstance(details, dict) else None
    if isinstance(cached, int) and not isinstance(cached, bool) and cached > 0:
        out["cached_prompt_tokens"] = cached  # read from the server's prompt cache, charged all the same
    return out


def record(run: Run) -> dict[str, Any]:
    """The trace.jsonl record of a run (before redaction)."""
    metadata = dict(run.extra.get("metadata") or {})
    inputs, outputs, usage = run.inputs, run.outputs, None
    run_type = "llm" if run.run_type == "chat_model" else run.run_type  # LangSmith's name for both
    if run_type == "llm":
        inputs = {"messages": _messages(run.inputs or {})}
        usage = llm_usage(run.outputs)
        if run.outputs is not None:
            generations = run.outputs.get("generations") or [[]]
            first = generations[0][0] if generations and generations[0] else {}
            outputs = {"text": first.get("text", ""), "cached": bool(metadata.get("cached"))}
            top = (first.get("generation_info") or {}).get("top_logprobs")
            if top is not None:  # a logprobs request: the first token's alternatives
                outputs["top_logprobs"] = top
    return {
        "id": str(run.id), "trace_id": str(run.trace_id) if run.trace_id else None,
        "parent_run_id": str(run.parent_run_id) if run.parent_run_id else None, "dotted_order": run.dotted_order,
        "run_type": run_type, "name": run.name, "inputs": inputs, "outputs": outputs, "error": run.error,
        "start_time": _time(run.start_time), "end_time": _time(run.end_time), "usage": usage,
        "tags": list(run.tags or []), "metadata": metadata,
    }


#: A line longer than this is refused before it is parsed. The longest record a run writes is an LLM call's
#: start record, its prompt as role/content pairs: a 100k-token prompt is about 400 KB. A 30 MB line of
#: `[{},{},…]` took about 890 MB to parse (a Python object per two bytes).
MAX_TRACE_LINE_CHARS = 8_000_000
#: Runs one trace may hold (a run's start and end records count once). A run writes about one per 100 tokens
#: spent, so this is a run of some 50 million tokens; with `tree_only` each kept run is about a kilobyte of
#: memory (at most a few, `MAX_TRACE_TEXT`), so the tree of the largest trace accepted fits in about 1 GB.
MAX_TRACE_RUNS = 500_000
#: The longest id, name, type or time a record may give (a run's are a UUID, a node's or model's name, an
#: ISO time), and what `tree_only` keeps of an error (the tree shows its first 80 characters).
MAX_TRACE_TEXT = 200
_TEXT_FIELDS = (*REQUIRED, "parent_run_id", "end_time")
#: What the run tree (`refinelab trace`) reads of a run; `read_trace(tree_only=True)` keeps only these.
TREE_FIELDS = ("id", "trace_id", "parent_run_id", "name", "run_type", "start_time", "end_time", "usage", "error")
_TOKEN_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens", "cached_prompt_tokens")


def read_trace(path: str | Path, *, tree_only: bool = False) -> list[dict[str, Any]]:
    """The runs in a trace file, one per run (a run's end record replaces its start record), in the
    order they started. A damaged line, a record without its fields (`REQUIRED`) or a file that is not a
    regular one (`atomic.open_regular`) is a DataError naming file, line and field.

    The file is untrusted and may be large, so it is read line by line with bounds: a line over
    `MAX_TRACE_LINE_CHARS` or a trace of more than `MAX_TRACE_RUNS` runs is refused, naming the file.
    `tree_only`: keep only `TREE_FIELDS` of each record (its token counts, its error's first
    `MAX_TRACE_TEXT` characters), dropped as each line is parsed; the prompts and replies (`inputs`,
    `outputs`) are most of a trace, and the tree never shows them. Memory is then bounded by the runs
    kept, not the file's size."""
    runs: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    try:
        with open_regular(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            number = 0
            while line := handle.readline(MAX_TRACE_LINE_CHARS + 1):
                number += 1
                if len(line) > MAX_TRACE_LINE_CHARS:
                    raise DataError(str(path), number, None, f"line longer than {MAX_TRACE_LINE_CHARS:,} "
                                    "characters; not a trace RefineLab writes")
                if not line.strip():
                    continue
                run = loads_json(line, str(path), number)
                if not isinstance(run, dict):
                    raise DataError(str(path), number, None, "expected a JSON object per line")
                if not isinstance(run.get("id"), str) or not run["id"]:
                    raise DataError(str(path), number, "id", "missing or not a string")
                _check_line(str(path), number, run)
                if tree_only:
                    run = _tree_fields(run)
                if run["id"] not in runs and len(runs) >= MAX_TRACE_RUNS:
                    raise DataError(str(path), number, None, f"more than {MAX_TRACE_RUNS:,} runs; too many to read")
                first_line.setdefault(run["id"], number)
                runs[run["id"]] = {**runs.get(run["id"], {"inputs": None, "parent_run_id": None}), **run}
    except UnicodeDecodeError:
        raise DataError(str(path), None, None, "not valid UTF-8 text") from None
    for run_id, run in runs.items():
        _check_run(str(path), first_line[run_id], run)
    _check_acyclic(str(path), runs, first_line)
    return list(runs.values())


def _tree_fields(run: dict[str, Any]) -> dict[str, Any]:
    """What the run tree reads of one record (`TREE_FIELDS`): its token counts only, its error shortened."""
    kept = {name: run[name] for name in TREE_FIELDS if name in run}
    usage = kept.get("usage")
    if isinstance(usage, dict):
        kept["usage"] = {name: usage[name] for name in _TOKEN_FIELDS if name in usage}
    if kept.get("error") is not None:
        kept["error"] = str(kept["error"])[:MAX_TRACE_TEXT]
    return kept


def _check_line(path: str, line: int, run: dict[str, Any]) -> None:
    """What one record may hold, checked as it is read (before it is kept): its ids, names and times at most
    `MAX_TRACE_TEXT` characters, its token counts whole numbers."""
    for name in _TEXT_FIELDS:
        if isinstance(run.get(name), str) and len(run[name]) > MAX_TRACE_TEXT:
            raise DataError(path, line, name, f"longer than {MAX_TRACE_TEXT} characters")
    usage = run.get("usage")
    if usage is not None and not (isinstance(usage, dict) and all(
            isinstance(v, int) and not isinstance(v, bool) for k, v in usage.items() if k.endswith("_tokens"))):
        raise DataError(path, line, "usage", "expected an object of whole-number token counts")


def _check_run(path: str, line: int, run: dict[str, Any]) -> None:
    """The fields a reader computes with have their types once a run's records are merged: ids text, times
    ISO text (a trace from elsewhere crashed `refinelab trace` with a TypeError before). A run's start and
    end times both carry a UTC offset or neither does: `refinelab trace` subtracts them, and a naive time
    beside an aware one was a TypeError (exit 1) naming nothing."""
    for name in REQUIRED:
        if not isinstance(run.get(name), str) or not run[name]:
            raise DataError(path, line, name, "missing or not a string")
    if run.get("parent_run_id") is not None and not isinstance(run["parent_run_id"], str):
        raise DataError(path, line, "parent_run_id", "not a string")
    times = {}
    for name in ("start_time", "end_time"):
        if run.get(name) is not None:
            try:
                times[name] = datetime.fromisoformat(run[name])
            except (TypeError, ValueError):
                raise DataError(path, line, name, f"not an ISO time: {str(run[name])[:40]!r}") from None
    if len(times) == 2 and (times["start_time"].utcoffset() is None) != (times["end_time"].utcoffset() is None):
        raise DataError(path, line, "end_time", f"run {run['name'][:60]!r} ({run['id'][:60]}): one of its start "
                        "and end times has a UTC offset and the other has none")


def _check_acyclic(path: str, runs: dict[str, dict[str, Any]], first_line: dict[str, int]) -> None:
    """No run is its own ancestor: the tree's readers walk parents and children recursively."""
    settled: set[str] = set()
    for start in runs:
        seen: list[str] = []
        run_id: str | None = start
        while run_id in runs and run_id not in settled:
            if run_id in seen:
                raise DataError(path, first_line[run_id], "parent_run_id", "the runs' parents form a cycle")
            seen.append(run_id)
            run_id = runs[run_id].get("parent_run_id")
        settled.update(seen)


def first_root(path: str | Path) -> dict[str, Any] | None:
    """The root record a run folder's trace starts with (None without a usable one): a later process on
    the same folder continues that tree instead of starting a second one."""
    path = Path(path)
    if path.is_symlink() or not path.is_file():  # a planted link or FIFO is refused when written to
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            line = handle.readline(1_000_000)
        run = loads_json(line, str(path), 1)
    except (OSError, UnicodeDecodeError, DataError):
        return None
    if not isinstance(run, dict) or run.get("parent_run_id") is not None:
        return None
    if not all(isinstance(run.get(k), str) for k in ("id", "trace_id", "dotted_order")):
        return None
    return run
