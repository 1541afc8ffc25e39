"""A finished run's refined set as a Hugging Face `datasets.Dataset`, Parquet or JSONL, with a dataset card.

Why here and not in the graph: a run folder is finished once `refined.jsonl` and `report.json` exist;
exporting reads the folder (untrusted: it may come from elsewhere) and never changes it. The card is the
README.md a Hugging Face dataset repository shows: the run's before/after figures, the operations
bought, the budget, the models, and the lineage of the rows, so a published set says how it was made.

Rows keep our item shape; `metadata` and `provenance` are JSON strings (their keys differ per item),
exactly as `refinelab.io.write_parquet` writes them, so the export reads back in as a RefineLab dataset.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml

from refinelab import __version__
from refinelab.api.run_checks import check_run_files
from refinelab.api.run_files import read_report, read_run_json
from refinelab.atomic import atomic_write_text
from refinelab.display import one_line
from refinelab.errors import DataError
from refinelab.io import read_jsonl, write_jsonl, write_parquet
from refinelab.redact import redact
from refinelab.run_layout import REFINED, SETTINGS
from refinelab.safeload import CONTROL_CHARACTERS
from refinelab.schema import Dataset, QAItem

if TYPE_CHECKING:
    import datasets

SaveFormat = Literal["parquet", "jsonl", "hf"]
SAVE_FORMATS: tuple[str, ...] = ("parquet", "jsonl", "hf")
CARD_MARKER = "<!-- written by refinelab: regenerated on export -->"


def refined_items(run_dir: Path) -> Dataset:
    """The run's refined.jsonl, validated row by row (a bad row is a one-line DataError). The one reader of
    it for every export (`save`, `to_hf`, `export_lmeval`) and `RunResult.items`; the folder's files are
    checked first (`check_run_files`), so a named pipe or a link to a device there is refused as such, not
    read (a pipe blocks the read, /dev/zero fills memory) nor reported as an unfinished run."""
    check_run_files(run_dir)
    path = run_dir / REFINED
    if not path.is_file():
        raise DataError(str(path), None, None, "no refined set: the run has not finished (resume it first)")
    return read_jsonl(path)


def _row(item: QAItem) -> dict[str, Any]:
    row = item.model_dump(mode="json")
    row["metadata"] = json.dumps(row["metadata"], ensure_ascii=False)
    row["provenance"] = json.dumps(row["provenance"], ensure_ascii=False)
    return row


def hf_features() -> datasets.Features:
    """The column types of an export (fixed, so an empty split or all-None difficulty still has them)."""
    from datasets import Features, Sequence, Value

    text = Value("string")
    return Features({"id": text, "question": text, "choices": Sequence(text), "answer": Value("int64"),
                     "subject": text, "domain": text, "skill": text, "difficulty": Value("float64"),
                     "metadata": text, "provenance": text})


def to_hf(run_dir: str | Path) -> datasets.Dataset:
    """The refined set of `run_dir` as a `datasets.Dataset` (needs the `hf` extra: `datasets`)."""
    try:
        from datasets import Dataset as HFDataset
    except ImportError as exc:
        raise DataError("datasets", None, None, "the Hugging Face export needs: pip install 'refinelab[hf]'") from exc
    items = refined_items(Path(run_dir))
    return HFDataset.from_list([_row(i) for i in items], features=hf_features())


# ------------------------------------------------------------------------------------------- the card


def _text(value: Any, limit: int = 120) -> str:
    """A value from the run folder (untrusted) as inert Markdown: one line, no control or bidi characters,
    no HTML, table pipes or code fences, secrets redacted, at most `limit` characters."""
    text = CONTROL_CHARACTERS.sub(" ", redact(str(value)))
    for char, escaped in (("\\", "\\\\"), ("|", "\\|"), ("`", "'"), ("<", "&lt;"), (">", "&gt;"),
                          ("[", "\\["), ("]", "\\]")):
        text = text.replace(char, escaped)
    return one_line(text, limit)  # whitespace folded after the escapes, which add none


def _figure(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _text(value, 40)
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def card_text(run_dir: str | Path, items: Dataset, data_path: str | None, split: str = "test") -> str:
    """README.md for the export of `run_dir`: YAML front matter for the Hub, then the run in figures."""
    run_dir = Path(run_dir)
    report = read_report(run_dir)
    saved = read_run_json(run_dir / SETTINGS)
    settings = saved.get("settings") if isinstance(saved.get("settings"), dict) else {}
    run_id = _text(report.get("run_id") or run_dir.name, 80)
    source = _text(saved.get("dataset") or "unknown", 80)
    n = len(items)
    size = ("n<1K" if n < 1_000 else "1K<n<10K" if n < 10_000 else "10K<n<100K" if n < 100_000 else "100K<n<1M")
    front: dict[str, Any] = {"tags": ["refinelab", "multiple-choice", "question-answering"],
                             "task_categories": ["multiple-choice"], "size_categories": [size], "pretty_name": source}
    if data_path is not None:
        front["configs"] = [{"config_name": "default", "data_files": [{"split": split, "path": data_path}]}]
    before, after = report.get("metrics_before") or {}, report.get("metrics_after") or {}
    lines = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", CARD_MARKER, "",
             f"# {source}, refined by RefineLab", "",
             f"{n} multiple-choice items refined from `{source}` by RefineLab {__version__} in run `{run_id}`"
             f" (stop reason: {_text(report.get('stop_reason') or 'finished')}; rounds: {_figure(report.get('rounds'))}).", "",
             "## Before and after", "", "| measure | before | after |", "|---|---:|---:|"]
    for key, label in (("items", "items"), ("coverage_jsd", "coverage JSD to target"),
                       ("difficulty_jsd", "difficulty JSD to target"), ("expected_errors", "expected errors")):
        lines.append(f"| {label} | {_figure(before.get(key))} | {_figure(after.get(key))} |")
    lines += ["", "Lower JSD is closer to the run's targets; expected errors sum each original item's estimated "
              "probability of being wrong.", "", "## Operations", ""]
    outcomes = (report.get("edits") or {}).get("outcomes") or {}
    if outcomes:
        lines += ["| operation | outcome | edits |", "|---|---|---:|"]
        for key, count in sorted(outcomes.items()):
            operation, _, status = str(key).partition(":")
            lines.append(f"| {_text(operation, 40)} | {_text(status, 40)} | {_figure(count)} |")
    else:
        lines.append("No edits were made.")
    by_status = report.get("items_by_status") or {}
    statuses = ", ".join(f"{_text(k, 40)} {_figure(v)}" for k, v in sorted(by_status.items())) or "—"
    lines += ["", f"Input items by status: {statuses}; new items: {_figure(report.get('new_items'))}.", "",
              "## Budget", ""]
    ledger = report.get("ledger") or {}
    lines.append(f"{_figure(ledger.get('spent'))} tokens spent of a cap of {_figure(ledger.get('cap') or saved.get('budget'))}"
                 f" in {_figure(ledger.get('calls'))} model calls.")
    by_node = ledger.get("by_node") or {}
    if by_node:
        lines += ["", "| step | calls | tokens |", "|---|---:|---:|"]
        for node, slot in sorted(by_node.items()):
            if isinstance(slot, dict):
                lines.append(f"| {_text(node, 40)} | {_figure(slot.get('calls'))} | {_figure(slot.get('tokens'))} |")
    lines += ["", "## Models", "", "| role | model | endpoint |", "|---|---|---|"]
    roles = settings.get("roles") if isinstance(settings.get("roles"), dict) else {}
    for role, spec in sorted(roles.items()):
        if isinstance(spec, dict):  # endpoints only, never a key; a URL's secrets are redacted
            lines.append(f"| {_text(role, 40)} | {_text(spec.get('model', '—'))} | {_text(spec.get('endpoint', '—'))} |")
    origins = Counter(i.provenance.created_by for i in items)
    lines += ["", "## Lineage", "", f"- source dataset: `{source}`", f"- RefineLab run: `{run_id}` "
              f"(its folder holds `changes.jsonl`, every edit with before, after, verdict and evidence)",
              f"- rows by origin: {', '.join(f'{_text(k, 40)} {v}' for k, v in sorted(origins.items()))}",
              "- each row's `provenance` (JSON) names its source file and row, `created_by` (original or the "
              "operation that wrote it), `parent_id` (the item it was derived from) and `confirmed_by` (a fix that "
              "checked the row and kept it unchanged, its key backed by evidence).", "",
              "## Fields", "", "`id`, `question`, `choices` (list of strings), `answer` (0-based index into "
              "`choices`), `subject`, `domain`, `skill`, `difficulty` (0–1, 1 hardest; empty if not measured), "
              "`metadata` and `provenance` (JSON strings).", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------- saving


def _fresh_folder(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise DataError(str(target), None, None, "exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise DataError(str(target), None, None, "folder is not empty; choose a new one")


def _publish(target: Path, build: Callable[[Path], None]) -> Path:
    """Build the export in a private sibling folder, then move it into place: nothing half-written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    _fresh_folder(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(staging)
        os.chmod(staging, 0o755)
        if target.is_dir():
            target.rmdir()  # empty, checked above
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _card_path_for_file(file: Path) -> Path:
    card = file.parent / "README.md"
    if card.exists() and CARD_MARKER not in card.read_text(encoding="utf-8", errors="replace"):
        raise DataError(str(card), None, None, "exists and was not written by refinelab; export to another folder")
    return card


# Names that say "a file": a folder called out.csv is never what the user meant by them.
_FILE_SUFFIXES = (".parquet", ".jsonl", ".json", ".csv", ".tsv", ".arrow", ".txt", ".md", ".yaml", ".yml", ".gz",
                  ".zip", ".xlsx")


def save(run_dir: str | Path, path: str | Path, format: SaveFormat = "parquet", split: str = "test") -> Path:
    """Write the refined set of `run_dir` with its dataset card; returns what was written.

    - `path` a folder (the default form): `README.md` plus `data/<split>.parquet` or `.jsonl`, the layout of
      a Hugging Face dataset repository; with `format="hf"`, `datasets`' `save_to_disk` folder plus README.md.
      The folder must be new or empty.
    - `path` ending in `.parquet` or `.jsonl`: that one file, and README.md beside it (refused if a README.md
      there was not written by refinelab)."""
    if format not in SAVE_FORMATS:
        raise DataError(str(path), None, "format", f"expected one of {', '.join(SAVE_FORMATS)}, got {format!r}")
    run_dir, path = Path(run_dir), Path(path)
    items = refined_items(run_dir)
    writer = write_parquet if format == "parquet" else write_jsonl
    if path.suffix.lower() in _FILE_SUFFIXES and (format == "hf" or path.suffix not in (".parquet", ".jsonl")):
        wanted = "a new folder" if format == "hf" else f"a .{format} file or a new folder"
        raise DataError(str(path), None, None, f"is a file name ({path.suffix}); {format} export writes {wanted}")
    if format != "hf" and path.suffix in (".parquet", ".jsonl"):
        if path.suffix != f".{format}":
            raise DataError(str(path), None, None, f"file name ends in {path.suffix} but format is {format}")
        path.parent.mkdir(parents=True, exist_ok=True)
        card = _card_path_for_file(path)
        text = card_text(run_dir, items, path.name, split)  # before any write: a bad report.json leaves nothing
        writer(items, path)
        atomic_write_text(card, text)
        return path

    def build(staging: Path) -> None:
        if format == "hf":
            _save_quietly(to_hf(run_dir), staging)
            data_path = None
        else:
            data_path = f"data/{split}.{format}"
            (staging / "data").mkdir()
            writer(items, staging / data_path)
        (staging / "README.md").write_text(card_text(run_dir, items, data_path, split), encoding="utf-8")

    return _publish(path, build)


def _save_quietly(dataset: Any, folder: Path) -> None:
    """`save_to_disk` without `datasets`' "Saving the dataset (0/1 shards)" bar on stderr, which a CLI that
    prints one line per result (and a script reading stderr for errors) does not want; the caller's own
    setting is restored after, as the embedding loader restores what it quiets (tools/embeddings.py)."""
    from datasets.utils import logging as datasets_logging

    was_on = datasets_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    try:
        dataset.save_to_disk(str(folder))
    finally:
        if was_on:
            datasets_logging.enable_progress_bar()
