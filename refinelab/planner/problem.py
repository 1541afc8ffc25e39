"""The planning instance: items with their candidate edits, new-item options, targets, weights, budget.

A `Problem` is everything the optimiser needs and nothing else (no text, no model handles), so a new
budget or target re-plans without touching the dataset. `build_problem` makes one from plain per-item
profile data and the operation catalogue.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from refinelab.operations import NEW_ITEM_OPS, REGISTRY, Op
from refinelab.planner.catalogue import Catalogue
from refinelab.schema import Cell


class CandidateOp(BaseModel):
    """One edit the planner may buy for one existing item, with its expected effects."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Op
    cost: float = Field(ge=0.0)  # tokens per attempt
    success: float = Field(ge=0.0, le=1.0)
    errors_fixed: float = Field(0.0, ge=0.0)  # expected errors removed: p_error * success
    distractor_gain: float = Field(0.0, ge=0.0)  # expected rise of the item's distractor score
    to_bucket: str | None = None  # calibrate: the bucket the item moves to on success

    @model_validator(mode="after")
    def _calibrate_has_target(self) -> CandidateOp:
        spec = REGISTRY[self.op]
        if spec.moves_bucket and not self.to_bucket:
            raise ValueError(f"a {self.op} candidate needs to_bucket")
        if spec.creates_item:
            raise ValueError(f"{self.op} writes a new item; use NewItemOption")
        return self

    @property
    def leaves(self) -> bool:
        """Whether success takes the item out of its cell and bucket."""
        return REGISTRY[self.op].removes_item


class Item(BaseModel):
    """An existing item as the planner sees it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    cell: str
    bucket: str
    p_error: float = Field(0.0, ge=0.0, le=1.0)
    distractor_score: float = Field(1.0, ge=0.0, le=1.0)
    length: float = Field(100.0, ge=0.0)  # tokens
    defect: bool = False  # a duplicate or an error a fix could not repair: removable without allow_shrink
    # False when the options refer to each other ("A and D", "all of the above"): the refiner refuses to
    # replace such distractors, so offering the rewrite would only spend a planned edit on a refusal
    distractors_replaceable: bool = True
    # True when the panel doubts the key but favours no other option clearly: the refiner's fix abstains
    # before any model call (agents/key_correction.py) and sends the item to review with the panel's
    # numbers, so the fix is priced at what it costs, 0 tokens, and reserves no budget a real edit could use
    fix_abstains: bool = False
    candidates: list[CandidateOp] = Field(default_factory=list)


class NewItemOption(BaseModel):
    """Writing new items aimed at a cell (expand) or a bucket (generate), or both; bought in integer units.

    An option whose `cell` is None adds nothing to any cell count (the writer's choice of cell is not
    modelled), and likewise for `bucket`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    op: Op
    cell: str | None = None
    bucket: str | None = None
    cost: float = Field(gt=0.0)  # tokens per attempt
    success: float = Field(ge=0.0, le=1.0)
    max_count: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _targets_something(self) -> NewItemOption:
        if self.cell is None and self.bucket is None:
            raise ValueError("a new-item option needs a cell or a bucket")
        return self

    @property
    def key(self) -> str:
        return f"{self.op.value}:{self.cell or '*'}:{self.bucket or '*'}"


class Weights(BaseModel):
    """Objective weights. Units: coverage/difficulty per item of absolute deviation from target count,
    errors per expected error removed, distractors per unit of distractor-score gain on one item."""

    model_config = ConfigDict(extra="forbid")

    coverage: float = Field(1.0, ge=0.0)
    difficulty: float = Field(1.0, ge=0.0)
    errors: float = Field(1.0, ge=0.0)
    distractors: float = Field(1.0, ge=0.0)
    # The price of deleting data, per expected removal: a removal must buy more than this (an error gone,
    # a deviation cut) to be chosen, so a fix wins over a removal whenever it can be paid for.
    removal: float = Field(0.5, ge=0.0)


