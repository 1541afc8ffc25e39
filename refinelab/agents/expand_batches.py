"""Several new items for one cell drafted in one writer call (`RunOptions.expand_batch`).

A single expand draft costs the writer's prompt (instructions, the skill's description and two example
items of the template's subject) for one item: on the 100k JSD eval 309 tokens a draft, half of the run.
Asked for k items at once, the prompt is paid once for k (measured on six cells: 176-309 tokens a
draft instead of 338-863). On the 50k JSD eval, drafting four to a call kept 31 new items at 1,302 tokens
each where one draft per call, on the same code, kept 24 at 1,766 (evals/results/jsd_curve_batch4.md,
jsd_curve_batch1.md): four is the default.

The plan decides the batches (agents/edit_tasks.py, `tasks_from_plan`): the expands bought for one cell in one
round are cut into runs of at most k, each run seeded by one template item, and every task carries its
slot, `DraftSlot`. Whichever task of a batch runs first asks the writer; the others wait for it and take
the draft at their own position, so which task gets which draft does not depend on timing. Each task's
candidate carries an equal share of the call's tokens, so they sum to what the ledger charged.

A batch may ask for spare drafts (`RunOptions.expand_spares`): a retry of one of its tasks takes the next
unused spare instead of a writer call of its own, and asks the writer (with the validator's feedback) only
when none is left. On the 100k JSD eval a retry with feedback was committed no more often than a first
draft (19 of 62 against 25 of 87): the 1.5B writer does not use the feedback, so a fresh draft from the
batch, at a fraction of a call's prompt, is as good a second try.

A pack that words `refine_expand` its own way but brings no `refine_expand_batch` of its own writes one item
per call, as does any batch whose call fails or does not fit the budget left (it reserves room for k
answers): then every task of it asks for its own draft.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field, create_model

from refinelab.errors import BudgetExhausted, LLMCallFailed
from refinelab.model_outputs import ItemDraft
from refinelab.prompts.loader import Pack
from refinelab.tools.ledger import CallTag
from refinelab.tools.llm import ChatClient

BATCH_PROMPT = "refine_expand_batch"
SINGLE_PROMPT = "refine_expand"


@dataclass(frozen=True)
class DraftSlot:
    """Where one expand task's draft comes from: position `position` (0-based) of batch `batch`, which
    drafts one item for each of its `size` tasks and `spares` more for their retries. Carried in the task as
    text ("batch#position/size+spares") because tasks travel as plain dicts."""

    batch: str
    position: int
    size: int
    spares: int = 0

    def __str__(self) -> str:
        return f"{self.batch}#{self.position}/{self.size}+{self.spares}"

    @property
    def drafts(self) -> int:
        """Drafts the batch's writer call asks for."""
        return self.size + self.spares

    @classmethod
    def parse(cls, text: str) -> DraftSlot | None:
        """The slot written by `str`; None for "" (no batch) or a value that is not one."""
        batch, _, rest = text.rpartition("#")
        position, _, counts = rest.partition("/")
        size, _, spares = counts.partition("+")
        if not batch or not all(part.isdigit() for part in (position, size, spares or "0")):
            return None
        slot = cls(batch, int(position), int(size), int(spares or 0))
        return slot if 0 <= slot.position < slot.size and slot.drafts > 1 else None


def batch_schema(size: int) -> type[BaseModel]:
    """The batch reply: exactly `size` item drafts, each as a single draft's schema."""
    return create_model("ItemDrafts", items=(list[ItemDraft], Field(min_length=size, max_length=size)))


def batch_prompt_usable(pack: Pack) -> bool:
    """True when `pack` words its batch prompt where it words the single one: the same pack file, or the
    same folder of one-file-per-prompt defaults. A pack that overrides `refine_expand` without a batch
    version keeps its own wording, one item per call."""
    batch, single = pack.sources.get(BATCH_PROMPT), pack.sources.get(SINGLE_PROMPT)
    if batch is None or single is None:
        return False
    return batch == single or (Path(batch).parent == Path(single).parent and Path(batch).stem == BATCH_PROMPT
                               and Path(single).stem == SINGLE_PROMPT)


@dataclass
class DraftBatch:
    """What one batched writer call returned: its drafts in order (empty when it failed, with `error`), its
    raw text and tokens, and the next spare draft a retry takes."""

    drafts: list[ItemDraft]
    text: str
    tokens: int
    error: str = ""
    next_spare: int = 0


@dataclass
class DraftShare:
    """One task's part of a batch: its draft (None when the batch failed), the reply's text, and its share
    of the call's tokens."""

    draft: ItemDraft | None
    text: str
    tokens: int
    error: str = ""


@dataclass
class DraftBatches:
    """The run's batches, each drafted once: the first task of a batch to arrive calls the writer while the
    others of that batch wait on its lock. Lives in the runtime context; lost on a crash, when the re-run
    task asks again with the same prompt and sample and is answered from the response cache."""

    _batches: dict[str, DraftBatch] = field(default_factory=dict)
    _locks: dict[str, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def share(self, writer: ChatClient, slot: DraftSlot, messages: Callable[[], list[dict[str, str]]],
              tag: CallTag) -> DraftShare:
        """The draft at `slot`, drafting its batch (`writer` asked `messages()`) if no task of it has yet. The
        prompt is built only by the task that drafts: its examples read the run store, and the others of
        the batch would read it for a prompt nobody sends."""
        with self._guard:
            lock = self._locks.setdefault(slot.batch, threading.Lock())
        with lock:
            if slot.batch not in self._batches:
                self._batches[slot.batch] = _draft_batch(writer, slot, messages(), tag)
        batch = self._batches[slot.batch]
        share, extra = divmod(batch.tokens, slot.size)
        tokens = share + (extra if slot.position == 0 else 0)
        if not batch.drafts:
            return DraftShare(None, batch.text, tokens, batch.error)
        return DraftShare(batch.drafts[slot.position], batch.text, tokens)

    def spare(self, slot: DraftSlot) -> DraftShare | None:
        """The batch's next unused spare draft for a retry of a task of it, in the order retries ask (its
        writer call is already paid by the batch's first attempts); None when none is left, or the batch
        was never drafted in this process (a resumed run): the retry then asks for its own draft."""
        with self._guard:
            batch = self._batches.get(slot.batch)
            if batch is None or not batch.drafts or slot.size + batch.next_spare >= len(batch.drafts):
                return None
            draft = batch.drafts[slot.size + batch.next_spare]
            batch.next_spare += 1
        return DraftShare(draft, batch.text, 0)


def _draft_batch(writer: ChatClient, slot: DraftSlot, messages: list[dict[str, str]], tag: CallTag) -> DraftBatch:
    try:
        result = writer.structured(messages, batch_schema(slot.drafts), tag, sample=slot.batch, answers=slot.drafts)
    except LLMCallFailed as exc:
        return DraftBatch([], "\n---\n".join(exc.raw_outputs), exc.tokens, error=f"batch writer output unusable: {exc}")
    except BudgetExhausted as exc:  # a batch reserves k answers' room; one draft may still fit what is left
        return DraftBatch([], "", 0, error=f"no room for the batch: {exc}")
    return DraftBatch(list(result.parsed.items), result.text, result.tokens)
