"""Target distributions the planner steers toward: coverage over domain × skill cells, difficulty over buckets.

A target file is YAML, given directly (weights, or uniform by default) or as ``match: <dataset>`` so the
target is another dataset's profile. Files are validated with pydantic and every error names the file.

    name: uniform_mmlu
    coverage:
      domains: [STEM, humanities, social sciences, other]
      skills: [recall, comprehension, application, reasoning, calculation]
    difficulty:
      buckets: [easy, medium, hard]
      thresholds: [0.3333, 0.6667]
      weights: {easy: 1, medium: 1, hard: 1}

``match`` paths are relative to the target file. The reference is a JSONL/JSON file of records that carry
``domain`` (or a ``subject`` the subject map knows), ``skill`` and ``difficulty`` in [0, 1] — a profiled
dataset or the item list of a ``profile.json``; pass ``load_reference`` to read other formats.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from refinelab.domains import SubjectDomains, load_skills, load_subject_domains
from refinelab.errors import ConfigError, DataError, validation_problem
from refinelab.metrics.divergence import bucket_of, normalise
from refinelab.safeload import load_yaml, loads_json
from refinelab.schema import Cell, QAItem

ReferenceLoader = Callable[[Path], Iterable[QAItem | Mapping[str, Any]]]


class TargetError(ConfigError, ValueError):
    """A target file that cannot be read, validated or resolved; the message names the file."""


def _check_weights(weights: Mapping[str, float], what: str) -> None:
    """Weights a distribution can be made of: finite, non-negative, not all zero, and a finite sum (two
    weights of 1e308 summed to infinity and normalised to a distribution of zeros, silently)."""
    for key, value in weights.items():
        if not math.isfinite(value):
            raise ValueError(f"{what} weight for {key!r} is not a finite number: {value}")
        if value < 0:
            raise ValueError(f"{what} weight for {key!r} is negative: {value}")
    total = sum(weights.values())
    if weights and not math.isfinite(total):
        raise ValueError(f"{what} weights are too large to add up; scale them down")
    if weights and total <= 0:
        raise ValueError(f"{what} weights are all zero")


class CoverageSpec(BaseModel):
    """Coverage target as written: nested weights, product of marginals, uniform, or match a reference."""

    model_config = ConfigDict(extra="forbid")

    domains: list[str] | None = None  # default: the subject map's domains
    skills: list[str] | None = None  # default: the skill taxonomy
    weights: dict[str, dict[str, float]] | None = None  # domain -> skill -> weight; unlisted cells = 0
    domain_weights: dict[str, float] | None = None  # product form: P(d, s) ∝ w_d · w_s
    skill_weights: dict[str, float] | None = None
    match: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CoverageSpec:
        if self.weights is not None and (self.domain_weights or self.skill_weights):
            raise ValueError("give either `weights` (per cell) or `domain_weights`/`skill_weights`, not both")
        if self.match and (self.weights or self.domain_weights or self.skill_weights):
            raise ValueError("`match` computes the weights from the reference; do not also give weights")
        for name in ("domains", "skills"):
            values = getattr(self, name)
            if values is not None:
                if not values:
                    raise ValueError(f"`{name}` is empty")
                if len(set(values)) != len(values):
                    raise ValueError(f"`{name}` has duplicates: {values}")
        if self.weights is not None:
            if not self.weights:
                raise ValueError("`weights` is empty")
            for domain, row in self.weights.items():
                if self.domains is not None and domain not in self.domains:
                    raise ValueError(f"weights name domain {domain!r}, not in domains {self.domains}")
                for skill in row:
                    if self.skills is not None and skill not in self.skills:
                        raise ValueError(f"weights name skill {skill!r}, not in skills {self.skills}")
                _check_weights(row, f"coverage[{domain}]")
            _check_weights({f"{d}|{s}": w for d, row in self.weights.items() for s, w in row.items()}, "coverage")
        for label, marg, allowed in (
            ("domain", self.domain_weights, self.domains),
            ("skill", self.skill_weights, self.skills),
        ):
            if marg is not None:
                _check_weights(marg, label)
                if allowed is not None and set(marg) - set(allowed):
                    raise ValueError(f"{label}_weights name {sorted(set(marg) - set(allowed))}, not listed")
        return self


class DifficultySpec(BaseModel):
    """Difficulty target as written: bucket names, the score thresholds between them, and weights."""

    model_config = ConfigDict(extra="forbid")

    buckets: list[str] = Field(default_factory=lambda: ["easy", "medium", "hard"])
    thresholds: list[float] = Field(default_factory=lambda: [1 / 3, 2 / 3])
    weights: dict[str, float] | None = None  # bucket -> weight; None = uniform; unlisted buckets = 0
    match: str | None = None

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < t < 1.0 for t in value):
            raise ValueError(f"thresholds must lie strictly between 0 and 1, got {value}")
        if any(b <= a for a, b in zip(value, value[1:], strict=False)):
            raise ValueError(f"thresholds must be strictly increasing, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DifficultySpec:
        if len(set(self.buckets)) != len(self.buckets):
            raise ValueError(f"bucket names have duplicates: {self.buckets}")
        if len(self.thresholds) != len(self.buckets) - 1:
            raise ValueError(
                f"{len(self.buckets)} buckets need {len(self.buckets) - 1} thresholds, got {len(self.thresholds)}"
            )
        if self.match and self.weights:
            raise ValueError("`match` computes the weights from the reference; do not also give weights")
        if self.weights is not None:
            unknown = sorted(set(self.weights) - set(self.buckets))
            if unknown:
                raise ValueError(f"weights name unknown buckets {unknown}; buckets are {self.buckets}")
            _check_weights(self.weights, "difficulty")
            if not self.weights:
                raise ValueError("difficulty `weights` is empty")
        return self


class TargetSpec(BaseModel):
    """A whole target file. A top-level `match` applies to every section that does not set its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    description: str = ""
    match: str | None = None
    coverage: CoverageSpec | None = None
    difficulty: DifficultySpec | None = None

    @model_validator(mode="after")
    def _inherit_match(self) -> TargetSpec:
        if self.match:
            if self.coverage is None:
                self.coverage = CoverageSpec()
            if self.difficulty is None:
                self.difficulty = DifficultySpec()
            if not (self.coverage.weights or self.coverage.domain_weights or self.coverage.skill_weights):
                self.coverage.match = self.coverage.match or self.match
            if not self.difficulty.weights:
                self.difficulty.match = self.difficulty.match or self.match
        if self.coverage is None and self.difficulty is None:
            raise ValueError("a target needs `coverage`, `difficulty` or `match`")
        return self


