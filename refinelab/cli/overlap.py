"""`refinelab data overlap`: which items of DATA a REFERENCE already holds; the work is `refinelab.api.overlap`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from refinelab.cli import arguments as arg
from refinelab.cli.common import clip, console, fail, out, safe_text, styled
from refinelab.cli.progress import phase_progress
from refinelab.errors import RefineLabError

SHOWN = 20  # matches printed; --out writes every one


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
    counts, other_key = report.counts(), report.other_key()
    where = ("repeat an earlier item of it" if report.within else
             f"found in {safe_text(report.reference)} ({report.reference_items:,} items)")
    near_keys = (f"; {other_key['near']:,} of them keyed otherwise, most often another question from one "
                 "template" if counts["near"] else "")
    out.print(f"{safe_text(report.data)}: {len(report.matches):,} of {report.items:,} items ({report.share:.1%}) {where}: "
              f"exact {counts['exact']:,}, same question {counts['same_question']:,}, near {counts['near']:,} "
              f"(similarity >= {report.threshold:g}, {report.method}{near_keys})")
    if unmatched:
        out.print(f"{unmatched[1]:,} items not matched written to {safe_text(unmatched[0])}")
    if report.invalid or report.reference_invalid:
        console.print(f"warning: left out as invalid: {report.invalid:,} row(s) of {safe_text(report.data)}"
                      + (f", {report.reference_invalid:,} of {safe_text(report.reference)}" if report.reference_invalid else "")
                      + " (refinelab data validate lists them)")
    if other_key["exact"]:
        console.print(f"warning: {other_key['exact']:,} exact copies are keyed otherwise than the item they "
                      "copy: one of each pair has a wrong key")
    for match in report.matches[:SHOWN]:
        # one line a match, not a table: two ids and a question do not fit 80 columns (piped output), and a
        # table cut the ids to "abstract_alg…"; here nothing but the question is shortened
        out.print(styled((safe_text(match.item_id), "bold"), " found as ", (safe_text(match.reference_id), "bold"),
                         f": {match.kind}, similarity {match.similarity:.3f}, "
                         f"{'same key' if match.same_key else 'another key'}; {clip(match.question, 80)}"),
                  soft_wrap=True)
        if len(report.matches) > SHOWN:
            out.print(f"… {len(report.matches) - SHOWN:,} more" + (f" in {safe_text(out_file)}" if out_file else
                                                                    " (--out FILE writes them all)"))
