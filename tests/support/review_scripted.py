"""A scripted model whose validator cannot decide the items the writer proposes, so they go to review.

The writer marks its items "(key ?)"; asked for the letter of such an item, the validator answers prose
(no JSON), so the answer check ends `unanswered` — the case human review exists for. Everything else
answers as `tests.support.scripted` does.
"""

from __future__ import annotations

from tests.support.scripted import respond
from tests.support.scripted_model import ScriptedChatModel

UNDECIDABLE = "(key ?)"


def undecided_respond(messages: list[dict[str, str]]) -> str:
    text = messages[-1]["content"]
    if "give the letter" in text and UNDECIDABLE in text:
        return "I cannot tell which option is meant."
    answer = respond(messages)
    return answer.replace("(key A)", UNDECIDABLE) if '"question"' in answer else answer


def undecided_models() -> dict[str, ScriptedChatModel]:
    model = ScriptedChatModel(respond=undecided_respond)
    return {"judge": model, "writer": model, "validator": model}
