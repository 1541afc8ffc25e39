"""The public Python API: profile, screen, plan (dry run), refine, resume, report, export, open_run, list_runs.

Every function opens its folder through `refinelab.api.context.open_run_context`; the CLI is a thin layer
that parses arguments and calls these.

The names load on first use (`refinelab.lazy_exports`), as `refinelab`'s own do: importing one light
submodule (the CLI's `refinelab.api.run_folders`, for its lock error) runs this file first, and importing
`runs` here would pull in LangGraph, LangChain and the model client, ~2.5 s, before `refinelab --help` or
a one-line input error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from refinelab.lazy_exports import lazy_exports

_EXPORTS = {
    "plan": "refinelab.api.planning",
    "profile": "refinelab.api.profiling", "ProfileResult": "refinelab.api.profiling",
    "list_runs": "refinelab.api.run_list", "RunEntry": "refinelab.api.run_list",
    "refine": "refinelab.api.runs", "resume": "refinelab.api.runs", "RunResult": "refinelab.api.runs",
    "screen": "refinelab.api.screening", "ScreenResult": "refinelab.api.screening",
}

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time the names load lazily (below)
    from refinelab.api.planning import plan
    from refinelab.api.profiling import ProfileResult, profile
    from refinelab.api.run_list import RunEntry, list_runs
    from refinelab.api.runs import RunResult, refine, resume
    from refinelab.api.screening import ScreenResult, screen


def open_run(run_dir: str | Path) -> RunResult:
    """An existing run folder as a `RunResult` (to export it: `.to_hf()`, `.save(path, format=…)`)."""
    from refinelab.api.runs import RunResult

    return RunResult.open(run_dir)


def report(run_dir: str | Path, output: str | Path | None = None) -> Path:
    """Write the run's `report.html` (or `output`): distributions before/after, budget, edits, leftovers."""
    from refinelab.api.report_html import build_report  # matplotlib loads only when a report is made

    return build_report(run_dir, output)


def export(run_dir: str | Path, lm_eval_dir: str | Path, task_name: str | None = None,
           choice_format: Literal["letters", "text"] = "letters") -> Path:
    """Write the refined set as an lm-eval-harness task (YAML + JSONL) into `lm_eval_dir`; the YAML path."""
    from refinelab.api.export_lmeval import export_lm_eval

    return export_lm_eval(run_dir, lm_eval_dir, task_name, choice_format)


__all__ = ["ProfileResult", "RunEntry", "RunResult", "ScreenResult", "export", "list_runs", "open_run", "plan",
           "profile", "refine", "report", "resume", "screen"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, __all__)
