"""One run tree per run folder, built by LangChain's own callback and tracer stack.

Everything that is traced goes through LangChain's callback managers, so LangGraph's runs (the graph and
each node), our spans (an edit, a sub-step, a tool) and each model request (an LLM run) form one tree:

    refinelab.run → refinelab (the graph) → refine (a node) → r1-fix-q7 (the edit) → writer:MODEL (an LLM run)

The tree's handlers are `JsonlTracer` (writes `trace.jsonl`) and, when LangSmith is keyed,
`LangSmithTracer` (LangChain's `LangChainTracer`). Both receive the same events, so LangSmith gets
exactly the tree in `trace.jsonl`, once: LangChain adds its own tracer only where the handlers hold
none, and the chat model's own callbacks are off for the request (`transport_only`), because
`ChatClient` reports each request itself as an LLM run carrying what the ledger charged for it.

A span finds its parent in LangChain's current runnable config (a context variable that LangGraph sets
for each node and that `span` sets for its body; thread pools copy it with `contextvars.copy_context`).
With no enclosing run, a span is a top-level run of the folder's tree: the first one is the root, later
ones (another API call, a resumed process, a thread without the context) become its children.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import BaseCallbackHandler, BaseCallbackManager, CallbackManager
from langchain_core.callbacks.manager import CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.runnables.config import (
    RunnableConfig,
    ensure_config,
    patch_config,
    var_child_runnable_config,
)
from langchain_core.tracers import LangChainTracer
from langchain_core.utils.uuid import uuid7
from langsmith import tracing_context

from refinelab.tools.trace_jsonl import JsonlTracer, first_root, read_trace
from refinelab.tools.trace_langsmith import langsmith_enabled, langsmith_tracer
from refinelab.tools.trace_views import RunViews, View

__all__ = ["LLMCall", "RunType", "Span", "Tracer", "langsmith_enabled", "read_trace", "transport_only"]

RunType = Literal["chain", "llm", "tool", "retriever", "parser", "prompt"]

_KINDS = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}


@dataclass
class Span:
    """An open run: set `outputs` inside the `with` block; they are recorded when it closes."""

    id: str
    name: str
    run_type: str
    outputs: dict[str, Any] | None = field(default=None)


class LLMCall:
    """One model request as an LLM run. End it exactly once, with what the ledger charged for it."""

    def __init__(self, manager: CallbackManagerForLLMRun, model: str) -> None:
        self._manager = manager
        self._model = model
        self.id = str(manager.run_id)

    def _result(self, text: str, prompt: int, completion: int,
                top_logprobs: list[tuple[str, float]] | None = None, cached_prompt: int = 0) -> LLMResult:
        usage = UsageMetadata(input_tokens=prompt, output_tokens=completion, total_tokens=prompt + completion)
        if cached_prompt:  # LangChain's (and LangSmith's) name for prompt tokens read from a prompt cache
            usage["input_token_details"] = {"cache_read": cached_prompt}
        message = AIMessage(content=text, usage_metadata=usage, response_metadata={"model_name": self._model})
        info = {"top_logprobs": [list(pair) for pair in top_logprobs]} if top_logprobs is not None else None
        return LLMResult(generations=[[ChatGeneration(message=message, generation_info=info)]],
                         llm_output={"model_name": self._model, "token_usage": {
                             "prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}})

    def end(self, text: str, prompt_tokens: int, completion_tokens: int, *,
            top_logprobs: list[tuple[str, float]] | None = None, cached_prompt_tokens: int = 0) -> None:
        """An answer (possibly cut off at max_tokens, possibly from the cache at 0 tokens), with the first
        token's alternatives when the request asked for logprobs, and how many prompt tokens the server
        read from its prompt cache."""
        self._manager.on_llm_end(self._result(text, prompt_tokens, completion_tokens, top_logprobs,
                                              cached_prompt_tokens))

    def fail(self, error: BaseException, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        """No answer; a request that may have been billed carries the tokens the ledger charged."""
        self._manager.on_llm_error(error, response=self._result("", prompt_tokens, completion_tokens))


@contextlib.contextmanager
def transport_only() -> Iterator[RunnableConfig]:
    """The config for a chat model used as transport: no callbacks, and LangChain's environment-driven
    tracer off, so the request is not traced a second time as a stray root run. Pass it as `config=`."""
    with tracing_context(enabled=False):
        yield RunnableConfig(callbacks=[])


class Tracer:
    """The run tree of one folder: `span` for our runs, `llm_call` for model requests, `flush` at the end."""

    def __init__(self, path: str | Path | None, project: str = "refinelab") -> None:
        self.path = Path(path) if path else None
        self.views = RunViews()
        self.langsmith = langsmith_tracer(self.views, project) if langsmith_enabled() else None
        self.jsonl = JsonlTracer(self.path, self.views, twin=self.langsmith) if self.path else None
        # LangSmith's tracer first: the JSONL tracer copies its start times (same dotted orders in both)
        self.handlers: list[BaseCallbackHandler] = [h for h in (self.langsmith, self.jsonl) if h is not None]
        previous = first_root(self.path) if self.path and self.path.exists() else None
        self._anchor: uuid.UUID | None = None  # the tree's root: parent of every later top-level run
        self.trace_id = str(uuid7())  # the root's id, time-ordered like every run id LangChain makes
        if previous is not None:
            self._anchor, self.trace_id = uuid.UUID(previous["id"]), previous["trace_id"]
            for handler in self.handlers:  # as LangChain does for a parent run from another process
                handler.order_map[self._anchor] = (uuid.UUID(previous["trace_id"]), previous["dotted_order"])  # type: ignore[attr-defined]

    # -- configuration ----------------------------------------------------------------------------

    def show(self, name: str, *, inputs: View | None = None, outputs: View | None = None) -> None:
        """Record runs named `name` through these views (a summary instead of a large payload)."""
        self.views.set(name, inputs=inputs, outputs=outputs)

    def _manager(self, config: RunnableConfig | None, tags: list[str] | None,
                 metadata: dict[str, Any] | None) -> tuple[CallbackManager, bool]:
        """A callback manager for a new run under the current one; True when it is a top-level run."""
        callbacks = (config or {}).get("callbacks")
        top = callbacks is None
        if isinstance(callbacks, BaseCallbackManager):
            manager = CallbackManager(handlers=list(callbacks.handlers),
                                      inheritable_handlers=list(callbacks.inheritable_handlers),
                                      parent_run_id=callbacks.parent_run_id, tags=list(callbacks.tags),
                                      inheritable_tags=list(callbacks.inheritable_tags),
                                      metadata=dict(callbacks.metadata),
                                      inheritable_metadata=dict(callbacks.inheritable_metadata))
        else:
            handlers = list(callbacks or [])
            manager = CallbackManager(handlers=handlers, inheritable_handlers=list(handlers),
                                      parent_run_id=self._anchor if top else None)
        has_langsmith = any(isinstance(h, LangChainTracer) for h in manager.handlers)
        for handler in self.handlers:
            if handler in manager.handlers or (isinstance(handler, LangChainTracer) and has_langsmith):
                continue
            manager.add_handler(handler, inherit=True)
        if config:
            manager.add_tags(list(config.get("tags") or []), inherit=True)
            manager.add_metadata(dict(config.get("metadata") or {}), inherit=True)
        if tags:
            manager.add_tags(tags, inherit=False)
        if metadata:
            manager.add_metadata(metadata, inherit=False)
        return manager, top

    # -- runs -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        run_type: RunType = "chain",
        inputs: dict[str, Any] | None = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> Iterator[Span]:
        """Open a run under the current one, make it the parent of runs started inside, close it
        (recording `outputs`, or the error that left the block)."""
        config = var_child_runnable_config.get()
        manager, top = self._manager(config, tags, metadata)
        if run_id is None and top and self._anchor is None:
            run_id = self.trace_id  # the root's id is the trace id, as LangSmith requires
        run = manager.on_chain_start({"name": name}, dict(inputs or {}), run_id=uuid.UUID(run_id) if run_id else None,
                                     name=name, run_type=run_type)
        if top and self._anchor is None:
            self._anchor = run.run_id
        child = patch_config(ensure_config(config), callbacks=run.get_child())
        span = Span(id=str(run.run_id), name=name, run_type=run_type)
        token = var_child_runnable_config.set(child)
        try:
            # At the top, decide for the whole tree whether LangChain may trace to LangSmith: only
            # through our tracer (keyed), never through one it would add from the environment alone.
            with tracing_context(enabled=self.langsmith is not None) if top else contextlib.nullcontext():
                yield span
        except BaseException as exc:
            run.on_chain_error(exc)
            raise
        else:
            run.on_chain_end(span.outputs if span.outputs is not None else {})
        finally:
            var_child_runnable_config.reset(token)

    def llm_call(self, name: str, messages: list[dict[str, str]], *, model: str,
                 invocation_params: dict[str, Any], metadata: dict[str, Any]) -> LLMCall:
        """Start the LLM run of one model request under the current run (`LLMCall.end`/`fail` closes it)."""
        manager, _ = self._manager(var_child_runnable_config.get(), None, metadata)
        prompt: list[BaseMessage] = [_KINDS.get(m["role"], HumanMessage)(content=m["content"]) for m in messages]
        [run] = manager.on_chat_model_start({"name": name, "id": ["refinelab", "ChatClient"]}, [prompt],
                                            name=name, invocation_params=invocation_params)
        return LLMCall(run, model)

    def close(self) -> None:
        """Release trace.jsonl's file (records written later reopen it)."""
        if self.jsonl is not None:
            self.jsonl.close()

    def flush(self) -> None:
        """Wait until LangSmith has everything queued so far (trace.jsonl is written synchronously)."""
        if self.langsmith is not None:
            self.langsmith.wait_for_futures()
