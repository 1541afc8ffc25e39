"""Parse untrusted JSON and YAML text without tracebacks: nesting, huge integers and odd values become a
one-line `DataError` naming the file (and line), never a RecursionError or a ValueError from deep inside.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from refinelab.errors import DataError

MAX_DEPTH = 64  # QA items, settings and targets are a few levels deep; 64 leaves ample room
MAX_INT_DIGITS = 100


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


def load_yaml(text: str, where: str) -> Any:
    """`yaml.safe_load` for untrusted text, with the same depth limit and one-line errors."""
    if text.count("[") + text.count("{") > MAX_DEPTH and _too_deep(text.replace("'", '"')):
        raise DataError(where, None, None, f"YAML nested deeper than {MAX_DEPTH} levels")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:300]
        raise DataError(where, None, None, f"not valid YAML: {first}") from None
    except (ValueError, RecursionError, MemoryError) as exc:
        raise DataError(where, None, None, f"not valid YAML: {type(exc).__name__}: {str(exc)[:200]}") from None


def check_depth(value: Any, where: str, limit: int = MAX_DEPTH) -> None:
    """DataError if an already-parsed value nests deeper than `limit` (iterative: no recursion)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                raise DataError(where, None, None, f"nested deeper than {limit} levels")
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children)
