"""Prompt templates and domain packs, as files: YAML with Jinja templates and `include:` inheritance.

A pack (`packs/NAME.yaml`) names a parent with `include:`, may override single prompts under
`prompts:`, and sets pack options (e.g. `validator:`). Prompts themselves live in
`default/PROMPT.yaml` (`system:` and `user:` templates). A user folder passed as `user_dir` may hold
`packs/NAME.yaml` (new or overriding packs) and `PROMPT.yaml` files that override a default prompt
for every pack — no code needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import yaml

HERE = Path(__file__).resolve().parent
_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


class PromptError(ValueError):
    """A pack or prompt file that is missing, cyclic or malformed; names the file."""


@dataclass
class Pack:
    """A resolved domain pack: its prompts (name → {system, user}) and options, with where each came from."""

    name: str
    description: str = ""
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # prompt name → file it came from
    options: dict[str, Any] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)  # include chain, most specific first

    def messages(self, prompt: str, **variables: Any) -> list[dict[str, str]]:
        """Render one prompt into chat messages."""
        if prompt not in self.prompts:
            raise PromptError(f"pack {self.name!r} has no prompt {prompt!r}; has {sorted(self.prompts)}")
        template = self.prompts[prompt]
        out = []
        for role in ("system", "user"):
            if template.get(role):
                try:
                    text = _ENV.from_string(template[role]).render(**variables)
                except jinja2.TemplateError as exc:
                    raise PromptError(f"{self.sources.get(prompt)}: {role} template: {exc}") from exc
                out.append({"role": role, "content": text.strip()})
        return out


def _read(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise PromptError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping")
    return data


class PromptLibrary:
    """Finds packs in the user folder first, then the packaged ones."""

    def __init__(self, user_dir: str | Path | None = None) -> None:
        self.user_dir = Path(user_dir) if user_dir else None
        if self.user_dir is not None and not self.user_dir.is_dir():
            raise PromptError(f"{self.user_dir}: prompt folder not found")
        self._cache: dict[str, Pack] = {}

    def pack_names(self) -> list[str]:
        names = {p.stem for p in (HERE / "packs").glob("*.yaml")}
        if self.user_dir is not None:
            names |= {p.stem for p in (self.user_dir / "packs").glob("*.yaml")}
        return sorted(names)

    def _pack_file(self, name: str) -> Path:
        for root in ([self.user_dir] if self.user_dir else []) + [HERE]:
            path = root / "packs" / f"{name}.yaml"
            if path.is_file():
                return path
        raise PromptError(f"unknown pack {name!r}; known: {self.pack_names()}")

    def pack(self, name: str) -> Pack:
        if name not in self._cache:
            self._cache[name] = self._resolve(name, [])
        return self._cache[name]

    def _resolve(self, name: str, seen: list[str]) -> Pack:
        if name in seen:
            raise PromptError(f"pack include cycle: {' -> '.join([*seen, name])}")
        path = self._pack_file(name)
        data = _read(path)
        parent = data.pop("include", None)
        pack = self._resolve(parent, [*seen, name]) if parent else Pack(name=name)
        pack = Pack(name=name, description=pack.description, prompts=dict(pack.prompts),
                    sources=dict(pack.sources), options=dict(pack.options), chain=[name, *pack.chain])
        if "prompts_dir" in data:
            for prompt_file in sorted((HERE / data.pop("prompts_dir")).glob("*.yaml")):
                pack.prompts[prompt_file.stem] = _read(prompt_file)
                pack.sources[prompt_file.stem] = str(prompt_file)
        for prompt, template in (data.pop("prompts", None) or {}).items():
            merged = dict(pack.prompts.get(prompt, {}))
            merged.update(template)
            pack.prompts[prompt] = merged
            pack.sources[prompt] = str(path)
        pack.description = data.pop("description", pack.description)
        pack.options.update(data)
        if not seen and self.user_dir is not None:  # user prompt files override every pack
            for prompt_file in sorted(self.user_dir.glob("*.yaml")):
                override = _read(prompt_file)
                merged = dict(pack.prompts.get(prompt_file.stem, {}))
                merged.update(override)
                pack.prompts[prompt_file.stem] = merged
                pack.sources[prompt_file.stem] = str(prompt_file)
        return pack


PACK_BY_DOMAIN = {"STEM": "science", "humanities": "general", "social sciences": "general", "other": "general"}
PACK_BY_SUBJECT_WORD = {"math": "math", "algebra": "math", "statistics": "math", "law": "law",
                        "jurisprudence": "law"}


def pack_for(subject: str, domain: str, overrides: dict[str, str] | None = None) -> str:
    """The pack an item uses: an explicit override by subject or domain, else by keywords, else general."""
    overrides = overrides or {}
    if subject in overrides:
        return overrides[subject]
    if domain in overrides:
        return overrides[domain]
    for word, pack in PACK_BY_SUBJECT_WORD.items():
        if word in subject:
            return pack
    return PACK_BY_DOMAIN.get(domain, "general")
