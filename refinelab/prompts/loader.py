"""Prompt templates and domain packs, as files: YAML with Jinja templates and `include:` inheritance.

A pack (`packs/NAME.yaml`) names a parent with `include:`, may override single prompts under
`prompts:`, and sets pack options (e.g. `validator:`). It may name its validator `tools:` (built-in
methods, `module:function` references or `refinelab.tools` entry-point names; the validator's router
chooses among them) and a retrieval `corpus:` (a JSONL file or folder, relative to the pack file). Prompts themselves live in
`default/PROMPT.yaml` (`system:` and `user:` templates). A user folder passed as `user_dir` may hold
`packs/NAME.yaml` (new or overriding packs) and `PROMPT.yaml` files that override a default prompt
for every pack — no code needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2

from refinelab.atomic import open_regular
from refinelab.errors import ConfigError, DataError
from refinelab.prompts.sandbox import TemplateRejected, lint_template, probe_template, render_template
from refinelab.safeload import json_plain, load_yaml

HERE = Path(__file__).resolve().parent
_PACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# a tool reference: a built-in method or entry-point name, or an importable `package.module:attribute`
TOOL_REF = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*|[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_TOOLS = 16


class PromptError(ConfigError, ValueError):
    """A pack or prompt file that is missing, cyclic, malformed or unsafe; names the file."""


@dataclass
class Pack:
    """A resolved domain pack: its prompts (name → {system, user}) and options, with where each came from."""

    name: str
    description: str = ""
    prompts: dict[str, dict[str, str]] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # prompt name → file it came from
    options: dict[str, Any] = field(default_factory=dict)
    chain: list[str] = field(default_factory=list)  # include chain, most specific first
    tools: list[str] = field(default_factory=list)  # validator tools the router chooses among ([] = `validator:`)
    corpus: str | None = None  # retrieval corpus for this pack's items (absolute path), None = the run's

    def messages(self, prompt: str, **variables: Any) -> list[dict[str, str]]:
        """Render one prompt into chat messages."""
        if prompt not in self.prompts:
            raise PromptError(f"pack {self.name!r} has no prompt {prompt!r}; has {sorted(self.prompts)}")
        template = self.prompts[prompt]
        out = []
        for role in ("system", "user"):
            if template.get(role):
                try:
                    text = render_template(template[role], variables)
                except (jinja2.TemplateError, TemplateRejected) as exc:
                    raise PromptError(f"{self.sources.get(prompt)}: {role} template of {prompt!r}: "
                                      f"{type(exc).__name__}: {exc}") from None
                out.append({"role": role, "content": text.strip()})
        return out


def _read(path: Path, root: Path | None = None) -> dict[str, Any]:
    """A prompt or pack file's YAML mapping. From a user folder (`root`) it must resolve inside that folder:
    a link anywhere on the way (the file, or `packs/` itself) to a file elsewhere is refused, since checking
    only the file let a linked `packs/` folder read any YAML on the machine. It must be a regular file
    (`atomic.open_regular`): a named pipe hung `refinelab packs show`."""
    if root is not None and not path.resolve().is_relative_to(root.resolve()):
        raise PromptError(f"{path}: reached through a link to outside {root}; refusing to read it")
    try:
        with open_regular(path) as handle:
            data = load_yaml(handle.read().decode("utf-8"), str(path)) or {}
    except DataError as exc:
        raise PromptError(str(exc)) from None
    except (UnicodeDecodeError, OSError) as exc:
        raise PromptError(f"{path}: cannot be read as UTF-8 text ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise PromptError(f"{path}: expected a mapping")
    return data


def _check_templates(path: Path, prompts: Any) -> None:
    """Every template a user file brings compiles and passes the sandbox lint (no `_` attributes)."""
    items = prompts.items() if isinstance(prompts, dict) else []
    for name, template in items:
        if not isinstance(template, dict):
            raise PromptError(f"{path}: prompt {name!r}: expected a mapping with system:/user: templates")
        for role, text in template.items():
            if not isinstance(text, str):
                raise PromptError(f"{path}: prompt {name!r}, {role}: expected a template string")
            try:
                lint_template(text)
            except (jinja2.TemplateError, TemplateRejected) as exc:
                raise PromptError(f"{path}: prompt {name!r}, {role} template: {type(exc).__name__}: {exc}") from None


def _tool_refs(path: Path, value: Any) -> list[str]:
    """`tools:` as a list of references, each checked for shape only (loading happens when a run uses it)."""
    if not isinstance(value, list) or len(value) > MAX_TOOLS:
        raise PromptError(f"{path}: tools: expected a list of at most {MAX_TOOLS} tool names")
    for index, ref in enumerate(value):
        if not isinstance(ref, str) or not TOOL_REF.fullmatch(ref):
            raise PromptError(f"{path}: tools[{index}]: {ref!r} is not a tool name, an entry-point name or "
                              "a `package.module:function` reference")
    return list(value)


def _corpus_path(path: Path, value: Any) -> str:
    """`corpus:` as an absolute path (relative ones are read next to the pack file); it must exist."""
    if not isinstance(value, str) or not value.strip() or "\x00" in value:
        raise PromptError(f"{path}: corpus: expected a path to a JSONL file or a folder")
    corpus = Path(value).expanduser()
    corpus = corpus if corpus.is_absolute() else path.parent / corpus
    if not corpus.exists():
        raise PromptError(f"{path}: corpus: {corpus} does not exist")
    return str(corpus.resolve())


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

    def pack_file(self, name: str) -> Path:
        """The file pack `name` is read from: the user folder's first, else the packaged one."""
        if not isinstance(name, str) or not _PACK_NAME.fullmatch(name):
            raise PromptError(f"pack name {name!r}: use letters, digits, '_' or '-' (no paths)")
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
        path = self.pack_file(name)
        user_file = self.user_dir is not None and path.is_relative_to(self.user_dir)
        data = _read(path, self.user_dir if user_file else None)
        if user_file:
            _check_templates(path, data.get("prompts"))
        parent = data.pop("include", None)
        pack = self._resolve(parent, [*seen, name]) if parent else Pack(name=name)
        pack = Pack(name=name, description=pack.description, prompts=dict(pack.prompts),
                    sources=dict(pack.sources), options=dict(pack.options), chain=[name, *pack.chain],
                    tools=list(pack.tools), corpus=pack.corpus)
        if "tools" in data:
            pack.tools = _tool_refs(path, data.pop("tools"))
        if "corpus" in data:
            pack.corpus = _corpus_path(path, data.pop("corpus"))
        if "prompts_dir" in data:
            folder = HERE / str(data.pop("prompts_dir"))
            if user_file or not folder.resolve().is_relative_to(HERE):
                raise PromptError(f"{path}: prompts_dir is for packaged packs only (and must stay inside {HERE})")
            for prompt_file in sorted(folder.glob("*.yaml")):
                pack.prompts[prompt_file.stem] = _read(prompt_file)
                pack.sources[prompt_file.stem] = str(prompt_file)
        for prompt, template in (data.pop("prompts", None) or {}).items():
            merged = dict(pack.prompts.get(prompt, {}))
            merged.update(template)
            pack.prompts[prompt] = merged
            pack.sources[prompt] = str(path)
        pack.description = data.pop("description", pack.description)
        try:  # options are free-form (`validator:` and what a hook reads): plain JSON data, as a run records it
            pack.options.update(json_plain(data))
        except ValueError as exc:
            raise PromptError(f"{path}: pack options: {exc}") from None
        if not seen and self.user_dir is not None:  # user prompt files override every pack
            for prompt_file in sorted(self.user_dir.glob("*.yaml")):
                override = _read(prompt_file, self.user_dir)
                _check_templates(prompt_file, {prompt_file.stem: override})
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