def _normalise(shares: Mapping[str, float]) -> dict[str, float]:
    if any(v < 0 for v in shares.values()):
        raise ValueError("target shares must be non-negative")
    total = sum(shares.values())
    if shares and total <= 0:
        raise ValueError("target shares sum to zero")
    return {k: v / total for k, v in shares.items()} if shares else {}


class PlanTargets(BaseModel):
    """The user's `Targets` as the planner uses them: shares per coverage cell key (`Cell.key`) and per
    difficulty bucket (normalised to sum 1), plus the fixed size N.

    `total` is the fixed dataset size N the shares are multiplied by (deviation |n[g] - t[g]*N|); it
    defaults to the current number of items, i.e. "same size, better spread". Fixing N keeps the
    deviation linear (a share of a variable total would not be).
    """

    model_config = ConfigDict(extra="forbid")

    coverage: dict[str, float] = Field(default_factory=dict)
    difficulty: dict[str, float] = Field(default_factory=dict)
    total: int | None = Field(None, ge=0)

    @field_validator("coverage", "difficulty")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        return _normalise(value)


def targets_from_resolved(resolved: Any, total: int | None = None) -> tuple[PlanTargets, DifficultyBuckets]:
    """Planner targets and buckets from `refinelab.metrics.targets.Targets` (the resolved target file:
    `coverage` as domain -> skill -> share, `difficulty` as bucket -> share, `buckets`, `thresholds`).

    Duck-typed so this module does not import the target-file machinery.
    """
    coverage = {Cell.of(d, s).key: p for d, row in (getattr(resolved, "coverage", None) or {}).items()
                for s, p in row.items()}
    difficulty = dict(getattr(resolved, "difficulty", None) or {})
    names = list(getattr(resolved, "buckets", None) or ["easy", "medium", "hard"])
    edges = list(getattr(resolved, "thresholds", None) or [1 / 3, 2 / 3])
    return PlanTargets(coverage=coverage, difficulty=difficulty, total=total), DifficultyBuckets(names=names, edges=edges)


class Problem(BaseModel):
    """One planning instance."""

    model_config = ConfigDict(extra="forbid")

    items: list[Item] = Field(default_factory=list)
    new_options: list[NewItemOption] = Field(default_factory=list)
    targets: PlanTargets = Field(default_factory=PlanTargets)
    weights: Weights = Field(default_factory=Weights)
    budget: float = Field(ge=0.0)  # tokens left to spend
    buckets: list[str] = Field(default_factory=list)  # difficulty buckets, easiest first
    # The size floor: the plan removes at most len(items) - min_size items (counted as certain, new items
    # not counted), so the refined set keeps at least this many. None: no floor.
    min_size: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _unique_ids(self) -> Problem:
        ids = [item.id for item in self.items]
        if len(set(ids)) != len(ids):
            raise ValueError("item ids must be unique")
        return self

    @property
    def target_total(self) -> int:
        return self.targets.total if self.targets.total is not None else len(self.items)

    @property
    def max_removals(self) -> int | None:
        """How many removals the size floor allows (None: no floor)."""
        return None if self.min_size is None else max(0, len(self.items) - self.min_size)

    def cells(self) -> list[str]:
        """Every coverage cell that appears in items, targets or options (sorted, stable)."""
        found = {i.cell for i in self.items} | set(self.targets.coverage)
        found |= {o.cell for o in self.new_options if o.cell is not None}
        return sorted(found)

    def bucket_names(self) -> list[str]:
        found = {i.bucket for i in self.items} | set(self.targets.difficulty)
        found |= {o.bucket for o in self.new_options if o.bucket is not None}
        found |= {c.to_bucket for i in self.items for c in i.candidates if c.to_bucket}
        ordered = [b for b in self.buckets if b in found]
        return ordered + sorted(found - set(ordered))


# ---------------------------------------------------------------------------------------------------
# Building a problem from plain profile data


