"""Validator test helpers: a scripted model keyed by prompt kind, item builders, a fake embedder, a tiny corpus."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from refinelab.schema import QAItem
from tests.support.scripted_model import ScriptedChatModel

Responder = Callable[[list[dict[str, str]]], str]


def kind_of(messages: list[dict[str, str]]) -> str:
    """Which validator prompt a request is (by text the prompt files contain)."""
    text = "\n".join(m["content"] for m in messages)
    if "short Python 3 program" in text:
        return "pot"
    if "Passages:" in text:
        return "rag"
    if "how their answer is checked" in text:
        return "classify"
    if "give the letter" in text:
        return "answer"
    return "other"


@dataclass
class Script:
    """A scripted validator model and the requests it saw, as (kind, messages)."""

    model: ScriptedChatModel
    seen: list[tuple[str, list[dict[str, str]]]] = field(default_factory=list)

    def kinds(self) -> list[str]:
        return [kind for kind, _ in self.seen]


def scripted(**replies: Any) -> Script:
    """A model that answers each prompt kind from `replies[kind]`: a str, a list (consumed in order, the
    last one repeats) or a callable(messages) -> str."""
    queues = {k: list(v) if isinstance(v, list) else [v] for k, v in replies.items()}
    seen: list[tuple[str, list[dict[str, str]]]] = []

    def respond(messages: list[dict[str, str]]) -> str:
        kind = kind_of(messages)
        seen.append((kind, messages))
        if kind not in queues:
            raise AssertionError(f"unexpected {kind} request: {messages[-1]['content'][:200]}")
        queue = queues[kind]
        reply = queue.pop(0) if len(queue) > 1 else queue[0]
        return reply(messages) if callable(reply) else reply

    return Script(ScriptedChatModel(respond=respond), seen)


def code(src: str) -> str:
    return json.dumps({"code": src})


def answer(letter: str) -> str:
    return json.dumps({"reasoning": "scripted", "answer": letter})


def mcq(question: str, choices: list[str], answer_index: int, subject: str = "elementary_mathematics",
        item_id: str = "t1") -> QAItem:
    return QAItem(id=item_id, question=question, choices=choices, answer=answer_index, subject=subject)


class HashEmbedder:
    """Bag-of-words feature hashing (deterministic, instant, lexical) so RAG mechanics need no model."""

    dim = 384
    model_id = "test/hash-bow-384"

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for tok in re.findall(r"[a-z0-9]+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=4).digest(), "little")
                out[row, h % self.dim] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1
        return out / norms


PASSAGES = [
    ("p:paris", "Paris", "Paris is the capital and most populous city of France, on the river Seine."),
    ("p:rome", "Rome", "Rome is the capital city of Italy and of the Lazio region."),
    ("p:everest", "Mount Everest", "Mount Everest is Earth's highest mountain above sea level, in the Himalayas."),
    ("p:tokyo", "Tokyo", "Tokyo is the capital of Japan and the seat of the Japanese government."),
]
