"""Shared helpers: a profiling context on scripted models, synthetic items with planted difficulty."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from refinelab.agents.context import AgentContext
from refinelab.config import load_settings
from refinelab.schema import QAItem
from tests.support.contexts import context_for
from tests.support.scripted_model import ScriptedChatModel


def planted_items(n: int, key: int = 0) -> list[QAItem]:
    """Items whose stem names their planted difficulty level ("level K"); key is option `key`."""
    return [QAItem(id=f"q{i:02d}", question=f"Question at level {i} about topic {i}?",
                   choices=[f"option one {i}", f"option two {i}", f"option three {i}", f"option four {i}"],
                   answer=key, subject="astronomy") for i in range(n)]


def level_of(text: str) -> int:
    return int(re.search(r"level (\d+)", text).group(1))  # type: ignore[union-attr]


class Recorder:
    """A scripted responder that logs each request (and its thread) and answers by prompt type."""

    def __init__(self, harder: Callable[[int, int], int] | None = None, panel_letter: str = "A") -> None:
        self.harder = harder or (lambda a, b: 1 if a > b else 2)
        self.panel_letter = panel_letter
        self.requests: list[str] = []
        self.threads: set[str] = set()
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict[str, str]]) -> str:
        text = messages[-1]["content"]
        with self.lock:
            self.requests.append(text)
            self.threads.add(threading.current_thread().name)
        if "Classify the question" in text:
            return json.dumps({"skill": "recall", "difficulty": 3})
        if "Which question is harder" in text:
            first, second = (level_of(part) for part in text.split("Question 2")[:2])
            return json.dumps({"harder": self.harder(first, second)})
        if "letter of the single best option" in text:
            return json.dumps({"answer": self.panel_letter})
        raise AssertionError(f"unexpected prompt: {text[:80]}")

    def pairs(self) -> list[tuple[int, int]]:
        out = []
        for text in self.requests:
            if "Which question is harder" in text:
                first, second = text.split("Question 2")[:2]
                out.append((level_of(first), level_of(second)))
        return out


def make_context(tmp_path: Path, judge: ScriptedChatModel, *, budget: int | None = None,
                 options: dict[str, Any] | None = None, panel: dict[str, ScriptedChatModel] | None = None,
                 concurrency: int = 2) -> AgentContext:
    settings = load_settings(overrides={"runs_dir": str(tmp_path / "runs"), "cache_path": str(tmp_path / "c.sqlite"),
                                        "roles": {"judge": {"concurrency": concurrency}}})
    models: dict[str, Any] = {"judge": judge, "writer": judge, "validator": judge}
    models |= {f"panel:{name}": m for name, m in (panel or {}).items()}
    options = dict(options or {})
    # These scripted members pick a letter by item, whatever the option order: the letter method suits
    # them; the logprobs method has its own order-aware members (test_panel_probabilities.py).
    options.setdefault("panel_method", "letter")
    return context_for(tmp_path / "profile", settings, chat_models=models, budget=budget, **options)