class DifficultyBuckets(BaseModel):
    """Maps a difficulty score in [0, 1] (1 = hardest) to a named bucket by ascending edges."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=lambda: ["easy", "medium", "hard"])
    edges: list[float] = Field(default_factory=lambda: [1 / 3, 2 / 3])

    @model_validator(mode="after")
    def _consistent(self) -> DifficultyBuckets:
        if len(self.edges) != len(self.names) - 1 or sorted(self.edges) != self.edges:
            raise ValueError("need len(names) - 1 ascending edges")
        return self

    def bucket(self, score: float) -> str:
        for name, edge in zip(self.names, self.edges, strict=False):
            if score < edge:
                return name
        return self.names[-1]


class ItemProfile(BaseModel):
    """Per-item profile data as the profiler persists it (all scores in [0, 1]).

    Give `cell` or `domain`/`skill`; `bucket` or `difficulty`; `length_tokens` or `length_chars`
    (converted at 4 characters per token).
    """

    model_config = ConfigDict(extra="ignore")

    id: str
    domain: str = ""
    skill: str = ""
    cell: str | None = None
    difficulty: float | None = Field(None, ge=0.0, le=1.0)
    bucket: str | None = None
    p_error: float = Field(0.0, ge=0.0, le=1.0)
    distractor_score: float = Field(1.0, ge=0.0, le=1.0)
    length_tokens: float | None = Field(None, ge=0.0)
    length_chars: float | None = Field(None, ge=0.0)
    defect: bool = False  # a duplicate or a failed fix (see Item.defect)
    distractors_replaceable: bool = True  # see Item.distractors_replaceable
    fix_abstains: bool = False  # see Item.fix_abstains

    def resolved_cell(self) -> str:
        return self.cell or _cell_key(self.domain, self.skill)

    def resolved_length(self) -> float:
        if self.length_tokens is not None:
            return self.length_tokens
        if self.length_chars is not None:
            return self.length_chars / 4.0
        return 100.0


@functools.lru_cache(maxsize=4096)
def _cell_key(domain: str, skill: str) -> str:
    """A dataset has few distinct cells: spelling each once saves ~1 s CPU at 100k items."""
    return Cell.of(domain, skill).key


_set_attr = object.__setattr__


def _trusted(cls: type[BaseModel], fields: frozenset[str], values: dict[str, Any]) -> Any:
    """An instance of `cls` from values computed here from validated inputs, every field given.

    What `model_construct` does for such a call (no validators, no extras, no private attributes,
    nothing to default), without its per-field alias and default lookups: at 100k items those lookups
    were most of the Problem build (tests/planner/test_planner_problem.py checks the two agree).
    """
    obj = cls.__new__(cls)
    _set_attr(obj, "__dict__", values)
    _set_attr(obj, "__pydantic_fields_set__", set(fields))
    _set_attr(obj, "__pydantic_extra__", None)
    _set_attr(obj, "__pydantic_private__", None)
    return obj


_CANDIDATE_FIELDS = frozenset(CandidateOp.model_fields)
_ITEM_FIELDS = frozenset(Item.model_fields)


def _candidate(op: Op, cost: float, success: float, errors_fixed: float, distractor_gain: float,
               to_bucket: str | None) -> CandidateOp:
    return _trusted(CandidateOp, _CANDIDATE_FIELDS, {  # type: ignore[no-any-return]
        "op": op, "cost": cost, "success": success, "errors_fixed": errors_fixed,
        "distractor_gain": distractor_gain, "to_bucket": to_bucket})


class _CandidateMaker:
    """Applies the applicability rules with the catalogue's numbers looked up once, not per item.

    The rules are each operation's own (which items it may be bought for, and what it is expected to
    change), so they are written here one operation at a time rather than read from registry flags.

    Candidates are built without re-validation (`_trusted`): every field is computed here from
    validated inputs, and skipping it makes building 100k items several times faster.
    """

    def __init__(self, catalogue: Catalogue, buckets: Sequence[str]) -> None:
        self.policy = catalogue.applicability
        self.buckets = list(buckets)
        self.specs = {op: (catalogue.spec(op).cost, catalogue.success(op))
                      for op in Op if catalogue.enabled(op)}

    def __call__(self, item: Item) -> list[CandidateOp]:
        policy, specs, make = self.policy, self.specs, _candidate
        out: list[CandidateOp] = []
        length = item.length
        if Op.REMOVE in specs and (policy.allow_shrink or item.defect or (
                item.p_error > 0 and item.p_error >= policy.remove_min_p_error)):
            cost, s = specs[Op.REMOVE]
            out.append(make(op=Op.REMOVE, cost=cost.tokens(length), success=s, errors_fixed=item.p_error * s,
                            distractor_gain=0.0, to_bucket=None))
        if Op.FIX in specs and item.p_error >= policy.fix_min_p_error and item.p_error > 0:
            cost, s = specs[Op.FIX]
            out.append(make(op=Op.FIX, cost=0.0 if item.fix_abstains else cost.tokens(length), success=s,
                            errors_fixed=item.p_error * s, distractor_gain=0.0, to_bucket=None))
        after = policy.distractor_score_after_rewrite
        if (Op.REWRITE_DISTRACTORS in specs and item.distractors_replaceable
                and item.distractor_score <= policy.rewrite_max_distractor_score and after > item.distractor_score):
            cost, s = specs[Op.REWRITE_DISTRACTORS]
            out.append(make(op=Op.REWRITE_DISTRACTORS, cost=cost.tokens(length), success=s, errors_fixed=0.0,
                            distractor_gain=s * (after - item.distractor_score), to_bucket=None))
        if Op.CALIBRATE in specs and item.bucket in self.buckets:
            here = self.buckets.index(item.bucket)
            cost, s = specs[Op.CALIBRATE]
            tokens = cost.tokens(length)
            for other, name in enumerate(self.buckets):
                if other != here and abs(other - here) <= policy.calibrate_max_steps:
                    out.append(make(op=Op.CALIBRATE, cost=tokens, success=s, errors_fixed=0.0,
                                    distractor_gain=0.0, to_bucket=name))
        return out


def with_default_shares(targets: PlanTargets, cells: Iterable[str], buckets: Sequence[str]) -> PlanTargets:
    """`targets` with uniform shares where the target file names none: over `cells` (the cell keys of the
    items present) for coverage, over every bucket for difficulty. What a run without targets steers
    toward; the planner and the measurement of new items (agents/validation/measured.py) both read it."""
    if not targets.coverage:
        present = sorted(set(cells))
        targets = targets.model_copy(update={"coverage": {c: 1.0 / len(present) for c in present}})
    if not targets.difficulty:
        targets = targets.model_copy(update={"difficulty": {b: 1.0 / len(buckets) for b in buckets}})
    return targets


def attempts_per_round(share: float, total: int, present: int) -> int:
    """How many new items one round may try to write for a cell or bucket: as many as it lacks
    (`share·total − present`, rounded up). At an honest success rate of 0.1 the expected-value plan
    would otherwise buy ten attempts per missing item in one round, while a writer that cannot reach a
    target fails all of them alike (a 1.5B's "hard" items all measured easy); a later round, priced by
    what that target has shown (`target_success`), decides whether to try again."""
    return max(0, math.ceil(share * total - present - 1e-9))


TARGET_PRIOR_WEIGHT = 2.0  # the operation-wide success rate counts as this many edits of a target's own


def target_success(op_success: float, outcomes: tuple[int, int] | None) -> float:
    """The success of a new item aimed at one target (an expand's cell, a generate's bucket): the
    operation's rate as a prior worth `TARGET_PRIOR_WEIGHT` edits, updated by the (committed, finished)
    edits written for that target (a Beta posterior mean)."""
    if not outcomes:
        return op_success
    passed, trials = outcomes
    return (op_success * TARGET_PRIOR_WEIGHT + passed) / (TARGET_PRIOR_WEIGHT + trials)


def build_problem(
    profiles: Iterable[ItemProfile | Mapping[str, Any]],
    budget: float,
    targets: PlanTargets | None = None,
    catalogue: Catalogue | None = None,
    weights: Weights | None = None,
    buckets: DifficultyBuckets | None = None,
    min_size: int | None = None,
    cell_outcomes: Mapping[str, tuple[int, int]] | None = None,
    bucket_outcomes: Mapping[str, tuple[int, int]] | None = None,
) -> Problem:
    """A `Problem` from per-item profiles: candidate edits from the catalogue, new-item options for every
    target cell (expand) and bucket (generate) priced at the dataset's mean item length.

    Missing targets default to uniform shares over the cells present and over all buckets. `min_size` is
    the size floor (see `Problem.min_size`). `cell_outcomes` maps a cell key to (committed, finished) expand
    edits written for it so far: an expand into a cell is only as likely to land as that cell has shown
    (`target_success`), since whether a new item is measured into its cell depends on the cell (a labeller
    may never name some skill at all). `bucket_outcomes` does the same for generate per bucket: a small
    writer's "hard" item is rarely hard for the panel.
    """
    with gc_paused():
        problem = _build_problem(profiles, budget, targets, catalogue, weights, buckets, cell_outcomes or {},
                                 bucket_outcomes or {})
    problem.min_size = min_size
    return problem


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Building or planning 100k items allocates millions of small objects while all of them stay alive;
    the cyclic GC would rescan them again and again (seconds at that size) and frees nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _build_problem(profiles: Iterable[ItemProfile | Mapping[str, Any]], budget: float, targets: PlanTargets | None,
                   catalogue: Catalogue | None, weights: Weights | None,
                   buckets: DifficultyBuckets | None, cell_outcomes: Mapping[str, tuple[int, int]],
                   bucket_outcomes: Mapping[str, tuple[int, int]]) -> Problem:
    catalogue = catalogue or Catalogue()
    buckets = buckets or DifficultyBuckets()
    rows = [p if isinstance(p, ItemProfile) else ItemProfile.model_validate(p) for p in profiles]
    make_candidates = _CandidateMaker(catalogue, buckets.names)
    items: list[Item] = []
    for row in rows:
        if row.bucket is not None:
            bucket = row.bucket
        elif row.difficulty is not None:
            bucket = buckets.bucket(row.difficulty)
        else:
            bucket = buckets.names[len(buckets.names) // 2]
        item = _trusted(Item, _ITEM_FIELDS, {"id": row.id, "cell": row.resolved_cell(), "bucket": bucket,
                                             "p_error": row.p_error, "distractor_score": row.distractor_score,
                                             "length": row.resolved_length(), "defect": row.defect,
                                             "distractors_replaceable": row.distractors_replaceable,
                                             "fix_abstains": row.fix_abstains,
                                             "candidates": []})
        item.candidates = make_candidates(item)
        items.append(item)

    targets = with_default_shares(targets or PlanTargets(), (i.cell for i in items), buckets.names)

    mean_length = sum(i.length for i in items) / len(items) if items else 100.0
    total = targets.total if targets.total is not None else len(items)
    in_cell, in_bucket = Counter(i.cell for i in items), Counter(i.bucket for i in items)
    options: list[NewItemOption] = []
    for op in NEW_ITEM_OPS:  # one option per target group the operation writes into (its `target`)
        if not catalogue.enabled(op):
            continue
        cost, s = catalogue.cost(op, mean_length), catalogue.success(op)
        by_cell = REGISTRY[op].target == "cell"
        shares, present, seen = ((targets.coverage, in_cell, cell_outcomes) if by_cell
                                 else (targets.difficulty, in_bucket, bucket_outcomes))
        options += [NewItemOption(op=op, cell=g if by_cell else None, bucket=None if by_cell else g,
                                  cost=max(cost, 1.0), success=target_success(s, seen.get(g)),
                                  max_count=attempts_per_round(share, total, present[g]))
                    for g, share in sorted(shares.items()) if share > 0]
    ordered = list(buckets.names) + sorted(set(targets.difficulty) - set(buckets.names))
    return Problem(items=items, new_options=options, targets=targets, weights=weights or Weights(),
                   budget=max(0.0, float(budget)), buckets=ordered)
