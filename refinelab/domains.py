"""Subject → domain map and the skill taxonomy, loaded from editable YAML (packaged defaults + user override).

Coverage is measured over domain × skill cells; domains come from a subject map so MMLU-style data is
labelled for free, and users can re-map or add subjects without touching code.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from refinelab.errors import DataError
from refinelab.safeload import load_yaml

DEFAULT_SUBJECT_DOMAINS = "subject_domains.yaml"
DEFAULT_SKILLS = "skills.yaml"
UNSURE = "unsure"  # the skill label when the classifier cannot tell (an explicit answer, never an empty cell)


def subject_key(subject: str) -> str:
    """Canonical subject key: lower case, spaces/hyphens as underscores ("High School Physics" → high_school_physics)."""
    return re.sub(r"[\s\-]+", "_", subject.strip().lower())


def _read_yaml(path: Path | None, default_name: str) -> tuple[dict[str, Any], str]:
    if path is None:
        text = resources.files("refinelab").joinpath("data", default_name).read_text(encoding="utf-8")
        where = f"refinelab/data/{default_name}"
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: file not found")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:  # a user's subject map is untrusted: the same depth, alias and size limits as every YAML read
        data = load_yaml(text, where) or {}
    except DataError as exc:
        raise ValueError(str(exc)) from None
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping at the top level")
    return data, where


class SubjectDomains(BaseModel):
    """The list of domains and the subject → domain mapping; every mapped domain must be listed."""

    model_config = ConfigDict(extra="forbid")

    domains: list[str] = Field(min_length=1)
    subjects: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> SubjectDomains:
        self.subjects = {subject_key(s): d for s, d in self.subjects.items()}
        unknown = sorted({d for d in self.subjects.values() if d not in self.domains})
        if unknown:
            raise ValueError(f"subjects map to domains not in `domains`: {unknown}")
        return self

    def domain_for(self, subject: str, default: str | None = None) -> str | None:
        """Domain of a subject, or `default` when the subject is not in the map (then an LLM labels it)."""
        return self.subjects.get(subject_key(subject), default)


class SkillTaxonomy(BaseModel):
    """Skill names with one-line descriptions, in the order prompts and reports show them."""

    model_config = ConfigDict(extra="forbid")

    skills: dict[str, str] = Field(min_length=1)
    # Few-shot examples per skill (short stems), shown to the labeller so a small model sees what each
    # skill looks like instead of guessing from one-line definitions.
    examples: dict[str, list[str]] = Field(default_factory=dict)
    # How the writer makes a new item test each skill (expand prompts, `skill_writing`): one instruction per
    # skill, beside its description. The labeller never reads them.
    writing: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _examples_name_skills(self) -> SkillTaxonomy:
        for field in ("examples", "writing"):
            unknown = sorted(set(getattr(self, field)) - set(self.skills))
            if unknown:
                raise ValueError(f"{field} for skills not in `skills`: {unknown}")
        if UNSURE in self.skills:
            raise ValueError(f"{UNSURE!r} is reserved: the labeller's answer when no skill fits")
        return self

    @property
    def names(self) -> list[str]:
        return list(self.skills)


def load_subject_domains(path: str | Path | None = None, *, merge: bool = True) -> SubjectDomains:
    """Packaged map, with `path`'s entries overriding/extending it (or replacing it when merge=False)."""
    base, _ = _read_yaml(None, DEFAULT_SUBJECT_DOMAINS)
    if path is None:
        return SubjectDomains.model_validate(base)
    user, where = _read_yaml(Path(path), DEFAULT_SUBJECT_DOMAINS)
    if merge:
        domains = list(base.get("domains", []))
        domains += [d for d in user.get("domains", []) if d not in domains]
        subjects = {subject_key(s): d for s, d in (base.get("subjects") or {}).items()}
        subjects.update({subject_key(s): d for s, d in (user.get("subjects") or {}).items()})
        data: dict[str, Any] = {"domains": domains, "subjects": subjects}
    else:
        data = user
    try:
        return SubjectDomains.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{where}: invalid subject → domain map:\n{exc}") from exc


def load_skills(path: str | Path | None = None) -> SkillTaxonomy:
    """The packaged skill taxonomy, or the user's file instead of it."""
    data, where = _read_yaml(Path(path) if path is not None else None, DEFAULT_SKILLS)
    try:
        return SkillTaxonomy.model_validate(data)
    except ValidationError as exc:
        raise ValueError(f"{where}: invalid skill taxonomy:\n{exc}") from exc