class Targets(BaseModel):
    """Resolved targets: normalised probabilities ready for JSD and the ILP."""

    name: str = ""
    coverage: dict[str, dict[str, float]] | None = None  # domain -> skill -> probability (sums to 1)
    difficulty: dict[str, float] | None = None  # bucket -> probability (sums to 1)
    buckets: list[str] = Field(default_factory=lambda: ["easy", "medium", "hard"])
    thresholds: list[float] = Field(default_factory=lambda: [1 / 3, 2 / 3])
    sources: dict[str, str] = Field(default_factory=dict)  # section -> "weights" | "uniform" | "match:<path>"

    def coverage_cells(self) -> dict[Cell, float]:
        """Coverage target keyed by (domain, skill), the cell shape `coverage_distribution` produces."""
        if self.coverage is None:
            return {}
        return {Cell(d, s): p for d, row in self.coverage.items() for s, p in row.items()}

    def bucket(self, score: float) -> str:
        """The difficulty bucket of a score under this target's thresholds."""
        return bucket_of(score, self.thresholds, self.buckets)


def _record_field(record: QAItem | Mapping[str, Any], name: str) -> Any:
    if isinstance(record, QAItem):
        return getattr(record, name)
    return record.get(name)


def read_reference(path: Path) -> list[dict[str, Any]]:
    """Records of a JSONL file (one object a line) or a JSON list / ``{"items": [...]}`` file."""
    if not path.is_file():
        raise TargetError(f"{path}: reference dataset not found")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(loads_json(line, str(path), number))
                except DataError as exc:
                    raise TargetError(str(exc)) from None
    elif path.suffix == ".json":
        try:
            data = loads_json(text, str(path))
        except DataError as exc:
            raise TargetError(str(exc)) from None
        records = data.get("items", []) if isinstance(data, dict) else data
    else:
        raise TargetError(f"{path}: reference must be .jsonl or .json (or pass load_reference=...)")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise TargetError(f"{path}: expected a list of objects")
    return records


def _coverage_from_reference(
    records: list[QAItem | Mapping[str, Any]], where: str, subject_map: SubjectDomains
) -> dict[str, dict[str, float]]:
    counts: dict[str, dict[str, float]] = {}
    missing_domain = missing_skill = 0
    for record in records:
        domain = _record_field(record, "domain") or ""
        if not domain:
            domain = subject_map.domain_for(_record_field(record, "subject") or "", "") or ""
        skill = _record_field(record, "skill") or ""
        missing_domain += not domain
        missing_skill += not skill
        if domain and skill:
            counts.setdefault(domain, {}).setdefault(skill, 0.0)
            counts[domain][skill] += 1
    if missing_domain or missing_skill:
        raise TargetError(
            f"{where}: {missing_domain} of {len(records)} records have no domain (and no known subject) and "
            f"{missing_skill} have no skill; profile the reference dataset before matching its coverage"
        )
    return counts


def _difficulty_from_reference(
    records: list[QAItem | Mapping[str, Any]], where: str, spec: DifficultySpec
) -> dict[str, float]:
    scores = [_record_field(r, "difficulty") for r in records]
    missing = sum(s is None for s in scores)
    if missing:
        raise TargetError(f"{where}: {missing} of {len(records)} records have no difficulty; profile it first")
    bad = [s for s in scores if not 0.0 <= float(s) <= 1.0]
    if bad:
        raise TargetError(f"{where}: difficulty must be in [0, 1], found {bad[0]}")
    counts = dict.fromkeys(spec.buckets, 0.0)
    for s in scores:
        counts[bucket_of(float(s), spec.thresholds, spec.buckets)] += 1
    return counts


