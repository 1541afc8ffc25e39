"""The graph state: ids, counts, the plan, the round and the ledger summary — never the items.

Items live in the run store; a checkpoint therefore stays small however big the dataset is.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict


class RefineState(TypedDict, total=False):
    run_id: str
    round: int
    phase: str  # load | profile | plan | refine | finalize | done
    counts: dict[str, int]  # items by status
    plan: dict[str, Any]  # the current round's plan summary (ops, forecast, metrics, reason)
    plans: Annotated[list[dict[str, Any]], operator.add]  # every round's plan summary, in order
    tasks: list[dict[str, Any]]  # the current round's edit tasks (ids and operations only)
    outcomes: Annotated[list[str], operator.add]  # edit ids that reached a final state this round
    ledger: dict[str, Any]  # spent, cap, by node
    stop_reason: str
    collected_round: int  # the last round whose outcomes were collected (guards duplicate collects)


class EditTaskState(TypedDict):
    """The payload a `Send` carries to refine and validate: one edit, one attempt."""

    edit_id: str
    item_id: str
    operation: str
    round: int
    attempt: int
    target: str
    feedback: str
