"""Progress display fed from the graph stream: a rich bar per phase plus tokens spent of the budget.

`--quiet` shows nothing; `--json` prints one JSON object per event (for scripts and CI logs). When stdout
or stderr is not a terminal (piped to a file, `make demo 2>&1 | tee log`), rich's live bars would print
nothing until the end, so plain lines go to stderr instead: one per phase change and at most one every
`interval_s` seconds otherwise, each with the phase, done/total, tokens spent of the cap and the time.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

if TYPE_CHECKING:
    from refinelab.agents.options import RunHooks


def interactive() -> bool:
    """Both stdout and stderr are terminals: live bars can be drawn and will be seen."""
    return sys.stdout.isatty() and sys.stderr.isatty()


class PlainProgress:
    """Plain progress lines for logs: `[  42s] profile 12/30 · tokens 4100/15000`, throttled per phase."""

    def __init__(self, stream: IO[str] | None = None, interval_s: float = 10.0) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.last: dict[str, tuple[float, int]] = {}  # phase -> (time printed, done printed)

    def update(self, phase: str, done: int, total: int | None, spent: int | None = None,
               cap: int | None = None) -> None:
        """Print a line if the phase is new or finished, or `interval_s` passed since its last line."""
        now = time.monotonic()
        printed = self.last.get(phase)
        finished = total is not None and done >= total
        if printed is not None and printed[1] == done:
            return
        if printed is not None and not finished and now - printed[0] < self.interval_s:
            return
        self.last[phase] = (now, done)
        parts = [f"[{now - self.started:6.0f}s] {phase} {done}/{total if total is not None else '?'}"]
        if spent is not None:
            parts.append(f"tokens {spent}/{cap}" if cap else f"tokens {spent}")
        self.stream.write(" · ".join(parts) + "\n")
        self.stream.flush()


@contextmanager
def phase_progress(phase: str, total: int, quiet: bool = False,
                   console: Console | None = None) -> Iterator[Callable[[int, int], None] | None]:
    """Progress of a command that is one long phase (`profile`, `screen`): a rich bar on a terminal, plain
    throttled lines on stderr off one, nothing when `quiet`. Yields the `progress(done, total)` callback
    the library functions take, None when quiet."""
    if quiet:
        yield None
        return
    if not interactive():
        plain = PlainProgress()
        yield lambda done, total: plain.update(phase, done, total)
        return
    bar = Progress(TextColumn(phase), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console or Console(stderr=True))
    task = bar.add_task(phase, total=total)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


class ProgressView:
    """Context manager turning stream events into progress bars, plain lines or JSON lines."""

    def __init__(self, mode: str = "rich", plain: PlainProgress | None = None) -> None:
        if mode == "rich" and not interactive():
            mode = "plain"
        self.mode = mode  # rich | plain | json | quiet
        self.plain = plain or (PlainProgress() if mode == "plain" else None)
        self.progress: Progress | None = None
        self.tasks: dict[str, Any] = {}
        self.budget_task: Any = None

    def __enter__(self) -> ProgressView:
        if self.mode == "rich":
            self.progress = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("eta"), TimeRemainingColumn(), console=Console(stderr=True), transient=False,
            )
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event: dict[str, Any]) -> None:
        if self.mode == "quiet":
            return
        if self.mode == "json":
            sys.stdout.write(json.dumps(_jsonable(event), default=str) + "\n")
            sys.stdout.flush()
            return
        data = event.get("data")
        if event.get("mode") == "custom" and isinstance(data, dict) and "notice" in data:
            self._notice(str(data["notice"]))
            return
        if self.mode == "plain":
            self._plain(event)
            return
        assert self.progress is not None
        spent, cap = _used(event) or 0, event.get("cap")
        if cap:
            if self.budget_task is None:
                self.budget_task = self.progress.add_task("tokens", total=cap)
            self.progress.update(self.budget_task, completed=spent)
        data = event.get("data")
        if event.get("mode") == "custom" and isinstance(data, dict) and "progress" in data:
            name = data["progress"]
            if name not in self.tasks:
                self.tasks[name] = self.progress.add_task(name, total=data["total"])
            self.progress.update(self.tasks[name], completed=data["done"], total=data["total"])
        elif event.get("mode") == "updates" and isinstance(data, dict):
            for node, update in data.items():
                if node == "plan" and isinstance(update, dict):
                    tasks = update.get("tasks") or []
                    key = f"round {update.get('round')}"
                    self.tasks[key] = self.progress.add_task(f"edits {key}", total=max(1, len(tasks)))
                    self.tasks["_current"] = self.tasks[key]
                if isinstance(update, dict) and update.get("outcomes") and "_current" in self.tasks:
                    self.progress.advance(self.tasks["_current"], len(update["outcomes"]))


    def _notice(self, text: str) -> None:
        """Something the user should read before the run goes on (e.g. profiling taking most of the
        budget): printed once, above the bars or between the plain lines, never throttled."""
        if self.progress is not None:
            self.progress.console.print(Text.assemble(("note:", "yellow"), f" {text}"), highlight=False)
            return
        stream = self.plain.stream if self.plain is not None else sys.stderr
        stream.write(f"note: {text}\n")
        stream.flush()

    def _plain(self, event: dict[str, Any]) -> None:
        assert self.plain is not None
        spent, cap = _used(event), event.get("cap")
        data = event.get("data")
        if event.get("mode") == "custom" and isinstance(data, dict) and "progress" in data:
            self.plain.update(str(data["progress"]), int(data.get("done", 0)), data.get("total"), spent, cap)
        elif event.get("mode") == "updates" and isinstance(data, dict):
            for node, update in data.items():
                if node == "plan" and isinstance(update, dict):
                    key = f"edits round {update.get('round')}"
                    self.tasks["_current"] = key
                    self.tasks[key] = [0, max(1, len(update.get("tasks") or []))]
                    self.plain.update(key, 0, self.tasks[key][1], spent, cap)
                elif isinstance(update, dict) and update.get("outcomes") and "_current" in self.tasks:
                    key = self.tasks["_current"]
                    self.tasks[key][0] += len(update["outcomes"])
                    self.plain.update(key, self.tasks[key][0], self.tasks[key][1], spent, cap)
                else:
                    self.plain.update(str(node), 1, 1, spent, cap)


def _used(event: dict[str, Any]) -> int | None:
    """Tokens used of the cap: spent live plus replayed from the response cache (which count against it).
    A re-run that showed only the live tokens read "1340/40000" with 30,000 already replayed."""
    return event.get("used", event.get("spent"))


def _jsonable(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    if event.get("mode") == "updates" and isinstance(data, dict):
        data = {node: (sorted(update) if isinstance(update, dict) else str(update)) for node, update in data.items()}
    return {"mode": event.get("mode"), "data": data, "spent": event.get("spent"), "used": event.get("used"),
            "cap": event.get("cap")}


def stderr_progress(what: str, stream: IO[str] | None = None) -> Callable[[int, int], None]:
    """A progress line on stderr for a long build (a retrieval corpus's index): redrawn in place on a
    terminal, else one line per 10% (logs stay short). Elapsed time and a linear estimate of what is left are
    shown. The CLI's, passed as `RunHooks.index_progress` (`cli_hooks`): library code only logs a build."""
    out = stream if stream is not None else sys.stderr
    started = time.monotonic()
    shown = [-1]

    def report(done: int, total: int) -> None:
        share = done / total if total else 1.0
        elapsed = time.monotonic() - started
        left = elapsed * (1 - share) / share if share > 0 else 0.0
        line = f"{what}: {done}/{total} ({share:.0%}, {elapsed:.0f} s, ~{left:.0f} s left)"
        if out.isatty():
            out.write("\r" + line + ("\n" if done >= total else ""))
        elif int(share * 10) > shown[0] or done >= total:
            shown[0] = int(share * 10)
            out.write(line + "\n")
        out.flush()

    return report


def cli_hooks() -> RunHooks:
    """The hooks every CLI command that may build a corpus index passes: the build's progress on stderr
    (`stderr_progress`), where a terminal user waiting minutes for it looks. Imported when a command runs."""
    from refinelab.agents.options import RunHooks

    return RunHooks(index_progress=stderr_progress)
