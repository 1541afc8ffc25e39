"""Exact prompt token counts from the serving engine, for reservations that let a run spend its budget.

Why: the ledger reserves a call's worst case before sending it. The byte bound (one token per UTF-8
byte, `llm.estimate_prompt_tokens`) is safe but about four times the real count for English, so near
the end of a budget the last calls do not fit and a run stops well short of its cap. Servers that
tokenize for us give the real count of the prompt as the model will see it (chat template included):

- llama.cpp (the embedded server): `POST /apply-template {"messages"}` then `POST /tokenize`;
- vLLM / SGLang: `POST /tokenize {"model", "messages"}` → `{"count"}`.

The count is then raised by a safety margin (`margin`), and any failure (hosted APIs have neither
route) falls back to the byte bound for the rest of the client's life, so a reservation is never
below what the server will report.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from refinelab.tools.transport import capped_body

MARGIN_SHARE = 0.02  # 2% of the count ...
MARGIN_TOKENS = 8  # ... plus a few tokens (a BOS the template leaves implicit)


def with_margin(count: int) -> int:
    """The reservation for a prompt of `count` tokens as the server counts it."""
    return count + int(count * MARGIN_SHARE) + MARGIN_TOKENS


class PromptTokenCounter:
    """Counts prompt tokens on an OpenAI-compatible server; `count()` is None when it cannot."""

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 5.0) -> None:
        self.root = base_url.removesuffix("/").removesuffix("/v1")
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(timeout=timeout_s, headers=headers)
        self._kind: str | None = None  # "llama.cpp", "vllm" or "none", found on first use
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def count(self, messages: list[dict[str, str]]) -> int | None:
        """Prompt tokens of `messages` with the chat template, as the server counts them (no margin)."""
        kind = self._kind
        if kind == "none":
            return None
        try:
            if kind in (None, "llama.cpp"):
                found = self._llama_cpp(messages)
                if found is not None:
                    self._kind = "llama.cpp"
                    return found
                if kind == "llama.cpp":
                    return None
            found = self._vllm(messages)
            if found is not None:
                self._kind = "vllm"
                return found
        except (httpx.HTTPError, ValueError, RecursionError):  # no answer, not JSON (or over the cap)
            pass  # the answers are read by shape above: any other shape means this server cannot count
        with self._lock:
            if self._kind is None:
                self._kind = "none"
        return None

    def _post(self, route: str, payload: dict[str, Any]) -> Any:
        """The JSON answer of a 200, else None; the body read within the chat replies' cap (untrusted)."""
        with self._http.stream("POST", f"{self.root}{route}", json=payload) as answer:
            body = capped_body(answer)
        return json.loads(body) if answer.status_code == 200 else None

    def _llama_cpp(self, messages: list[dict[str, str]]) -> int | None:
        applied = self._post("/apply-template", {"messages": messages})
        prompt = applied.get("prompt") if isinstance(applied, dict) else None
        if not isinstance(prompt, str):
            return None
        tokens = self._post("/tokenize", {"content": prompt, "add_special": True})
        return _length(tokens.get("tokens")) if isinstance(tokens, dict) else None

    def _vllm(self, messages: list[dict[str, str]]) -> int | None:
        body = self._post("/tokenize", {"model": self.model, "messages": messages})
        count = body.get("count") if isinstance(body, dict) else None
        return count if isinstance(count, int) and count >= 0 else None


def _length(tokens: Any) -> int | None:
    return len(tokens) if isinstance(tokens, list) else None