def resolve_targets(
    spec: TargetSpec,
    base_dir: Path = Path("."),
    *,
    load_reference: ReferenceLoader | None = None,
    subject_map: SubjectDomains | None = None,
    skills: list[str] | None = None,
) -> Targets:
    """Turn a spec into normalised target distributions, reading `match` references relative to base_dir."""
    subject_map = subject_map or load_subject_domains()
    cache: dict[str, list[Any]] = {}

    def reference(path_text: str) -> tuple[list[Any], str]:
        path = Path(path_text)
        if not path.is_absolute():
            path = base_dir / path
        if path_text not in cache:
            records = list(load_reference(path)) if load_reference else read_reference(path)
            if not records:
                raise TargetError(f"{path}: reference dataset is empty")
            cache[path_text] = records
        return cache[path_text], str(path)

    targets = Targets(name=spec.name)
    if spec.coverage is not None:
        cov = spec.coverage
        domains = cov.domains or list(subject_map.domains)
        skill_names = cov.skills or skills or load_skills().names
        if cov.match:
            records, where = reference(cov.match)
            raw = _coverage_from_reference(records, where, subject_map)
            targets.sources["coverage"] = f"match:{cov.match}"
        elif cov.weights is not None:
            raw = cov.weights
            targets.sources["coverage"] = "weights"
        elif cov.domain_weights is not None or cov.skill_weights is not None:
            dw = cov.domain_weights or dict.fromkeys(domains, 1.0)
            sw = cov.skill_weights or dict.fromkeys(skill_names, 1.0)
            raw = {d: {s: dw[d] * sw[s] for s in sw} for d in dw}
            targets.sources["coverage"] = "marginals"
        else:
            raw = {d: dict.fromkeys(skill_names, 1.0) for d in domains}
            targets.sources["coverage"] = "uniform"
        flat = normalise({(d, s): w for d, row in raw.items() for s, w in row.items()})
        targets.coverage = {}
        for (d, s), p in flat.items():
            targets.coverage.setdefault(d, {})[s] = p
    if spec.difficulty is not None:
        diff = spec.difficulty
        targets.buckets, targets.thresholds = list(diff.buckets), list(diff.thresholds)
        if diff.match:
            records, where = reference(diff.match)
            raw_d = _difficulty_from_reference(records, where, diff)
            targets.sources["difficulty"] = f"match:{diff.match}"
        elif diff.weights is not None:
            raw_d = {b: diff.weights.get(b, 0.0) for b in diff.buckets}
            targets.sources["difficulty"] = "weights"
        else:
            raw_d = dict.fromkeys(diff.buckets, 1.0)
            targets.sources["difficulty"] = "uniform"
        targets.difficulty = normalise(raw_d)
    return targets


def parse_targets(data: Any, where: str = "<targets>") -> TargetSpec:
    """Validate already-parsed YAML/JSON into a spec; errors name `where`."""
    if not isinstance(data, dict):
        raise TargetError(f"{where}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return TargetSpec.model_validate(data)
    except ValidationError as exc:
        lines = [f"{where}: invalid target file:"]
        for err in exc.errors():
            field, message = validation_problem(err)
            lines.append(f"  {field or '(top level)'}: {message}")
        raise TargetError("\n".join(lines)) from exc


def load_targets(
    path: str | Path,
    *,
    load_reference: ReferenceLoader | None = None,
    subject_map: SubjectDomains | None = None,
    skills: list[str] | None = None,
) -> Targets:
    """Read, validate and resolve a target YAML file."""
    path = Path(path)
    if path.is_dir():
        raise TargetError(f"{path}: is a folder, not a targets YAML file")
    if not path.is_file():
        raise TargetError(f"{path}: target file not found")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (DataError, UnicodeDecodeError) as exc:
        raise TargetError(str(exc) if isinstance(exc, DataError) else f"{path}: not valid UTF-8 text") from None
    spec = parse_targets(data, str(path))
    return resolve_targets(
        spec, path.parent, load_reference=load_reference, subject_map=subject_map, skills=skills
    )


def as_targets(targets: Targets | str | Path | Mapping[str, Any] | None) -> Targets:
    """Targets from a `Targets`, a target YAML file's path, or a mapping holding what such a file holds
    (`{"difficulty": {"weights": {"hard": 2, "medium": 1}}}`, docs/profiling.md), resolved as the file would
    be (`match` paths relative to the working folder); None: the defaults. A dict used to fail with an
    AttributeError deep inside the run; a bad one is a TargetError (a ConfigError) naming the field."""
    if isinstance(targets, Targets):
        return targets
    if targets is None:
        return Targets()
    if isinstance(targets, str | Path):
        return load_targets(targets)
    if not isinstance(targets, Mapping):
        raise ConfigError(f"targets: expected a Targets, a path to a target YAML file or a mapping, got "
                          f"{type(targets).__name__}")
    return resolve_targets(parse_targets(dict(targets), "targets"), Path("."))
