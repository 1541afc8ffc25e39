"""Human review as a graph step: what pauses at a LangGraph `interrupt()`, what a decision does, and where
decisions are recorded.

Four kinds of case go to review: an edit whose validator could not decide (`undecided`, at its last
attempt), a key fix the two-source evidence bar held back (`below_bar`, at its last attempt), a passed
edit whose evidence is below `options.review_evidence_bar` (`weak_evidence`), and an item screening
flagged that no edit fixed by the end of the run (`unfixable`). With `options.review ==
"ask"` the `review` node interrupts with a `ReviewRequest` (ids, kind, the validator's reason — never the
items themselves: those stay in the store, and the API shows them); the run resumes with
`Command(resume={interrupt_id: ReviewDecision})`. `auto-accept`/`auto-reject` decide by policy, without a
pause. Every decision is kept in the store (meta `review_decisions`) and written to `changes.jsonl`.
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from refinelab.agents.context import AgentContext
from refinelab.errors import validation_problem
from refinelab.schema import QAItem

ReviewCaseKind = Literal["undecided", "weak_evidence", "below_bar", "unfixable"]
DecisionName = Literal["accept", "reject", "edit", "skip"]
DECISIONS_META = "review_decisions"
_LOCK = threading.Lock()  # review nodes of one superstep run in threads and share the meta row


class ReviewRequest(BaseModel):
    """What an `interrupt()` carries: enough to find the case in the store, and why it is asked."""

    model_config = ConfigDict(extra="forbid")

    key: str  # the edit id, or `item:ID` for a flagged item
    kind: ReviewCaseKind
    item_id: str
    edit_id: str | None = None
    attempt: int | None = None
    operation: str = ""
    round: int = 0
    reason: str = ""  # the validator's reason, or the screening flag's error type
    method: str = ""
    goto: Literal["collect", "finalize"] = "collect"


class ItemEdit(BaseModel):
    """A reviewer's own version of the item: the fields they change (the rest come from the proposal)."""

    model_config = ConfigDict(extra="forbid")

    question: str | None = None
    choices: list[str] | None = None
    answer: int | None = None


class ReviewDecision(BaseModel):
    """A reviewer's answer to one case (also one line of an imported decisions file)."""

    model_config = ConfigDict(extra="forbid")

    key: str = ""
    decision: DecisionName
    by: str = Field("", max_length=200)
    at: str = ""
    note: str = Field("", max_length=2000)
    item: ItemEdit | None = None

    def stamped(self, by: str) -> ReviewDecision:
        """This decision with who/when filled in where the reviewer left them out."""
        return self.model_copy(update={"by": self.by or by,
                                       "at": self.at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")})


def parse_decision(value: Any, where: str) -> ReviewDecision:
    """A resume value as a `ReviewDecision`; a malformed one is a one-line `ValueError` naming `where`."""
    try:
        return value if isinstance(value, ReviewDecision) else ReviewDecision.model_validate(value)
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        raise ValueError(f"{where}: field {field or 'decision'}: {message}") from None


def policy_decision(mode: str) -> ReviewDecision:
    """The decision `auto-accept`/`auto-reject` takes for every case, stamped as the policy's."""
    return ReviewDecision(decision="accept" if mode == "auto-accept" else "reject").stamped(f"policy:{mode}")


def edited_item(base: QAItem, decision: ReviewDecision, created_by: str) -> QAItem:
    """The reviewer's version of `base`; raises ValueError (naming the field) when it is not a valid item."""
    changes = decision.item.model_dump(exclude_none=True) if decision.item else {}
    if not changes:
        raise ValueError(f"review decision {decision.key!r}: 'edit' needs an item with question/choices/answer")
    provenance = base.provenance.model_copy(update={"created_by": created_by})
    try:
        return QAItem.model_validate({**base.model_dump(), **changes, "provenance": provenance.model_dump()})
    except ValidationError as exc:
        field, message = validation_problem(exc.errors()[0])
        raise ValueError(f"review decision {decision.key!r}: item.{field}: {message}") from None


def record(ctx: AgentContext, request: ReviewRequest, decision: ReviewDecision) -> None:
    """Keep the decision with its case in the store; `changes.jsonl` is written from these."""
    with _LOCK:
        decisions = ctx.store.get_meta(DECISIONS_META, {}) or {}
        decisions[request.key] = {"request": request.model_dump(), "decision": decision.model_dump(exclude_none=True)}
        ctx.store.set_meta(DECISIONS_META, decisions)


def recorded(ctx: AgentContext) -> dict[str, dict[str, Any]]:
    """Every decision so far, by case key."""
    return dict(ctx.store.get_meta(DECISIONS_META, {}) or {})
