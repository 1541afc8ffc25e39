"""`refinelab review RUN_ID`: decide a paused run's pending cases in the terminal (or by file), then resume.

The library does the work (`refinelab.api.review`); this module shows each case and reads a decision:
accept, reject, edit (the reviewer's own question/options/key), or skip (it stays pending). Decisions made
in the terminal resume the run once all shown cases are answered; new cases the resumed run raises (the
next round's) are shown in turn until only skipped ones are left.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from refinelab.cli import arguments as arg
from refinelab.cli.common import console, fail, options_text, out, safe_text, styled
from refinelab.errors import RefineLabError
from refinelab.run_layout import REPORT_JSON
from refinelab.schema import LETTERS

EVIDENCE_CHARS = 1500
CHOICES = {"a": "accept", "r": "reject", "e": "edit", "s": "skip"}


def _item_text(item: dict[str, Any] | None) -> Text:
    if not item:
        return Text("  (none: the item would be removed)" if item is None else "  (none)")
    return styled(f"  {safe_text(str(item.get('question', '')))}", options_text(item.get("choices") or [], item.get("answer")))


def show_case(number: int, total: int, case: Any) -> None:
    """One case: what is asked and why, the item before and after, the model's reasons, the evidence."""
    request = case.request
    what = f"{request.kind}{' · ' + request.operation if request.operation else ''} · item {request.item_id}"
    out.print(styled("\n", (f"case {number}/{total}", "bold"), f" {safe_text(str(case.key))}  ",
                     (safe_text(what), "dim")))
    out.print(styled(("before", "bold"), "\n", _item_text(case.before)))
    if request.kind != "unfixable":
        out.print(styled(("after (proposed)", "bold"), "\n", _item_text(case.after)))
    for reason in case.reasons:
        out.print(styled(("reason", "bold"), f" {safe_text(str(reason))}"))
    evidence = json.dumps(case.evidence, ensure_ascii=False, default=str)
    if len(evidence) > EVIDENCE_CHARS:
        evidence = evidence[:EVIDENCE_CHARS] + " … (cut; the full evidence is in --export)"
    out.print(styled((f"evidence {safe_text(evidence)}", "dim")))
    if request.kind == "unfixable":
        out.print(styled(("accept = the flag stands, remove the item; reject = keep it; edit = fix it yourself", "dim")))


def _ask_edit(case: Any) -> dict[str, Any]:
    """The reviewer's version: Enter keeps a field as proposed; options are separated by ' | '."""
    base = case.after or case.before or {}
    question = typer.prompt("question", default=base.get("question", ""), show_default=False)
    choices = typer.prompt("options (A | B | …)", default=" | ".join(base.get("choices") or []), show_default=False)
    letter = typer.prompt("key letter", default=LETTERS[int(base.get("answer", 0))])
    return {"question": question, "choices": [c.strip() for c in choices.split("|")],
            "answer": LETTERS.find(letter.strip().upper()[:1] or "?")}


def ask(case: Any) -> dict[str, Any] | None:
    """Read one decision; None at end of input (the case stays pending)."""
    while True:
        try:
            answer = typer.prompt("[a]ccept / [r]eject / [e]dit / [s]kip").strip().lower()[:1]
        except (EOFError, typer.Abort):
            return None
        if answer in CHOICES:
            break
        console.print("answer a, r, e or s")
    decision: dict[str, Any] = {"key": case.key, "decision": CHOICES[answer]}
    if decision["decision"] == "edit":
        decision["item"] = _ask_edit(case)
    if decision["decision"] in ("reject", "edit"):
        decision["note"] = typer.prompt("note (optional)", default="", show_default=False)
    return decision


def _summary(result: Any) -> None:
    if result.paused:
        out.print(f"run {result.run_id}: {result.pending_review} case(s) still pending review; "
                  f"run `refinelab review {result.run_id}` again")
        return
    report = result.report
    out.print(safe_text(f"run {result.run_id} finished: {report.get('stop_reason')}; reviews {report.get('reviews')}; "
                        f"output {report.get('output_items')} items; report: {result.run_dir / REPORT_JSON}"))


def review_command(
    run: Annotated[str, typer.Argument(help="the paused run: its id, or a path to its folder")],
    runs_dir: arg.RunsDir = None,
    reviewer: Annotated[str | None, typer.Option(help="who decides (recorded); default: the login name")] = None,
    export: Annotated[Path | None, typer.Option("--export", help="write the pending cases as JSONL and stop")] = None,
    decisions: Annotated[Path | None, typer.Option("--import", help="apply decisions from a JSONL file")] = None,
    trust_run: Annotated[bool, typer.Option("--trust-run", help="review a run folder this user did not write")] = False,
) -> None:
    """Show each decision the run waits for (before/after, evidence, reasons); accept, reject, edit or skip."""
    from refinelab.api.review import decide, decided_by_policy, export_queue, pending_reviews, read_decisions
    from refinelab.api.run_list import locate_run
    from refinelab.cli.progress import cli_hooks

    if export is not None and decisions is not None:  # one of them used to be ignored without a word
        fail("--export and --import do not go together: export the queue, fill in its decisions, then import it")
    try:
        where = locate_run(run, runs_dir)
        run_id, runs_dir = where.run_id, where.runs_dir
        if export is not None:
            count = export_queue(run_id, export, runs_dir=runs_dir, trust=trust_run)
            out.print(f"{count} pending case(s) written to {export}")
            return
        if decisions is not None:
            _summary(decide(run_id, read_decisions(decisions), runs_dir=runs_dir, reviewer=reviewer, trust=trust_run,
                                    hooks=cli_hooks()))
            return
        skipped: set[str] = set()
        while True:
            cases = [c for c in pending_reviews(run_id, runs_dir=runs_dir, trust=trust_run) if c.key not in skipped]
            if not cases:
                out.print(f"run {run_id}: nothing {'else ' if skipped else ''}to review")
                decided = {} if skipped else decided_by_policy(run_id, runs_dir=runs_dir, trust=trust_run)
                if decided:
                    tally = ", ".join(f"{v} {k}" for k, v in sorted(decided.items()))
                    out.print(f"its review policy decided {sum(decided.values())} case(s) without a person ({tally}); "
                              "changes.jsonl holds each with its evidence (the lines with a \"review\" field), and report.html "
                              "lists their edits under \"gave up\"; `refinelab refine ... --review ask` pauses on "
                              "such cases for you to decide", markup=False, highlight=False, soft_wrap=True)
                return
            answers = []
            for number, case in enumerate(cases, 1):
                show_case(number, len(cases), case)
                answer = ask(case)
                if answer is None or answer["decision"] == "skip":
                    skipped.add(case.key)
                    if answer is None:
                        break
                    continue
                answers.append(answer)
            if not answers:
                out.print(f"run {run_id}: {len(skipped)} case(s) skipped, still pending")
                return
            result = decide(run_id, answers, runs_dir=runs_dir, reviewer=reviewer, trust=trust_run, hooks=cli_hooks())
            if not result.paused:
                _summary(result)
                return
    except (RefineLabError, ValueError, FileNotFoundError) as exc:
        fail(exc)
