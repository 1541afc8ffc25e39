"""One real structured call to a model endpoint, timed and metered (`refinelab model check`)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel

from refinelab.config import ModelSpec
from refinelab.tools.ledger import CallTag, Ledger
from refinelab.tools.llm import ChatClient

QUESTION = "Which is a prime number?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer with the letter."


class Answer(BaseModel):
    answer: Literal["A", "B", "C", "D"]


def check_model(model: str, endpoint: str = "embedded") -> dict[str, Any]:
    """Start (or reach) the endpoint, ask one question, and report what it answered, how fast and at what
    cost. Raises `RefineLabError` (e.g. `LLMCallFailed`) when the endpoint cannot answer."""
    ledger = Ledger()
    client = ChatClient(ModelSpec(endpoint=endpoint, model=model, max_tokens=40), ledger, role="check")
    started = time.monotonic()
    client.chat_model()
    ready = time.monotonic() - started
    result = client.structured([{"role": "user", "content": QUESTION}], Answer, CallTag(node="model-check"))
    return {
        "model": model, "endpoint": endpoint, "answer": result.parsed.answer, "correct": result.parsed.answer == "C",
        "server_ready_s": round(ready, 2), "latency_s": round(result.latency_s, 2),
        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
        "ledger_spent": ledger.spent,
    }
