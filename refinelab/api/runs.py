"""The Python API: start a run, resume one, and get a result object back.

A run folder (`runs/RUN_ID/`) holds everything: settings.json, the run store, the ledger, the
LangGraph checkpoints, trace.jsonl and the outputs. `resume(run_id)` rebuilds the context from it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.types import Command
from pydantic import ValidationError

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.agents.screening import run_screening_model
from refinelab.agents.validation.tools import check_pack_tools
from refinelab.api import find_run
from refinelab.api.context import close_run_context, open_run_context
from refinelab.api.decontamination import (
    Contamination,
    apply_contamination,
    as_references,
    contamination_notice,
    find_contamination,
    restore_references,
)
from refinelab.api.results import SaveFormat, refined_items
from refinelab.api.results import save as save_results
from refinelab.api.results import to_hf as results_to_hf
from refinelab.api.run_checkpoints import checkpoint_serde
from refinelab.api.run_files import read_report
from refinelab.api.run_folders import RunFolder, check_new, claim_existing, claim_new, validate_run_id
from refinelab.api.run_seal import seal_settings
from refinelab.api.run_settings import saved_models, validate_budget
from refinelab.atomic import atomic_write_text
from refinelab.config import Settings, load_settings
from refinelab.errors import (
    ConfigError,
    DataError,
    EndpointUnavailable,
    validation_problems,
)
from refinelab.graph.build import build_graph
from refinelab.io import DatasetInput, as_dataset, require_items
from refinelab.metrics.targets import Targets, as_targets
from refinelab.prompts.loader import PromptLibrary, check_prompts
from refinelab.run_layout import CHECKPOINTS, REFINED, REPORT_JSON, SETTINGS
from refinelab.schema import Dataset
from refinelab.tools.corpus import corpus_sources, is_builtin_corpus, load_user_corpus

if TYPE_CHECKING:
    from datasets import Dataset as HFDataset

# Called with each stream event: {"mode": "updates" | "custom", "data": …, "spent": int, "used": int,
# "cap": int | None}; `used` adds the tokens replayed from the response cache, which count against the cap.
# (`refine`'s docstring says what `data` holds for each mode.)
ProgressCallback = Callable[[dict[str, Any]], None]


@dataclass
class RunResult:
    """A finished (or stopped) run: its folder, the headline figures of report.json, and ways to take the
    refined set out of it (`to_hf`, `save`, `items`)."""

    run_id: str
    run_dir: Path
    # not in the repr: a notebook cell ending in a result printed the whole report.json
    report: dict[str, Any] = field(default_factory=dict, repr=False)
    pending_review: int = 0  # decisions the run waits for (`refinelab review RUN_ID`); 0 = finished

    def __repr__(self) -> str:
        """One line a notebook shows for the result: which run, why it stopped, items in → out, tokens spent
        (`report` holds the rest)."""
        if self.paused:
            stop = f"paused for {self.pending_review} review decision(s)"
        else:
            stop = str(self.report.get("stop_reason") or "not finished")
        items = f"items {self.report.get('input_items', '?')}→{self.report.get('output_items', '?')}"
        return f"RunResult(run_id={self.run_id!r}, stop={stop!r}, {items}, spent {self.spent:,})"

    @property
    def paused(self) -> bool:
        """The run stopped at human review (`review="ask"`) and has no outputs yet."""
        return self.pending_review > 0

    @property
    def refined_path(self) -> Path:
        """refined.jsonl: the kept, edited and new items."""
        return self.run_dir / REFINED

    @property
    def spent(self) -> int:
        """Tokens the run spent (the ledger's total)."""
        return int(self.report.get("ledger", {}).get("spent", 0))

    def items(self) -> Dataset:
        """The refined set as our `Dataset` (validated row by row)."""
        return refined_items(self.run_dir)

    def to_hf(self) -> HFDataset:
        """The refined set as a Hugging Face `datasets.Dataset` (needs `refinelab[hf]`)."""
        return results_to_hf(self.run_dir)

    def save(self, path: str | Path, format: SaveFormat = "parquet", split: str = "test") -> Path:
        """Write the refined set (`parquet`, `jsonl`, or `hf` for `save_to_disk`) with a dataset card
        (README.md: before/after figures, operations, budget, models, lineage); see `api.results.save`."""
        return save_results(self.run_dir, path, format, split)

    def summary(self) -> RunSummary:
        """The run's headline figures, read from its report, as `refinelab refine` prints them."""
        return RunSummary.of(self)

    @classmethod
    def open(cls, run_dir: str | Path, *, runs_dir: str | Path | None = None) -> RunResult:
        """The result of an existing run (e.g. one `refinelab refine` wrote), for exporting it: its id in the
        runs folder (`runs_dir`, default the configured one) or a path to its folder. A missing run or a
        folder that is not a run is `RunNotFound` here, not a "resume it first" at the first `items()`."""
        run_dir = find_run(run_dir, runs_dir).path
        report = read_report(run_dir)
        return cls(run_id=str(report.get("run_id") or run_dir.name), run_dir=run_dir, report=report)


@dataclass(frozen=True)
class RunSummary:
    """A finished run's headline, read from its report.json in this one place: what `refinelab refine` and
    `resume` print, as lines (`lines()`) or as JSON (`as_dict()`), so the command line reads no report.
    A figure the report lacks is None."""

    run_id: str
    run_dir: Path
    stop_reason: str | None
    items_by_status: dict[str, int] | None
    new_items: int | None
    output_items: int | None
    spent: int | None  # tokens paid for
    cap: int | None
    # tokens replayed from the response cache: they count against the cap as paid ones do, and a re-run that
    # showed only the paid tokens looked as if it had left most of its budget unused
    replayed: int | None
    prompt_tokens: int | None
    cached_prompt_tokens: int | None  # of the prompt tokens, those the server read from its prompt cache
    # measuring the input, paid or replayed (a replayed profile takes its share of the budget as a paid one)
    profile_tokens: float
    coverage_jsd: tuple[float | None, float | None]  # before, after
    difficulty_jsd: tuple[float | None, float | None]
    decontamination: dict[str, Any] | None  # found, items, reference (api/decontamination.py)

    @classmethod
    def of(cls, result: RunResult) -> RunSummary:
        """The figures of `result.report` (report.json as the run wrote it)."""
        report = result.report
        ledger = report.get("ledger") or {}
        before, after = report.get("metrics_before") or {}, report.get("metrics_after") or {}
        profile = (((ledger.get("by_node") or {}).get("profile") or {}).get("tokens") or 0) + \
            ((ledger.get("replayed_by_node") or {}).get("profile") or 0)
        return cls(run_id=result.run_id, run_dir=result.run_dir, stop_reason=report.get("stop_reason"),
                   items_by_status=report.get("items_by_status"), new_items=report.get("new_items"),
                   output_items=report.get("output_items"), spent=ledger.get("spent"), cap=ledger.get("cap"),
                   replayed=ledger.get("replayed", 0), prompt_tokens=ledger.get("prompt_tokens"),
                   cached_prompt_tokens=ledger.get("cached_prompt_tokens", 0), profile_tokens=profile,
                   coverage_jsd=(before.get("coverage_jsd"), after.get("coverage_jsd")),
                   difficulty_jsd=(before.get("difficulty_jsd"), after.get("difficulty_jsd")),
                   decontamination=report.get("decontamination"))

    def profile_share(self) -> str:
        """" (profiling N, P%)": how much of what the run used measuring the input took (the rest went to
        edits); "" when nothing was."""
        used = (self.spent or 0) + (self.replayed or 0)
        profile = self.profile_tokens
        return f" (profiling {profile:,}, {profile / used:.0%})" if profile and used else ""

    def lines(self) -> list[str]:
        """The summary as the command line prints it, a line each."""
        replayed = f" + {self.replayed:,} replayed from the response cache" if self.replayed else ""
        lines = [f"run {self.run_id}: {self.stop_reason}; spent {_count(self.spent)}{replayed} "
                 f"of {_count(self.cap)} tokens{self.profile_share()}"]
        if cache := prompt_cache_line({"prompt_tokens": self.prompt_tokens,
                                       "cached_prompt_tokens": self.cached_prompt_tokens}):
            lines.append(cache)
        statuses = ", ".join(f"{k} {v}" for k, v in (self.items_by_status or {}).items())
        lines.append(f"items: {statuses}; new {self.new_items}; output {self.output_items}")
        if found := self.decontamination:
            lines.append(f"decontamination: {found['found']} of {found['items']} input items were found in "
                         f"{found['reference']} and removed (see changes.jsonl)")
        lines.append(f"coverage JSD {_jsd(self.coverage_jsd[0])} -> {_jsd(self.coverage_jsd[1])}; "
                     f"difficulty JSD {_jsd(self.difficulty_jsd[0])} -> {_jsd(self.difficulty_jsd[1])}")
        lines.append(f"report: {self.run_dir / REPORT_JSON}")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """The summary as `refinelab refine --json` prints it (its `result`)."""
        return {
            "run_id": self.run_id, "run_dir": str(self.run_dir), "stop_reason": self.stop_reason,
            "items_by_status": self.items_by_status, "new_items": self.new_items,
            "output_items": self.output_items, "spent": self.spent, "cap": self.cap, "replayed": self.replayed,
            "cached_prompt_tokens": self.cached_prompt_tokens, "coverage_jsd": list(self.coverage_jsd),
            "difficulty_jsd": list(self.difficulty_jsd),
            "decontaminated": (self.decontamination or {}).get("found"),
        }


def prompt_cache_line(ledger: Mapping[str, Any]) -> str:
    """"N of M prompt tokens (P%) were read from the server's prompt cache", or "" when the server said
    none were, from a ledger summary (a run's or a profile's). Charged in full all the same (Ledger.settle):
    on a hosted API that discounts cached input, this is the share billed at the lower price."""
    prompt, cached = ledger.get("prompt_tokens") or 0, ledger.get("cached_prompt_tokens") or 0
    if not (isinstance(prompt, int) and isinstance(cached, int) and prompt > 0 and cached > 0):
        return ""
    return f"{cached:,} of {prompt:,} prompt tokens ({cached / prompt:.0%}) were read from the server's prompt cache"


def _count(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def _jsd(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "n/a"


def _progress_events(on_event: ProgressCallback | None, name: str) -> Callable[[int, int], None] | None:
    """A `progress(done, total)` callback for work before the graph starts, sent as the graph's own
    progress events are (the CLI draws a bar for each name)."""
    if on_event is None:
        return None
    return lambda done, total: on_event({"mode": "custom", "data": {"progress": name, "done": done, "total": total},
                                         "spent": 0, "used": 0, "cap": None})


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def as_options(options: RunOptions | Mapping[str, Any] | None) -> RunOptions:
    """Run options from a `RunOptions` or a plain mapping of its fields. A misspelt or invalid option is one
    ConfigError line naming the field, as a misspelt setting is (`load_settings`): pydantic's own error is
    several lines ending in a link, and not a RefineLabError a caller's `except` expects."""
    if isinstance(options, RunOptions):
        return options
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"options: expected a RunOptions or a mapping of its fields, got {type(options).__name__}")
    try:
        return RunOptions.model_validate(dict(options or {}))
    except ValidationError as exc:
        raise ConfigError(f"invalid options: {validation_problems(exc)}") from None


def as_settings(settings: Settings | Mapping[str, Any] | None) -> Settings:
    """Settings from a `Settings`, or a mapping of fields to change in the configured settings
    (`load_settings(overrides=…)`: the file and REFINELAB_* environment still apply to the rest, so
    `{"runs_dir": "x"}` keeps the endpoint configured); None: the configured settings. A dict used to fail
    with an AttributeError deep inside the run. A run option in it (`{"rounds": 3}`) is a ConfigError
    saying it belongs in `options` now."""
    if isinstance(settings, Settings):
        return settings
    if settings is None:
        return load_settings()
    if not isinstance(settings, Mapping):
        raise ConfigError(f"settings: expected a Settings or a mapping of its fields, got {type(settings).__name__}")
    return load_settings(overrides=dict(settings))


def as_hooks(hooks: RunHooks | Mapping[str, Any] | None) -> RunHooks | None:
    """Hooks from a `RunHooks` or a mapping of its fields (`{"chat_models": {...}}`). A dict used to fail
    with an AttributeError deep inside the run; an unknown key is a ConfigError naming it and the fields."""
    if hooks is None or isinstance(hooks, RunHooks):
        return hooks
    if not isinstance(hooks, Mapping):
        raise ConfigError(f"hooks: expected a RunHooks or a mapping of its fields, got {type(hooks).__name__}")
    known = [f.name for f in fields(RunHooks)]
    unknown = sorted(str(k) for k in hooks if k not in known)
    if unknown:
        raise ConfigError(f"hooks: unknown field(s) {', '.join(unknown)}; RunHooks has {', '.join(known)}")
    return RunHooks(**hooks)


def checked_options(options: RunOptions | Mapping[str, Any] | None) -> RunOptions:
    """`as_options` for a new run, profile or plan, with the file the options name read now: a calibration
    (`screening_model`) that is missing or cannot score the run's panel fails before any folder is made,
    not after the profile's model calls (`agents/screening.run_screening_model`). Its path is made absolute
    (`~` expanded), as the run records it: a resume from another directory finds it."""
    options = as_options(options)
    if options.screening_model:
        resolved = str(Path(options.screening_model).expanduser().resolve())
        options = options.model_copy(update={"screening_model": resolved})
    run_screening_model(options)
    return options


@contextlib.contextmanager
def checkpointer(run_dir: Path) -> Iterator[Any]:
    """The run's checkpoint saver, its connection closed afterwards: a connection left open while another
    process (`refinelab review`, `resume`) writes and checkpoints the log can read a malformed image."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    conn = sqlite3.connect(str(run_dir / CHECKPOINTS), check_same_thread=False)
    # WAL + synchronous=NORMAL: every write still survives a killed process (what resume relies on);
    # FULL fsynced each task's writes, the largest cost of a cached re-run (see docs/performance.md).
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        yield SqliteSaver(conn, serde=checkpoint_serde())
    finally:
        conn.close()


def run_graph(ctx: AgentContext, run_id: str, first_input: dict[str, Any] | Command[Any] | None,
              on_event: ProgressCallback | None, thread_id: str | None = None) -> RunResult:
    """Run the refinement graph on an opened run context until it finishes or pauses, with its checkpoints
    in the run folder: from the start (`first_input` `{"run_id": …}`, `refine`), from the last checkpoint
    (None, `resume`) or with review decisions (`Command(resume=…)`, api/review.decide). `thread_id` is the
    checkpoint thread, the id the run was created with."""
    with checkpointer(ctx.run_dir) as saver:
        return _stream(build_graph(checkpointer=saver), ctx, run_id, first_input, on_event, thread_id)


def _stream(graph: Any, ctx: AgentContext, run_id: str, first_input: dict[str, Any] | Command[Any] | None,
            on_event: ProgressCallback | None, thread_id: str | None) -> RunResult:
    # LangGraph runs a step's parallel tasks (the edits fanned out to refine/validate) on a pool sized by
    # max_concurrency, by default min(32, cores + 4): 6 here, which left a 64-slot fleet mostly idle.
    roles = ctx.settings.roles
    slots = max(spec.total_concurrency() for spec in (roles.judge, roles.writer, roles.validator))
    config = {"configurable": {"thread_id": thread_id or run_id}, "recursion_limit": 10_000,
              "max_concurrency": max(slots, min(32, (os.cpu_count() or 1) + 4))}
    with ctx.tracer.span("refinelab.run", "chain", {"run_id": run_id, "resumed": first_input is None},
                         run_id=None) as root:
        # durability="sync": a step's checkpoint is on disk before the next step starts, so a kill never
        # re-runs a commit after later steps (measuring new items) already built on it.
        try:
            for mode, chunk in graph.stream(first_input, config, context=ctx, stream_mode=["updates", "custom"],
                                            durability="sync"):
                if on_event is not None:
                    spent = ctx.ledger.spent
                    on_event({"mode": mode, "data": chunk, "spent": spent, "used": spent + ctx.ledger.replayed,
                              "cap": ctx.ledger.cap})
        except EndpointUnavailable as exc:  # stopped, not finished: the checkpoint lets `resume` continue
            ctx.tracer.flush()
            raise exc.for_run(run_id, ctx.run_dir, ctx.store.status_counts(), ctx.ledger.spent) from None
        pending = len(graph.get_state(config).interrupts)  # paused at human review (graph/review.py)
        root.outputs = {"counts": ctx.store.status_counts(), "spent": ctx.ledger.spent, "pending_review": pending}
    ctx.tracer.flush()
    report_path = ctx.run_dir / REPORT_JSON
    report = json.loads(report_path.read_text()) if report_path.exists() and not pending else {}
    return RunResult(run_id=run_id, run_dir=ctx.run_dir, report=report, pending_review=pending)


def check_run_prompts(library: PromptLibrary, hooks: RunHooks | None) -> None:
    """The user's prompt folder, checked whenever a run folder is opened (start, resume, review, Studio):
    every template lints and renders, and every validator tool its packs name loads and takes an item's
    fields. Cheap: nothing is read beyond the pack files and the tools' modules."""
    check_prompts(library)
    check_pack_tools(library, (hooks or RunHooks()).validators)


def check_run_corpora(library: PromptLibrary, hooks: RunHooks | None, options: RunOptions) -> None:
    """Every user corpus a new run may retrieve from parses, before the run's folder exists (it was first
    read at the first retrieval, mid-run). Only when a run starts: a corpus can be large, and listing the
    reviews of a run, or a run from elsewhere, should not depend on it."""
    if hooks is not None and hooks.retriever is not None:
        return  # the hook is retrieval's only source
    corpora = [options.rag_corpus]
    if library.user_dir is not None:
        corpora += [library.pack(name).corpus for name in library.pack_names()]
    for corpus in dict.fromkeys(c for c in corpora if c):
        if str(corpus).startswith("wikipedia:"):
            try:
                corpus_sources(str(corpus))
            except ValueError as exc:
                raise ConfigError(f"corpus {exc}") from None
        elif not is_builtin_corpus(corpus):
            load_user_corpus(corpus)


def start_run_folder(dataset: Dataset, *, budget: int, targets: Targets | str | Path | Mapping[str, Any] | None,
                     settings: Settings | Mapping[str, Any] | None, run_id: str | None, options: RunOptions,
                     hooks: RunHooks | None, prompts_dir: str | None,
                     contamination: Contamination | None = None) -> tuple[RunFolder, AgentContext]:
    """Create and lock a new run folder with its sealed settings.json and the dataset in its store (less the
    items `contamination` found in a reference: api/decontamination.py); the context of the run (refine, and
    the Studio graph). Nothing is left behind when this fails."""
    settings = as_settings(settings)
    targets = as_targets(targets)
    run_id = validate_run_id(run_id) if run_id is not None else new_run_id()
    library = PromptLibrary(prompts_dir)  # one library for the checks: each pack file read once
    check_run_prompts(library, hooks)  # bad prompts, tools or corpora fail before the folder exists
    check_run_corpora(library, hooks, options)
    folder = claim_new(settings.runs_dir, run_id)  # inside runs_dir, locked, or RunExists/RunBusy
    run_dir = folder.path
    try:
        try:  # allow_nan=False: an `Infinity` written here would make the run impossible to resume
            saved = json.dumps({
                "settings": json.loads(settings.model_dump_json()), "budget": budget,
                "targets": targets.model_dump(), "prompts_dir": prompts_dir,
                "options": options.model_dump(mode="json"), "dataset": dataset.name,
                "decontaminate": contamination.sources if contamination else None,
            }, indent=2, default=str, allow_nan=False)
        except ValueError as exc:
            raise DataError(str(run_dir / SETTINGS), None, None,
                            f"cannot be written: a setting, target or option is not a finite number ({exc})") from None
        atomic_write_text(run_dir / SETTINGS, saved)
        seal_settings(run_dir)  # resume trusts settings.json only with this user's seal
        ctx = open_run_context(run_dir, settings=settings, budget=budget, targets=targets, options=options,
                               hooks=hooks, prompts_dir=prompts_dir)
        ctx.store.set_meta("run_id", run_id)
        ctx.store.load_items(dataset.items)
        ctx.store.add_rejected(dataset.rejected)
        if contamination:
            apply_contamination(ctx, contamination, dataset)
    except BaseException:
        folder.discard()  # nothing half-written: a run that never started leaves no folder behind
        raise
    return folder, ctx


def refine(
    data: DatasetInput,
    *,
    budget: int,
    targets: Targets | str | Path | Mapping[str, Any] | None = None,
    settings: Settings | Mapping[str, Any] | None = None,
    run_id: str | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    hooks: RunHooks | Mapping[str, Any] | None = None,
    prompts_dir: str | None = None,
    on_event: ProgressCallback | None = None,
    columns: Mapping[str, str | list[str]] | None = None,
    format: str | None = None,
    split: str | None = None,
    strict: bool = False,
    decontaminate: DatasetInput | Sequence[str | Path] | None = None,
    decontaminate_split: str | None = None,
) -> RunResult:
    """Refine `data` spending at most `budget` tokens; outputs go to `settings.runs_dir / run_id`.

    `data` is a path (JSONL, CSV, MMLU folder, ARC, Parquet, Arrow; `format` to force one; `split` to pick one
    split of a folder holding several), our `Dataset`, a Hugging
    Face `datasets.Dataset`, a pandas DataFrame or a list of dicts; `columns` maps our fields (question,
    choices, answer, id, subject, …) to its columns. Invalid rows are quarantined and listed in report.json
    (`strict=True`: the first one raises). Bad input raises `DataError` before any run folder exists.

    `decontaminate` is a reference set (a benchmark's test split; any input `data` takes), or several paths:
    the items of `data` found in one are removed before profiling, each with its match as evidence, and the
    planner refills their cells (api/decontamination.py); `decontaminate_split` picks a split of each.

    Args:
        budget: the token cap (prompt + completion, cache replays included); 0 is allowed (profile only).
        targets: the distributions to refine towards: a `Targets`, a target YAML file's path, or a mapping
            holding what such a file holds (`{"difficulty": {"weights": {"hard": 2, "medium": 1}}}`; `match`
            paths relative to the working folder). Default: uniform coverage and difficulty.
        settings: a `Settings`, or a mapping of the fields to change in the configured settings
            (`load_settings(overrides=...)`: the config file and REFINELAB_* environment still apply to the
            rest); default the configured settings. `settings.runs_dir` is where the run folder goes.
            Settings say where the models and folders are; what the run does (rounds, planner mode,
            attempts, seed …) is `options`.
        run_id: the run folder's name (1-128 letters, digits, '.', '_' or '-'); default a timestamp. An
            existing run of that name is refused.
        options: a `RunOptions` or a mapping of its fields (`{"rounds": 1, "pilot_per_op": 2, "review":
            "ask"}`); a misspelt or invalid one is a one-line ConfigError naming it.
        hooks: live objects to use instead of the configured ones (chat models, sandbox, retriever,
            validators): a `RunHooks` or a mapping of its fields. Never saved: pass them again to `resume`.
        prompts_dir: a folder of prompt templates and packs that override the packaged ones (checked before
            the run folder is made); recorded, so `resume` uses it too.
        on_event: called with each progress event, a dict `{"mode", "data", "spent", "used", "cap"}`:
            `mode` "updates" with `data` `{graph node: its state update}` after each graph step, or
            "custom" with `data` a node's message (`{"progress": name, "done": n, "total": m}` for a bar,
            `{"notice": text}`, …); `spent` the tokens paid for so far, `used` those plus the replays
            from the response cache (what counts against the cap), `cap` the budget (None before the
            graph starts). Exceptions it raises stop the run (resume continues it).

    Raises `DataError` (bad input), `ConfigError` (bad budget, options, settings, targets, hooks or run id),
    `EndpointUnavailable` (the model endpoint stopped answering: the run can be resumed)."""
    validate_budget(budget)
    options = checked_options(options)
    hooks = as_hooks(hooks)
    settings = as_settings(settings)
    targets = as_targets(targets)  # a bad target file fails before the data and references are read
    references = as_references(decontaminate, decontaminate_split)
    dataset = as_dataset(data, format=format, columns=columns, split=split,
                         on_invalid="error" if strict else "quarantine")
    require_items(dataset, "refine")  # before any folder exists, so bad input leaves nothing behind
    if run_id is not None:  # a clash is refused before the references are read and embedded (minutes)
        check_new(settings.runs_dir, validate_run_id(run_id))
    contamination = None
    if references:
        contamination = find_contamination(dataset, references, split=decontaminate_split,
                                           progress=_progress_events(on_event, "decontaminate"))
        if on_event is not None:
            on_event({"mode": "custom", "data": {"notice": contamination_notice(contamination.reports, dataset)}})
    folder, ctx = start_run_folder(dataset, budget=budget, targets=targets, settings=settings, run_id=run_id,
                                   options=options, hooks=hooks, prompts_dir=prompts_dir,
                                   contamination=contamination)
    run_id = folder.path.name
    try:
        return run_graph(ctx, run_id, {"run_id": run_id}, on_event)
    finally:
        close_run_context(ctx)
        folder.release()


def saved_context(folder: RunFolder, hooks: RunHooks | None, on_event: ProgressCallback | None = None, *,
                  references: bool = True) -> AgentContext:
    """The context of a claimed run folder, rebuilt from its sealed settings.json (resume, review), with the
    references it decontaminates against read again (`references=False`: a reader that writes no new item);
    those that cannot be are `on_event` notices and in report.json."""
    saved = folder.saved or {}
    # an older folder's run options saved among its settings are read as the options they are now
    settings, targets, options = saved_models(saved, folder.path)
    check_run_prompts(PromptLibrary(saved.get("prompts_dir")), hooks)
    ctx = open_run_context(folder.path, settings=settings, targets=targets, options=options, hooks=hooks,
                           prompts_dir=saved.get("prompts_dir"))
    if references:
        for notice in restore_references(ctx, saved.get("decontaminate") or []):
            if on_event is not None:
                on_event({"mode": "custom", "data": {"notice": notice}})
    return ctx


def claim_run(run: str | Path, runs_dir: str | Path | None, *, trust: bool = False,
              resuming: bool = False) -> RunFolder:
    """The run `run` names (an id in `runs_dir`, default the configured runs folder, or a path to its folder:
    `api.find_run`, the CLI's rule), checked read-only and locked (`claim_existing`). Every function that
    continues or reads a saved run (resume, review) opens it here: they defaulted to the literal `runs`, so
    `resume(result.run_id)` failed whenever the runs folder was configured, and refused a path."""
    where = find_run(run, runs_dir)
    return claim_existing(where.runs_dir, where.run_id, trust=trust, resuming=resuming)


def resume(
    run_id: str | Path,
    *,
    runs_dir: str | Path | None = None,
    hooks: RunHooks | Mapping[str, Any] | None = None,
    on_event: ProgressCallback | None = None,
    trust: bool = False,
) -> RunResult:
    """Continue a killed run from its last checkpoint; calls that finished are replayed from the cache.

    Args:
        run_id: the run's id (`result.run_id`) or a path to its folder (`result.run_dir`).
        runs_dir: where to look an id up; default the configured runs folder (settings `runs_dir`,
            REFINELAB_RUNS_DIR, else ./runs), where `refine` wrote it.
        hooks: the live objects the run was started with (`RunHooks` or a mapping of its fields): they are
            never saved, so a run started with scripted or local chat models needs them again.
        on_event: progress events, as `refine` sends them.
        trust: resume a run folder whose settings.json this user's RefineLab did not write (copied from
            another machine or user, or edited): it decides endpoints, keys, cache and prompts.

    Raises `RunNotFound` (no such run, or a folder that is not one), `DataError` (a damaged run folder),
    `UntrustedRun` (settings.json not sealed by this user, without `trust`), `RunBusy` (another process
    holds the run)."""
    hooks = as_hooks(hooks)
    folder = claim_run(run_id, runs_dir, trust=trust, resuming=True)  # read-only checks, then the lock
    try:
        ctx = saved_context(folder, hooks, on_event)
        try:
            ctx.ledger.abandon_in_flight()
            # The checkpoint thread is the id the run was created with (stored inside the folder), so a
            # renamed or copied folder resumes as itself.
            return run_graph(ctx, folder.path.name, None, on_event, thread_id=folder.identity)
        finally:
            close_run_context(ctx)
    finally:
        folder.release()
