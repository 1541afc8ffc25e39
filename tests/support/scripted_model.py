"""A scripted chat model for tests of graph logic: no network, deterministic, reports usage.

`ScriptedChatModel(respond)` calls `respond(messages) -> str` for each request. It reports token usage
the way an OpenAI-compatible server does (prompt ≈ bytes/4, completion ≈ bytes/4), so ledger and
trace accounting are exercised exactly as with a real model. `respond` may raise to simulate faults. For a logprobs request (`first_token_logprobs`), `respond` returns
the OpenAI `logprobs` block as JSON (see `logprobs_block`), which lands in `response_metadata` as a real
server's would.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

Responder = Callable[[list[dict[str, str]]], str]


def _as_dicts(messages: list[BaseMessage]) -> list[dict[str, str]]:
    roles = {"system": "system", "human": "user", "ai": "assistant"}
    return [{"role": roles.get(m.type, m.type), "content": str(m.content)} for m in messages]


def approx_tokens(text: str) -> int:
    return max(1, len(text.encode()) // 4)


class ScriptedChatModel(BaseChatModel):
    """Answers from a Python function; counts calls; thread-safe."""

    respond: Any  # Responder; typed Any because pydantic cannot validate a callable signature
    # For a reply forced by a grammar (`forced_text_logprobs`): (messages, forced text) -> [(token, logprob)]
    respond_forced: Any = None
    calls: int = 0
    lock: Any = None

    def model_post_init(self, __context: Any) -> None:
        self.lock = threading.Lock()

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self.lock:
            self.calls += 1
        as_dicts = _as_dicts(messages)
        grammar = (kwargs.get("extra_body") or {}).get("grammar")
        if grammar is not None and self.respond_forced is not None:
            forced = json.loads(grammar.removeprefix("root ::= "))
            text = forced_block(self.respond_forced(as_dicts, forced))
        else:
            text = self.respond(as_dicts)
        prompt = sum(approx_tokens(m["content"]) for m in as_dicts)
        completion = approx_tokens(text)
        metadata: dict[str, Any] = {}
        if kwargs.get("logprobs") and (block := _logprobs_block(text)) is not None:
            # a one-token request: `respond` returned the logprobs block's JSON; any other reply is what an
            # endpoint that ignores `logprobs` sends (text, no logprobs)
            # (a reply forced by a grammar lists every token: its text is theirs joined)
            text, completion = "".join(entry["token"] for entry in block["content"]), len(block["content"])
            metadata["logprobs"] = block
        message = AIMessage(content=text, response_metadata=metadata, usage_metadata={
            "input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion})
        return ChatResult(generations=[ChatGeneration(message=message)])


def _logprobs_block(text: str) -> dict[str, Any] | None:
    try:
        block = json.loads(text)
    except ValueError:
        return None
    return block if isinstance(block, dict) and isinstance(block.get("content"), list) and block["content"] else None


def forced_block(tokens: list[tuple[str, float]]) -> str:
    """The OpenAI `logprobs` JSON of a reply forced token by token: [(token, logprob), …] in order."""
    return json.dumps({"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                   for t, lp in tokens]})


def logprobs_block(probs: dict[str, float]) -> str:
    """The OpenAI `logprobs` JSON of a one-token reply whose first-token alternatives are `probs`."""
    import math

    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    top = [{"token": t, "logprob": math.log(p), "bytes": list(t.encode())} for t, p in ranked if p > 0]
    return json.dumps({"content": [{**top[0], "top_logprobs": top}]})
