"""Render prompt templates as untrusted data: Jinja's immutable sandbox, no globals, data-only attributes.

Prompt packs may be downloaded, so a template must not be able to reach Python: no `_`-attributes
(`cycler.__init__.__globals__`), no globals at all (only the variables the caller passes), no methods
except the plain string/list/dict ones and `QAItem.render`, no mutation, and no arithmetic that builds
huge strings. A template that tries fails with `jinja2.SecurityError` (or `TemplateRejected` at load
time), which the loader reports naming the file.
"""

from __future__ import annotations

import functools
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel

MAX_SEQUENCE = 200_000  # longest string or list a template may build with `*`
MAX_EXPONENT = 64
MAX_OUTPUT_CHARS = 2_000_000
MODEL_METHODS = frozenset({"render"})  # QAItem.render: the item as the model sees it
MODEL_PROPERTIES = frozenset({"answer_text", "answer_letter"})


class TemplateRejected(ValueError):
    """A template uses a construct prompt packs may not use."""


class PromptSandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox with attribute access limited to data, and `*`/`**` size checks."""

    intercepted_binops = frozenset({"*", "**"})

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if isinstance(obj, str | int | float | bool | list | tuple | dict):
            return True  # builtin methods; the immutable sandbox already refuses the mutating ones
        if isinstance(obj, BaseModel):
            fields = type(obj).model_fields
            return attr in fields or attr in MODEL_PROPERTIES or attr in MODEL_METHODS
        if isinstance(obj, type):
            return False
        return not callable(value)  # other objects: plain data attributes only

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        raise SecurityError(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is not "
                            f"allowed in a prompt template")

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponent {right} is too large in a prompt template")
        if operator == "*":
            for seq, count in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(count, int) and \
                        len(seq) * max(count, 0) > MAX_SEQUENCE:
                    raise SecurityError("a prompt template may not build a string or list that large")
        return super().call_binop(context, operator, left, right)


@functools.lru_cache(maxsize=1)
def environment() -> PromptSandbox:
    env = PromptSandbox(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)
    env.globals.clear()  # no range, cycler, joiner, namespace, lipsum, dict: only what we pass
    return env


@functools.lru_cache(maxsize=512)
def _compiled(source: str) -> jinja2.Template:
    lint_template(source)
    return environment().from_string(source)


def lint_template(source: str) -> None:
    """Reject at load time what the sandbox would refuse at render time (with a clearer message)."""
    env = environment()
    tree = env.parse(source)
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        name = node.attr if isinstance(node, nodes.Getattr) else (
            node.arg.value if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str) else "")
        if name.startswith("_"):
            raise TemplateRejected(f"line {node.lineno}: attribute {name!r} is not allowed in a prompt template")
    from jinja2 import meta
    from jinja2.defaults import DEFAULT_NAMESPACE

    globals_used = sorted(meta.find_undeclared_variables(tree) & (set(DEFAULT_NAMESPACE) | {"self", "loop"}))
    if globals_used:
        raise TemplateRejected(f"{globals_used[0]!r} is not available in a prompt template (only the variables "
                               f"RefineLab passes are)")
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateRejected(f"line {node.lineno}: extends/include/import are not allowed in a prompt template")


def render_template(source: str, variables: dict[str, Any]) -> str:
    """Render `source` with `variables` only, in the sandbox; SecurityError/TemplateError on misuse."""
    template = _compiled(source)
    out: list[str] = []
    size = 0
    for chunk in template.generate(**variables):
        size += len(chunk)
        if size > MAX_OUTPUT_CHARS:
            raise SecurityError(f"a prompt template rendered more than {MAX_OUTPUT_CHARS} characters")
        out.append(chunk)
    return "".join(out)


class _Anything(jinja2.ChainableUndefined):
    """Stands in for variables a probe render does not know (any attribute, call or loop works)."""

    def __call__(self, *args: Any, **kwargs: Any) -> _Anything:  # type: ignore[override]
        return self

    def __iter__(self) -> Any:
        return iter(())


@functools.lru_cache(maxsize=1)
def _probe_environment() -> PromptSandbox:
    env = PromptSandbox(undefined=_Anything, keep_trailing_newline=False, autoescape=False)
    env.globals.clear()
    return env


def probe_template(source: str, variables: dict[str, Any]) -> None:
    """Render once with sample `variables` (anything else is a permissive stand-in) so a template that
    reaches for an unsafe attribute or method fails before a run starts; other errors are left to the
    real render, which has the real variables."""
    lint_template(source)
    try:
        _probe_environment().from_string(source).render(**variables)
    except SecurityError as exc:
        raise TemplateRejected(str(exc)) from None
    except Exception:  # noqa: BLE001,S110 - only sandbox violations matter here
        pass
