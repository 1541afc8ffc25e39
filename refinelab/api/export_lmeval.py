"""Export a run's refined set as an lm-evaluation-harness task, so any model can be scored on it.

The task folder holds `<task>.yaml` and `<task>.jsonl`. The YAML loads the JSONL through the `json`
builder of Hugging Face `datasets` (`dataset_path: json`, `dataset_kwargs.data_files`) with an absolute
path, because lm-eval resolves `data_files` against the working directory, not the YAML's folder; moving
the folder means exporting again (or editing that one line). Items may have 2–10 options, so the prompt
and the choice list are built per document from its own `choices`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml

from refinelab.api.results import refined_items
from refinelab.api.run_checks import check_run_files
from refinelab.atomic import atomic_write_text
from refinelab.errors import DataError
from refinelab.run_layout import REFINED
from refinelab.schema import LETTERS, Dataset

ChoiceFormat = Literal["letters", "text"]

# MMLU-style prompt: stem, lettered options, "Answer:"; the model scores " A", " B", ...
DOC_TO_TEXT = "{{question.strip()}}\n{% for c in choices %}{{ letters[loop.index0] }}. {{ c }}\n{% endfor %}Answer:"


def task_name_for(run_id: str) -> str:
    """A valid lm-eval task name from a run id (letters, digits and underscores)."""
    slug = re.sub(r"[^0-9a-zA-Z_]+", "_", run_id).strip("_").lower()
    return f"refinelab_{slug or 'run'}"


def _docs(items: Dataset) -> list[dict[str, Any]]:
    """One lm-eval document per refined item. The items come from `results.refined_items`, the reader every
    export and `report` share: each row validated as a `QAItem` (file, row and field named when one is
    not), so a row `export --jsonl` refuses is refused here too. Before, this module parsed refined.jsonl on
    its own: `"provenance": "x"` crashed it, `"choices": "ABCD"` became options A/B/C/D and `"answer": true`
    or 1.9 became 1."""
    return [{
        "id": item.id, "question": item.question, "choices": list(item.choices), "answer": item.answer,
        "letters": list(LETTERS[: len(item.choices)]), "subject": item.subject, "domain": item.domain,
        "skill": item.skill, "difficulty": item.difficulty, "created_by": item.provenance.created_by,
    } for item in items]


def task_config(task: str, data_file: Path, choice_format: ChoiceFormat = "letters") -> dict[str, Any]:
    """The lm-eval task YAML as a dict."""
    if choice_format == "letters":
        doc_to_text, doc_to_choice = DOC_TO_TEXT, "letters"
    else:  # ARC-style: the model scores each option's text after the stem
        doc_to_text, doc_to_choice = "Question: {{question.strip()}}\nAnswer:", "choices"
    return {
        "task": task,
        "dataset_path": "json",
        "dataset_kwargs": {"data_files": {"test": str(data_file.resolve())}},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": doc_to_text,
        "doc_to_choice": doc_to_choice,
        "doc_to_target": "answer",
        "target_delimiter": " ",
        "metric_list": [
            {"metric": "acc", "aggregation": "mean", "higher_is_better": True},
            {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True},
        ],
        "metadata": {"version": 1.0, "source": "refinelab"},
    }


def export_lm_eval(run_dir: str | Path, out_dir: str | Path, task_name: str | None = None,
                   choice_format: ChoiceFormat = "letters") -> Path:
    """Write `<task>.yaml` and `<task>.jsonl` for the run's refined.jsonl into `out_dir`; return the YAML path."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    check_run_files(run_dir)  # a named pipe or a link to a device as refined.jsonl hung or filled memory
    refined = run_dir / REFINED
    if not refined.exists():
        raise FileNotFoundError(f"{run_dir} has no {REFINED}: it is not a finished RefineLab run folder")
    if choice_format not in ("letters", "text"):
        raise ValueError(f"choice_format must be 'letters' or 'text', got {choice_format!r}")
    task = task_name or task_name_for(run_dir.name)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", task):
        raise ValueError(f"task name {task!r}: use letters, digits, '_' or '-', starting with a letter or '_'")
    docs = _docs(refined_items(run_dir))
    if not docs:
        raise DataError(str(refined), None, None, "no items to export")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_file = out_dir / f"{task}.jsonl"
    atomic_write_text(data_file, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    yaml_path = out_dir / f"{task}.yaml"
    atomic_write_text(yaml_path, task_yaml(task_config(task, data_file, choice_format), run_dir, out_dir, task))
    return yaml_path


def _comment(text: str) -> str:
    """A path or name made safe for a YAML comment line: JSON-quoted, so a newline or any control
    character in a folder name is an escape sequence, never a line break that starts a key."""
    return json.dumps(text, ensure_ascii=True)


def task_yaml(config: dict[str, Any], run_dir: Path, out_dir: Path, task: str) -> str:
    """The task file: two comment lines, then the config emitted by the YAML serializer only (names are
    values, never structure). Checked by parsing it back: the result must be exactly `config`."""
    header = (f"# lm-eval-harness task exported by RefineLab from {_comment(str(run_dir.resolve()))}\n"
              f"# run: lm_eval --include_path {_comment(str(out_dir.resolve()))} --tasks {task} --model ...\n")
    body = yaml.safe_dump(config, sort_keys=False, allow_unicode=False, width=1000)
    text = header + body
    if yaml.safe_load(text) != config or any(line.startswith("#") for line in body.splitlines()):
        raise ValueError(f"task {task!r}: the exported YAML does not round-trip; refusing to write it")
    return text
