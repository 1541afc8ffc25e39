"""The arguments every dataset command takes, typed and documented once.

Commands annotate with these (`data: arg.Data`, `subjects: arg.Subjects = None`); typer copies each
Option per command, so one spelling serves refine, plan, profile and screen.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from refinelab.operations import OPERATION_NAMES

COLUMNS_HELP = ("CSV/JSONL/Parquet column mapping, e.g. question=Q,choices=A,B,C,D,answer=Key (also id, subject, "
                "domain, skill); a headered CSV without it has its columns guessed")
ENDPOINT_HELP = "'embedded' or an OpenAI-compatible URL for every role; ROLE=URL for one (repeatable)"
MODEL_HELP = "model name for every role; ROLE=NAME (judge, writer, validator) for one (repeatable)"
KEY_HELP = "environment variable holding the API key, for every role or ROLE=VAR (repeatable)"

Data = Annotated[Path, typer.Argument(help="dataset file or folder")]
Subjects = Annotated[str | None, typer.Option(help="comma-separated subjects to keep")]
Limit = Annotated[int | None, typer.Option(min=1, help="at most this many items, spread over subjects")]
Format = Annotated[str | None, typer.Option(help="jsonl | mmlu | arc | parquet | arrow | csv")]
Split = Annotated[str | None, typer.Option(help="one split of a folder holding several: its sub-folder of that name "
                                                "(a DatasetDict's save_to_disk, MMLU's dev/val/test) or its files "
                                                "named for it (test.jsonl, test-00000-of-00002.parquet)")]
Columns = Annotated[str | None, typer.Option(help=COLUMNS_HELP)]
Endpoint = Annotated[list[str] | None, typer.Option(help=ENDPOINT_HELP)]
Model = Annotated[list[str] | None, typer.Option(help=MODEL_HELP)]
ApiKeyEnv = Annotated[list[str] | None, typer.Option(help=KEY_HELP)]
Config = Annotated[Path | None, typer.Option(help="settings YAML")]
Prompts = Annotated[Path | None, typer.Option(help="folder overriding prompts / packs")]
Shots = Annotated[int | None, typer.Option(help="solved examples each panel probe shows first: the first N items "
                                                "of the item's subject, answered by their keys (default 0: none)")]
SkillMethod = Annotated[str | None, typer.Option(help="model (the judge's constrained label; the default) | exemplars "
                                                      "(nearest skill examples, no model call, weaker labels) | probs "
                                                      "(the judge's calibrated skill probabilities)")]
Operations = Annotated[str | None, typer.Option(
    metavar="OPS", help=f"comma-separated operations the planner may buy (default: all of {', '.join(OPERATION_NAMES)})")]
RunsDir = Annotated[Path | None, typer.Option(help="where run folders are (default: the configured runs_dir, "
                                                    "REFINELAB_RUNS_DIR, else ./runs)")]
Options = Annotated[Path | None, typer.Option(
    "--options", metavar="FILE", help="a YAML or JSON file of run options (any field of RunOptions: panel, "
                                      "panel_orders, difficulty_method, fix_min_p_error, …; docs/configuration.md); "
                                      "flags given beside it win")]
Panel = Annotated[str | None, typer.Option(help="comma-separated panel members that answer every item by option "
                                                "probabilities (embedded names, 'judge', MODEL@URL, rag:NAME, "
                                                "cloze:NAME); screening, IRT difficulty and a fix's evidence")]
Calibration = Annotated[Path | None, typer.Option(
    metavar="FILE", help="a calibration.json from `refinelab screen --calibrate`: its fitted combiner scores the "
                         "panel's evidence (RunOptions.screening_model)")]
Decontaminate = Annotated[list[Path] | None, typer.Option(
    metavar="PATH", help="a reference set (a benchmark's test split; repeat for several): items of DATA found in it "
                         "(exact, same question or near-duplicate, as `data overlap` finds them) are removed before "
                         "profiling and their cells refilled")]
DecontaminateSplit = Annotated[str | None, typer.Option(
    help="the split of each --decontaminate folder to use when it holds several")]