def check_prompts(library: PromptLibrary) -> None:
    """Load every pack the library's user folder affects, lint its templates and probe-render each one
    with a sample item, before a run starts: a malformed or unsafe prompt pack is a one-line PromptError
    (exit 2) naming the file, and the run folder is never created. Nothing to check without a user folder."""
    if library.user_dir is None:
        return
    from refinelab.schema import QAItem

    sample = QAItem(id="sample", question="Which is a prime number?", choices=["4", "6", "7", "9"], answer=2,
                    subject="sample", domain="other", skill="recall", difficulty=0.5)
    variables = {"item": sample, "base": sample, "first": sample, "second": sample, "skills": ["recall"],
                 "feedback": "", "n_choices": 4, "examples": [sample], "bucket": "medium",
                 "direction": "harder", "problem": "a problem", "passages": "a passage",
                 "skill_examples": {"recall": ["Which is the largest planet?"]}, "weak": ["4"], "n_candidates": 9,
                 "count": 3}
    for name in library.pack_names():
        pack = library.pack(name)
        for prompt, template in pack.prompts.items():
            if not str(pack.sources.get(prompt, "")).startswith(str(library.user_dir)):
                continue  # packaged prompts are trusted code
            for role, text in template.items():
                try:
                    probe_template(str(text), variables)
                except (jinja2.TemplateError, TemplateRejected) as exc:
                    raise PromptError(f"{pack.sources.get(prompt)}: {role} template of {prompt!r}: "
                                      f"{type(exc).__name__}: {exc}") from None
