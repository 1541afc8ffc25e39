"""The LangSmith side of the run tree: LangChain's own `LangChainTracer`, redacting what it sends.

When LangSmith tracing is on (`LANGSMITH_TRACING=true` or `LANGCHAIN_TRACING_V2=true`) and keyed
(`LANGSMITH_API_KEY` or `LANGCHAIN_API_KEY`), the run's callback handlers include one
`LangSmithTracer`. LangChain adds its own tracer only when the handlers hold none, so this one is the
only sender and LangSmith receives the run tree once: the same ids and parents as `trace.jsonl`.

What leaves the machine is redacted like every trace (`refinelab.redact`): the client's `anonymizer`
masks configured secrets in inputs, outputs, metadata and errors, and error text (an endpoint's reply may
quote our key back) is redacted of credential-shaped strings too before the tracer builds the run.
"""

from __future__ import annotations

import os
from typing import Any

from langchain_core.tracers import LangChainTracer

from refinelab.redact import redact, redact_json
from refinelab.tools.trace_views import RunViews, ViewedTracer

_FLAGS = ("LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGSMITH_TRACING", "LANGCHAIN_TRACING")
_KEYS = ("LANGSMITH_API_KEY", "LANGCHAIN_API_KEY")


def tracing_requested() -> bool:
    """True when the environment asks for LangSmith tracing (the variables LangChain itself reads)."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes"} for name in _FLAGS)


def langsmith_enabled() -> bool:
    """Tracing requested and an API key to send with: only then does anything go to LangSmith."""
    return tracing_requested() and any(os.environ.get(name) for name in _KEYS)


def _first(*names: str) -> str | None:
    return next((os.environ[name] for name in names if os.environ.get(name)), None)


def _anonymize(value: dict[str, Any]) -> dict[str, Any]:
    clean, _ = redact_json(value)
    return clean if isinstance(clean, dict) else value


class LangSmithTracer(ViewedTracer, LangChainTracer):
    """`LangChainTracer` with the tree's views and redacted error text."""

    views: RunViews = RunViews()

    @staticmethod
    def _get_stacktrace(error: BaseException) -> str:
        return redact(LangChainTracer._get_stacktrace(error))

    def copy_with_metadata_defaults(self, **kwargs: Any) -> LangChainTracer:
        """LangChain copies the tracer to add inherited metadata; the copy keeps our views."""
        copy = super().copy_with_metadata_defaults(**kwargs)
        copy.views = self.views  # type: ignore[attr-defined]
        return copy


def langsmith_tracer(views: RunViews, project: str = "refinelab") -> LangSmithTracer:
    """A tracer sending to the endpoint and project the LANGSMITH_* variables name, through a client
    that redacts everything before it is queued."""
    from langsmith import Client

    # Read here, not through langsmith's cached environment lookups: the tracer follows the environment
    # of the moment the run opens, as `langsmith_enabled` does.
    endpoint = _first("LANGSMITH_ENDPOINT", "LANGCHAIN_ENDPOINT")
    client = Client(api_url=endpoint, api_key=_first(*_KEYS), anonymizer=_anonymize)
    tracer = LangSmithTracer(project_name=_first("LANGSMITH_PROJECT", "LANGCHAIN_PROJECT") or project, client=client)
    tracer.views = views
    return tracer
