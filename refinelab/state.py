"""The graph's state and the edit types that travel through it.

State holds ids, counts, the plan, the round and the ledger summary — never the items: items live in the
run store, so a checkpoint stays small however big the dataset is. An edit moves as an `EditTask`
(refine → validate → refine again | commit | give up); the refiner turns it into a `Candidate`, the
validator into a `Verdict`. They live here, below the graph and the agents, because both speak them.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, NotRequired, TypedDict

from refinelab.schema import QAItem


class RefineState(TypedDict, total=False):
    run_id: str
    round: int
    phase: str  # load | profile | plan | refine | finalize | done
    counts: dict[str, int]  # items by status
    plan: dict[str, Any]  # the current round's plan summary (ops, forecast, metrics, reason)
    plans: Annotated[list[dict[str, Any]], operator.add]  # every round's plan summary, in order
    tasks: list[EditTaskState]  # the current round's edit tasks (agents/edit_tasks.py; no item text)
    outcomes: Annotated[list[str], operator.add]  # edit ids that reached a final state this round
    ledger: dict[str, Any]  # spent, cap, by node
    stop_reason: str
    collected_round: int  # the last round whose outcomes were collected (guards duplicate collects)
    piloted: bool  # the pilot (round 0) was decided: run, skipped, or not wanted


class EditTaskState(TypedDict):
    """The payload a `Send` carries to refine and validate: one edit, one attempt."""

    edit_id: str
    item_id: str
    operation: str
    round: int
    attempt: int
    target: str
    feedback: str
    batch: NotRequired[str]
    aims: NotRequired[str]


PILOT_ROUND = 0  # the pilot's edits: round 0 of the same graph, before the first plan
CHECK_ROUND = -1  # a validator check of an existing item outside any edit round (profiling)
INTAKE_ROUND = -2  # what was decided on the input before profiling (decontamination's removals): no plan, no pilot

# An edit's final outcome (the store's `outcomes.status`): "committed" changed the item (or removed it, or
# added a new one) as the plan paid for; "confirmed" is a fix that passed with the item returned unchanged,
# so its key now stands on independent evidence and the item is kept as it was, not counted as edited;
# "gave_up" kept the original. The first two are what the planner learns success rates from.
COMMITTED, CONFIRMED, GAVE_UP = "committed", "confirmed", "gave_up"
SUCCEEDED = frozenset({COMMITTED, CONFIRMED})


@dataclass
class EditTask:
    """One planned edit as it travels through refine → validate → (refine again | commit | give up)."""

    edit_id: str
    item_id: str  # the existing item, or a template item for new ones
    operation: str
    round: int
    attempt: int = 0
    target: str = ""  # the cell key (expand) or bucket (generate, calibrate)
    feedback: str = ""  # the validator's reason for rejecting the previous attempt
    batch: str = ""  # a new item's place in a batched writer call (agents/expand_batches.DraftSlot), or ""
    aims: str = ""  # the difficulty buckets its writer call's drafts are asked for (agents/difficulty_aims.py)

    def ledger_node(self, step: str) -> str:
        """The node a call of this task is charged to: `step` (refine, validate), or `pilot` in round 0."""
        return "pilot" if self.round == PILOT_ROUND else step

    def payload(self) -> EditTaskState:
        """The plain dict a LangGraph `Send` carries."""
        return EditTaskState(edit_id=self.edit_id, item_id=self.item_id, operation=self.operation,
                             round=self.round, attempt=self.attempt, target=self.target, feedback=self.feedback,
                             batch=self.batch, aims=self.aims)


@dataclass
class Candidate:
    """A refiner's proposal; `error` says why there is none (or why it is unusable), never a silent None.

    An error that starts with ABSTAINED is the refiner declining on purpose (no draft could be committed on
    the evidence there is): the edit goes to a person instead of another attempt. The marker lives in the
    error text because an attempt's candidate is read back from the run store between the graph's nodes."""

    item: QAItem | None
    raw: str
    tokens: int
    error: str = ""

    @property
    def abstained(self) -> bool:
        return self.error.startswith(ABSTAINED)


ABSTAINED = "abstained: "


#: What a validator method concluded about the key. A typed field of `Verdict`, so that what reads it
#: (review's evidence strength, the fix rule, error screening) asks the verdict instead of fishing strings
#: out of its evidence; each method's values are its own:
Outcome = Literal[
    "decided",  # `passed` says it all: a plugged-in method that names nothing finer, a deterministic check
    "answered", "unanswered",  # the answer check: the independent model picked an option / gave no usable answer
    "match_key", "match_other", "no_match",  # PoT: the program's answer is the key / another option / no option
    "error",  # PoT: no program ran to an answer (the answer check decided: `fallback`)
    "supported", "contradicted",  # RAG: the passages pick the key / another option
    "insufficient", "unusable",  # RAG: the passages settle nothing / the judge's reading was unusable (fallback)
    "unavailable",  # the method's tool could not run (no sandbox, no retriever); a fallback may have decided
    "pass", "fail", "undecided",  # a pack's plugged-in tool (agents/validation/tools.py)
]
#: The outcomes that leave the key undecided, unless a fallback decided it.
UNDECIDED_OUTCOMES: frozenset[Outcome] = frozenset({"unanswered", "unavailable", "undecided"})
#: How often a verdict on the key is right, as error screening weighs it (metrics/error_checks.py): a
#: method that settled the key on evidence of its own (a computed answer, retrieved passages) ...
SETTLED_CONFIDENCE = 0.85
#: ... and an independent model's answer (the answer check, a fallback to it, a plugged-in tool).
ANSWERED_CONFIDENCE = 0.7


@dataclass
class Verdict:
    """The validator's decision on a candidate (or, for profiling, on an existing item), with the evidence
    it rests on and what it cost: the one verdict every validator method, built in or plugged in, returns.

    `outcome` is what the method concluded and `fallback` the answer check's verdict when the method did not
    settle the key itself; `confidence` is how sure the verdict is, which error screening pools. `evidence`
    is the record the run store, the run folder and the traces keep, so the typed fields are written into it
    under the keys runs have always written (`outcome`, `fallback`, `answer_check`): a stored verdict reads
    as it always did. Evidence that names another outcome or a fallback the fields lack is refused rather
    than left to disagree with them."""

    passed: bool
    reason: str
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0
    outcome: Outcome = "decided"
    fallback: Verdict | None = None
    confidence: float = ANSWERED_CONFIDENCE

    def __post_init__(self) -> None:
        # above 0.999 one verdict would outweigh every other source of the pooled log-odds; under 0.5 it
        # would say the opposite of `passed`
        if not 0.5 <= self.confidence <= 0.999:
            raise ValueError(f"verdict of {self.method!r}: confidence {self.confidence} is not in [0.5, 0.999]")
        recorded = self.evidence.get("outcome")
        if recorded is not None and recorded != self.outcome:
            raise ValueError(f"verdict of {self.method!r}: its evidence says outcome {recorded!r}, its `outcome` "
                             f"is {self.outcome!r}; set `outcome`")
        if self.outcome != "decided":
            self.evidence["outcome"] = self.outcome
        if self.fallback is not None:
            self.evidence["fallback"] = self.fallback.method
            self.evidence["answer_check"] = self.fallback.evidence
        elif "fallback" in self.evidence:
            raise ValueError(f"verdict of {self.method!r}: its evidence names a fallback; set `fallback` to its verdict")
