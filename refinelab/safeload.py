"""Parse untrusted JSON and YAML text without tracebacks: nesting, huge integers and odd values become a
one-line `DataError` naming the file (and line), never a RecursionError or a ValueError from deep inside.
"""

from __future__ import annotations

import ast
import datetime
import decimal
import io
import json
import math
import re
import tokenize
from typing import Any

import yaml

from refinelab.errors import DataError

MAX_DEPTH = 64  # QA items, settings and targets are a few levels deep; 64 leaves ample room
MAX_INT_DIGITS = 100
# What YAML anchors and aliases may add: a document may repeat an anchored value through `*alias` (a merge
# key `<<: *base` is the usual case), but its expanded size, roughly in characters, stays within this much
# more than twice its text (which no alias-free document reaches), so ten nested aliases of ten cannot
# expand to 10**10 values when a pack is printed or a setting written out.
MAX_YAML_EXPANSION = 1_000_000


def _too_deep(text: str, limit: int = MAX_DEPTH) -> bool:
    """True when brackets nest deeper than `limit` (a cheap scan that ignores brackets inside strings)."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _parse_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > MAX_INT_DIGITS:
        raise ValueError(f"integer with {len(digits)} digits (at most {MAX_INT_DIGITS})")
    return int(text)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


#: Characters of untrusted text that must never reach a reader as themselves: C0 controls (ESC sets a
#: terminal's title or plants a hyperlink; a newline fakes a line of output), DEL and C1 controls, zero-width
#: and bidi marks and overrides, line and paragraph separators (Trojan Source: they reorder or hide what
#: follows). The terminal shows them escaped (`cli/common.safe_text`), a dataset card drops them
#: (`api/results._text`): one list for both.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069]")


def loads_json(text: str, where: str, row: int | None = None) -> Any:
    """`json.loads` for untrusted text. DataError(where, row) for invalid JSON, nesting deeper than
    MAX_DEPTH, integers longer than MAX_INT_DIGITS, NaN/Infinity."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(text):
        raise DataError(where, row, None, f"JSON nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise DataError(where, row, None, f"not valid JSON: {exc.msg} (line {exc.lineno} column {exc.colno})") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise DataError(where, row, None, f"not valid JSON: {str(exc)[:200]}") from None


class _YAMLRefused(Exception):
    """A YAML document whose aliases expand too far, nest too deep or refer to themselves."""


class _BoundedLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that measures each node as it is composed, aliases expanded: its size (1 per
    container, 1 + length per scalar) and its nesting. PyYAML shares an aliased node, so loading a
    billion-value alias bomb is instant; the cost comes later, when the data is printed, copied or written
    as JSON (hours, or a RecursionError for a 5,000-deep alias chain). Measuring while composing refuses
    it before any of that, in time proportional to the text."""

    def __init__(self, stream: str, limit: int) -> None:
        super().__init__(stream)
        self._limit = limit
        self._shape: dict[int, tuple[int, int]] = {}  # id(node) → (expanded size, nesting); nodes live until done

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        alias = self.peek_event().anchor if self.check_event(yaml.AliasEvent) else None
        node = super().compose_node(parent, index)
        if id(node) in self._shape:
            return node  # an alias of a finished node: its measure is known
        if alias is not None:
            raise _YAMLRefused(f"YAML alias *{alias} refers to a value that contains it")
        if isinstance(node, yaml.ScalarNode):
            size, depth = 1 + len(node.value), 0
        else:
            children = ([c for pair in node.value for c in pair] if isinstance(node, yaml.MappingNode)
                        else list(node.value))
            shapes = [self._shape[id(c)] for c in children]
            size = 1 + sum(s for s, _ in shapes)
            depth = 1 + max((d for _, d in shapes), default=0)
        if depth > MAX_DEPTH:
            raise _YAMLRefused(f"YAML nested deeper than {MAX_DEPTH} levels")
        if size > self._limit:
            raise _YAMLRefused(f"YAML aliases expand it to more than {self._limit:,} characters")
        self._shape[id(node)] = (size, depth)
        return node


def load_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load` for untrusted text, with the same depth limit and one-line errors. Aliases are
    measured expanded (see `_BoundedLoader`): an alias bomb or a self-referring alias is a DataError."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(text.replace("'", '"')):
        raise DataError(where, None, None, f"YAML nested deeper than {MAX_DEPTH} levels")
    try:
        loader = _BoundedLoader(text, MAX_YAML_EXPANSION + 2 * len(text))  # its reader refuses control characters
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _YAMLRefused as exc:
        raise DataError(where, None, None, str(exc)) from None
    except yaml.YAMLError as exc:
        raise DataError(where, None, None, f"not valid YAML: {_yaml_problem(exc)}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise DataError(where, None, None, f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}") from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """What a YAML error says, on one line: its problem at its line and column (1-based), without PyYAML's
    `in "<unicode string>"` and the caret drawing, which mean nothing on one line."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if not problem:
        return " ".join(str(exc).split())[:300]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    context = getattr(exc, "context", None)
    return f"{' '.join(str(problem).split())[:200]}{where}" + (f" ({' '.join(str(context).split())[:100]})" if context else "")


def list_literal(text: str, where: str, row: int | None = None, field: str | None = None) -> list[str]:
    """The items of a list written as Python or numpy print one, as text: `['a', "b"]`, numpy's `['a' 'b']`
    (no commas: `ast.literal_eval` of the whole would join the strings), `[1, -2.5]`. How pandas writes a
    list column to CSV, and how MMLU-Redux's files hold their options. Read token by token: only string
    and number literals, commas and the outer brackets are accepted, so nothing is evaluated beyond one
    literal at a time; anything else is a DataError."""
    text = text.strip()
    if not (text.startswith("[") and text.endswith("]")):
        raise DataError(where, row, field, f"not a list: {text[:60]!r}")
    items: list[str] = []
    sign = ""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
                  if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER)]
        for index, token in enumerate(tokens):
            if token.type == tokenize.OP and token.string in "[]":
                if (token.string == "[") != (index == 0) or (token.string == "]") != (index == len(tokens) - 1):
                    raise ValueError("a list inside the list")
            elif token.type == tokenize.OP and token.string in (",", "-") and not sign:
                sign = "-" if token.string == "-" else ""
            elif token.type == tokenize.STRING and not sign:
                value = ast.literal_eval(token.string)
                if not isinstance(value, str):
                    raise ValueError(f"{token.string[:20]} is not text")
                items.append(value)
            elif token.type == tokenize.NUMBER:
                items.append(sign + token.string)
                sign = ""
            else:
                raise ValueError(f"unexpected {token.string[:20]!r}")
        if sign:
            raise ValueError("a '-' without a number")
    except (tokenize.TokenError, SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise DataError(where, row, field, f"not a list of texts or numbers: {str(exc)[:100]}") from None
    return items


def json_plain(value: Any, limit: int = MAX_DEPTH) -> Any:
    """`value` as plain JSON data that the loaders read back: the shape an item's `metadata` must have.

    A dataset handed over as records, a Hugging Face dataset or Parquet can carry what JSON cannot: dates,
    bytes, sets, NaN, integers too long for `loads_json`, nesting deeper than MAX_DEPTH. Each is made plain
    here (a date as ISO text, a set as a list, NaN/infinity as null, UTF-8 bytes as text) or refused with
    a ValueError naming where it sits, so that a run never pays for its work and then fails writing it, and
    never writes a file it cannot read back.
    """
    if type(value) is dict and all(type(k) is str and _flat_plain(v) for k, v in value.items()):
        return value  # the usual metadata, a few texts and numbers: nothing to walk (QAItem calls this per item)
    return _plain(value, "", 1, limit)


def _flat_plain(value: Any) -> bool:
    kind = type(value)
    return (kind is str or kind is bool or value is None or (kind is int and abs(value) < 10**MAX_INT_DIGITS)
            or (kind is float and math.isfinite(value)))


def _at(where: str) -> str:
    """The path to a value, its last 60 characters when it is longer (a deep path repeats itself)."""
    return "value" if not where else where if len(where) <= 60 else "…" + where[-60:]


def _plain(value: Any, where: str, depth: int, limit: int) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) >= 10**MAX_INT_DIGITS:
            raise ValueError(f"{_at(where)}: integer longer than {MAX_INT_DIGITS} digits")
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if hasattr(value, "tolist") and not isinstance(value, bytes):  # numpy scalars and arrays
        return _plain(value.tolist(), where, depth, limit)
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError(f"{_at(where)}: bytes that are not UTF-8 text") from None
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _plain(float(value), where, depth, limit)
    if isinstance(value, dict | list | tuple | set | frozenset):
        if depth > limit:
            raise ValueError(f"{_at(where)}: nested deeper than {limit} levels")
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, child in value.items():
                if not isinstance(key, str | int | float | bool) and key is not None:
                    raise ValueError(f"{_at(where)}: a key of type {type(key).__name__}")
                name = key if isinstance(key, str) else json.dumps(key)
                out[name] = _plain(child, f"{where}.{name}" if where else name, depth + 1, limit)
            return out
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_plain(child, f"{where}[{i}]", depth + 1, limit) for i, child in enumerate(items)]
    raise ValueError(f"{_at(where)}: a value of type {type(value).__name__} cannot be written as JSON")
