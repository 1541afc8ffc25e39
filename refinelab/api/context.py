"""The one way to open a run context: the handles (store, ledger, cache, tracer, prompts) of a folder.

`refine`, `resume`, `profile`, `plan` and the evals all open their folder here, so a run, a profile and
a validator experiment are the same kind of folder: `store.sqlite`, `ledger.sqlite`, `trace.jsonl`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from refinelab.agents.context import AgentContext
from refinelab.agents.options import RunHooks, RunOptions
from refinelab.api.run_lock import RunLock
from refinelab.config import Settings, load_settings
from refinelab.errors import DataError
from refinelab.metrics.targets import Targets
from refinelab.prompts.loader import PromptLibrary
from refinelab.run_layout import LEDGER, STORE, TRACE
from refinelab.schema import QAItem
from refinelab.tools.cache import ResponseCache
from refinelab.tools.embeddings import use_model
from refinelab.tools.ledger import Ledger
from refinelab.tools.store import RunStore
from refinelab.tools.tracing import Tracer


def open_run_context(run_dir: str | Path, *, settings: Settings | None = None, budget: int | None = None,
                     targets: Targets | None = None, options: RunOptions | None = None,
                     hooks: RunHooks | None = None, prompts_dir: str | Path | None = None) -> AgentContext:
    """The handles of one run rooted at `run_dir` (created if missing). `budget` None = no cap (or, for
    an existing ledger, the cap it was created with)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    settings = settings or load_settings()
    use_model(settings.embeddings.model, settings.embeddings.allow_download)  # dedup, distractors, retrieval
    store = RunStore(run_dir / STORE)
    ledger = Ledger(run_dir / LEDGER, cap=budget, failure_limit=settings.max_consecutive_failures)
    cache = ResponseCache(settings.cache_path) if settings.use_cache else None
    tracer = Tracer(run_dir / TRACE)  # continues the tree a trace.jsonl already holds
    store.set_meta("trace_id", tracer.trace_id)
    return AgentContext(run_dir=run_dir, settings=settings, store=store, ledger=ledger, tracer=tracer,
                        targets=targets or Targets(), cache=cache,
                        prompts=PromptLibrary(str(prompts_dir) if prompts_dir else None),
                        options=options or RunOptions(), hooks=hooks or RunHooks())


def close_run_context(ctx: AgentContext) -> None:
    """Close the context's database handles. A process must not keep a run's SQLite files open once it is
    done with them: POSIX locks are per process, so any later plain read of the same file in this
    process (a folder check copying the store) would silently drop the locks those handles hold while
    another process resumes the run."""
    for handle in (ctx.store, ctx.ledger, ctx.cache, ctx.tracer):
        if handle is not None:
            handle.close()


@contextlib.contextmanager
def working_folder(run_dir: str | Path, input_items: Iterable[QAItem] | None = None,
                   **context: object) -> Iterator[AgentContext]:
    """`open_run_context` for the folders of `profile`, `screen` and `plan`, which a re-run continues:
    one process at a time (a second gets RunBusy naming the holder, as a run's `resume` does), the
    reservations a killed earlier process left in the ledger abandoned (charged at their reservation, as
    a resume charges them, and no longer holding budget), and every handle closed at the end. Without
    this a profile re-run with --budget after a killed one had those reservations held for good.

    `input_items`: the input the command measures. A folder that holds other input items is refused
    (DataError naming the folder and the first difference) before anything in it changes: its stored
    measurements are of items this input does not have (`RunStore.input_mismatch`)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir).acquire()
    try:
        ctx = open_run_context(run_dir, **context)  # type: ignore[arg-type]
        try:
            if input_items is not None and (why := ctx.store.input_mismatch(input_items)) is not None:
                raise DataError(str(run_dir), None, None, f"this folder measured other data ({why}); use "
                                "another folder (--out) or remove this one")
            ctx.ledger.abandon_in_flight()
            yield ctx
        finally:
            close_run_context(ctx)
    finally:
        lock.release()
