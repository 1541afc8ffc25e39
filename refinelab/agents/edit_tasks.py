"""A round's plan turned into its edit tasks: one `EditTask` per edit the plan bought.

An edit of an existing item names that item. A new item names a template item that seeds it (its
subject, domain and style, `template_item`); the expands bought for one cell are drafted several to a
writer call (`Operation.batched`, agents/expand_batches.py), a batch sharing one template, and with
`expand_aims_difficulty` the round's difficulty aims are dealt over those batches at once
(agents/difficulty_aims.py).

Edit ids are stable across runs (`edit_id`): the run store keys every attempt, verdict and outcome by
them, and a resumed run folder finds its edits by them, so they must not change shape.
"""

from __future__ import annotations

import uuid
from collections import Counter
from itertools import islice

from refinelab.agents.context import AgentContext
from refinelab.agents.difficulty_aims import difficulty_aims, join_aims
from refinelab.agents.expand_batches import DraftSlot
from refinelab.operations import Op, operation
from refinelab.planner.ilp import Plan
from refinelab.schema import Cell, QAItem
from refinelab.state import EditTask, EditTaskState


def edit_id(round_: int, op: Op | str, key: str) -> str:
    """The id of round `round_`'s edit by `op` of `key` (an item id, or a new item's stable hash)."""
    return f"r{round_}-{Op(op).value}-{key}"


def new_item_key(target: str, index: int) -> str:
    """The key of the `index`-th new item a round's plan writes into `target` (a cell key or a bucket):
    the same target and position give the same id whichever template seeds it."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"{target}-{index}").hex[:8]


def template_item(pool: list[QAItem], cell: str | None, used: Counter[str]) -> QAItem | None:
    """An existing item to seed a new one (its subject, domain, style): the least used item of the cell's
    domain (of the whole pool for a bucket), the cell's own items first among equals, then the least used
    subject. Two new items from one template send the writer the same prompt, and drafts of the same
    prompt came back as near-duplicates of each other (the second was then refused as one); and without
    the subject count, every generate of a round started from the alphabetically first subject's items.
    `used` counts both item ids and `subject_use_key`s (see `tasks_from_plan`)."""
    skill = Cell.parse(cell).skill if cell is not None else None
    candidates = pool
    if cell is not None:
        candidates = [i for i in pool if i.domain == Cell.parse(cell).domain] or pool
    if not candidates:
        return None
    return min(candidates, key=lambda i: (used[i.id], skill is not None and i.skill != skill,
                                          used[subject_use_key(i)], i.id))


def subject_use_key(item: QAItem) -> str:
    """The key under which `template_item`'s counter holds how often a subject seeded a new item."""
    return f"subject:{item.subject}"


def _item_edit_state(task: EditTask) -> EditTaskState:
    """An item edit's state without the new-item keys (`batch`, `aims`): round tasks of item edits were
    always stored without them, and the checkpoints of existing run folders hold them so."""
    state = task.payload()
    del state["batch"], state["aims"]
    return state


def tasks_from_plan(ctx: AgentContext, solved: Plan, round_: int) -> list[EditTaskState]:
    """The edit tasks of round `round_`'s plan, as the graph's state holds them: the item edits in the
    plan's order, then its new items option by option."""
    tasks = [_item_edit_state(EditTask(edit_id(round_, a.op, a.item_id), a.item_id, str(a.op), round_,
                                       target=a.to_bucket or ""))
             for a in solved.assignments]
    used: Counter[str] = Counter()
    pool = ctx.store.items(("kept", "edited")) if solved.new_items else []  # read once, not per new item
    new_items: list[EditTask] = []
    batches: list[tuple[list[EditTask], int]] = []  # each batched writer call's tasks and spare drafts
    for option in solved.new_items:
        target = option.cell if option.cell is not None else option.bucket or ""
        # a batched operation's new items for one target are drafted `expand_batch` to a writer call
        # (agents/expand_batches.py): a batch shares one template, the least used as a single draft's would be
        batched = operation(option.op).batched
        size = ctx.options.expand_batch if batched else 1
        for start in range(0, option.count, size):
            template = template_item(pool, option.cell, used)
            if template is None:
                continue
            used[template.id] += 1
            used[subject_use_key(template)] += 1
            members = range(start, min(start + size, option.count))
            spares = ctx.options.expand_spares if size > 1 else 0
            batch = []
            for k in members:
                slot = DraftSlot(f"r{round_}-{target}-{start}", k - start, len(members), spares)
                batch.append(EditTask(edit_id(round_, option.op, new_item_key(target, k)), template.id,
                                      str(option.op), round_, target=target,
                                      batch=str(slot) if slot.drafts > 1 else ""))
            new_items += batch
            if batched:
                batches.append((batch, spares))
    _deal_aims(ctx, batches)
    return tasks + [task.payload() for task in new_items]


def _deal_aims(ctx: AgentContext, batches: list[tuple[list[EditTask], int]]) -> None:
    """Give every batched draft of the round its difficulty bucket, dealt at once from the set's measured
    items (agents/difficulty_aims.py): each task carries its batch's aims. Nothing when the option is off."""
    if not ctx.options.expand_aims_difficulty or not batches:
        return
    drafts = sum(len(batch) + spares for batch, spares in batches)
    # the set as it stands: new items count (status "new"), though only kept and edited ones seed templates
    aims = iter(difficulty_aims(ctx.targets, ctx.store.items(), drafts))
    for batch, spares in batches:
        dealt = join_aims(list(islice(aims, len(batch) + spares)))
        for task in batch:
            task.aims = dealt
