"""`refinelab data overlap`: which items of DATA a REFERENCE already holds; the work is `refinelab.api.overlap`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from refinelab.cli import arguments as arg
from refinelab.cli.common import console, fail, out, safe_text
from refinelab.cli.progress import phase_progress
from refinelab.errors import RefineLabError


def overlap_command(
    data: arg.Data,
    reference: Annotated[Path | None, typer.Argument(help="the dataset to look in (a training set, another "
                                                         "split); without it, DATA's items repeating its own")] = None,
    split: arg.Split = None,
    reference_split: Annotated[str | None, typer.Option(help="--split for REFERENCE")] = None,
    columns: arg.Columns = None,
    threshold: Annotated[float | None, typer.Option(help="similarity from which two items are near-duplicates "
                                                         "(default 0.92 cosine; 0.8 Jaccard with --lexical)")] = None,
    lexical: Annotated[bool, typer.Option("--lexical", help="word overlap instead of MiniLM embeddings "
                                                            "(no model; misses paraphrases; MMLU test "
                                                            "against itself in about 20 s)")] = False,
    any_options: Annotated[bool, typer.Option("--any-options", help="a near match need not share half its "
                                                                    "options (finds items on one passage or "
                                                                    "template)")] = False,
    out_file: Annotated[Path | None, typer.Option("--out", help="write every match as JSON lines here")] = None,
    unmatched_file: Annotated[Path | None, typer.Option(
        "--write-unmatched", help="write DATA's items that were not matched here (JSONL): DATA without the "
                                  "reference's items, or without its own repeats")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Find the items of DATA that REFERENCE already holds: the same question and options, the same question,
    or a near-duplicate. For contamination of a benchmark by a training set, or a split leaking into another;
    without REFERENCE, the items of DATA that repeat an earlier one. No model tokens; DATA is not changed
    (--write-unmatched writes a copy without the matched items)."""
    from refinelab.api.overlap import check_output, find_overlap, write_matches, write_unmatched
    from refinelab.io import as_dataset, parse_columns

    try:
        for output in (out_file, unmatched_file):  # before the embedding, which can take minutes
            if output is not None:
                check_output(output, inputs=(data, reference))
        if out_file is not None and unmatched_file is not None and out_file.resolve() == unmatched_file.resolve():
            fail("--out and --write-unmatched name the same file")
        mapping = parse_columns(columns) if columns else None
        items = as_dataset(data, columns=mapping, split=split, on_invalid="quarantine")
        with phase_progress("compare", 0, quiet=quiet or as_json, console=console) as show:
            report = find_overlap(items, reference, method="lexical" if lexical else "embedding",
                                  threshold=threshold, columns=mapping, reference_split=reference_split,
                                  any_options=any_options, progress=show)
        if out_file is not None:
            write_matches(report, out_file)
        unmatched = write_unmatched(report, items, unmatched_file) if unmatched_file is not None else None
    except (RefineLabError, ValueError) as exc:
        fail(exc)
    if as_json:
        out.print_json(json.dumps(report.to_dict() | ({"unmatched": {"path": str(unmatched[0]), "items": unmatched[1]}}
                                                      if unmatched else {})))
        return
    for line in report.summary_lines(unmatched):
        out.print(safe_text(line))
    for line in report.warnings():
        console.print(safe_text(line))
    for line in report.match_lines(matches_file=out_file):
        out.print(safe_text(line), soft_wrap=True)
