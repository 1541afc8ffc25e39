"""Target YAML: shipped examples, the four ways to give coverage, match-reference, and clear errors."""

import json
from pathlib import Path

import pytest

from refinelab.metrics.targets import TargetError, load_targets, parse_targets, resolve_targets
from refinelab.schema import QAItem

TARGETS = Path(__file__).resolve().parents[2] / "targets"


def write(tmp_path, text, name="t.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", ["uniform_mmlu.yaml", "balanced_difficulty.yaml", "match_reference.yaml",
                                  "stem_reasoning.yaml"])
def test_shipped_examples_load(name):
    targets = load_targets(TARGETS / name)
    if targets.coverage is not None:
        assert sum(targets.coverage_cells().values()) == pytest.approx(1.0)
    if targets.difficulty is not None:
        assert sum(targets.difficulty.values()) == pytest.approx(1.0)
        assert list(targets.difficulty) == targets.buckets


def test_uniform_mmlu_is_uniform_over_20_cells():
    targets = load_targets(TARGETS / "uniform_mmlu.yaml")
    cells = targets.coverage_cells()
    assert len(cells) == 20
    assert all(p == pytest.approx(1 / 20) for p in cells.values())
    assert targets.bucket(0.9) == "hard" and targets.bucket(0.1) == "easy"


def test_defaults_come_from_domain_map_and_skill_taxonomy(tmp_path):
    targets = load_targets(write(tmp_path, "coverage: {}\n"))
    domains = {d for d, _ in targets.coverage_cells()}
    skills = {s for _, s in targets.coverage_cells()}
    assert domains == {"STEM", "humanities", "social sciences", "other"}
    assert skills == {"recall", "comprehension", "application", "reasoning", "calculation"}
    assert targets.difficulty is None


def test_nested_weights_and_marginals(tmp_path):
    t = load_targets(write(tmp_path, "coverage:\n  weights: {STEM: {recall: 3}, other: {reasoning: 1}}\n"))
    assert t.coverage == {"STEM": {"recall": 0.75}, "other": {"reasoning": 0.25}}
    t = load_targets(write(tmp_path, "coverage:\n  domain_weights: {A: 1, B: 3}\n  skill_weights: {x: 1, y: 1}\n"))
    assert t.coverage_cells()[("B", "y")] == pytest.approx(3 / 8)


def test_match_reference_relative_to_file(tmp_path):
    (tmp_path / "ref").mkdir()
    records = [{"subject": "college_physics", "skill": "calculation", "difficulty": 0.9},
               {"domain": "humanities", "skill": "recall", "difficulty": 0.1},
               {"domain": "humanities", "skill": "recall", "difficulty": 0.5},
               {"domain": "humanities", "skill": "recall", "difficulty": 0.2}]
    (tmp_path / "ref" / "p.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    t = load_targets(write(tmp_path, "match: ref/p.jsonl\ndifficulty: {thresholds: [0.3, 0.7]}\n"))
    assert t.coverage == {"STEM": {"calculation": 0.25}, "humanities": {"recall": 0.75}}
    assert t.difficulty == {"easy": 0.5, "medium": 0.25, "hard": 0.25}
    assert t.sources == {"coverage": "match:ref/p.jsonl", "difficulty": "match:ref/p.jsonl"}


def test_match_with_injected_loader(tmp_path):
    items = [QAItem(id="1", question="q", choices=["a", "b"], answer=0, domain="X", skill="s", difficulty=0.5)]
    t = load_targets(write(tmp_path, "coverage: {match: anything.csv}\n"), load_reference=lambda path: items)
    assert t.coverage == {"X": {"s": 1.0}}


def test_match_reference_without_labels_is_a_clear_error(tmp_path):
    (tmp_path / "raw.jsonl").write_text(json.dumps({"question": "q", "subject": "nonexistent"}) + "\n")
    with pytest.raises(TargetError, match="profile the reference"):
        load_targets(write(tmp_path, "coverage: {match: raw.jsonl}\n"))
    with pytest.raises(TargetError, match="not found"):
        load_targets(write(tmp_path, "match: missing.jsonl\n"))


@pytest.mark.parametrize(
    "text, message",
    [
        ("difficulty: {buckets: [easy, hard], thresholds: [0.3, 0.6]}\n", "need 1 thresholds"),
        ("difficulty: {thresholds: [0.7, 0.3]}\n", "strictly increasing"),
        ("difficulty: {thresholds: [0.5, 1.5]}\n", "strictly between 0 and 1"),
        ("difficulty: {weights: {easy: -1, hard: 2}}\n", "negative"),
        ("difficulty: {weights: {impossible: 1}}\n", "unknown buckets"),
        ("difficulty: {weights: {easy: 0, medium: 0}}\n", "all zero"),
        # a ValueError without the file before; infinities summed to a target of zeros, silently
        ("difficulty: {weights: {easy: .nan, hard: 1}}\n", "not a finite number"),
        ("coverage: {domains: [A], skills: [x], weights: {A: {x: .inf}}}\n", "not a finite number"),
        ("coverage: {domains: [A], skills: [x, y], weights: {A: {x: 1e308, y: 1e308}}}\n", "too large to add up"),
        ("coverage: {domains: [A, B], skills: [x], weights: {A: {x: 1e308}, B: {x: 1e308}}}\n", "too large to add up"),
        ("coverage: {colour: red}\n", "coverage.colour"),
        ("coverage: {domains: [A], weights: {B: {x: 1}}}\n", "not in domains"),
        ("coverage: {match: x.jsonl, weights: {A: {x: 1}}}\n", "do not also give weights"),
        ("name: nothing\n", "needs `coverage`"),
    ],
)
def test_invalid_files_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(TargetError, match=message) as info:
        load_targets(path)
    assert str(path) in str(info.value)


def test_not_yaml_and_not_a_mapping(tmp_path):
    with pytest.raises(TargetError, match="not valid YAML"):
        load_targets(write(tmp_path, "coverage: [unclosed\n"))
    with pytest.raises(TargetError, match="mapping"):
        parse_targets(["a", "b"])
    with pytest.raises(TargetError, match="not found"):
        load_targets(tmp_path / "nope.yaml")


def test_resolve_spec_directly():
    spec = parse_targets({"difficulty": {"buckets": ["lo", "hi"], "thresholds": [0.5]}})
    t = resolve_targets(spec)
    assert t.difficulty == {"lo": 0.5, "hi": 0.5} and t.bucket(0.5) == "hi"


def test_a_folder_given_as_targets_is_named_as_a_folder(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="is a folder, not a targets YAML file"):
        load_targets(tmp_path)
