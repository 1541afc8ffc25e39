"""What an item's text says about it, read by regular expressions: the numbers an answer states, and the
cheap signals that an item is computable (numbers and units in the stem, equations, compute verbs, numeric
options).

Two readers use the same signals: the validator's router (PoT or RAG, agents/validation/routing.py) and
the skill labeller (a computable item is `calculation`, agents/labels.py). They live here, below both,
so neither has to import the other. Pure functions on text; nothing is evaluated.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from refinelab.schema import QAItem

_ANSWER_NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+−]?\.\d+(?:[eE][-+]?\d+)?")
_FRACTION = re.compile(r"^\s*([-+−]?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*$")
_CURRENCY = re.compile(r"[$£€¥₹]|\b(?:usd|eur|gbp|rs\.?|dollars?|cents?)\b", re.IGNORECASE)
_UNIT_TAIL = re.compile(r"^\s*(?:%|percent|[a-zA-Zµμ°Ω/\^²³·.\-\s]{0,24})\s*$")


@dataclass(frozen=True)
class Number:
    value: float
    decimals: int  # digits after the point as written (for rounding-aware comparison)
    percent: bool


def parse_number(text: str) -> Number | None:
    """The single number a short answer states ("$1,200", "12.5%", "3/4", "4.2 m/s", "1e-3"), else None.

    Text with two numbers ("3 and 4") or with words beyond a short unit is not a number."""
    text = _CURRENCY.sub(" ", text.strip()).strip().rstrip(".").strip()
    if not text:
        return None
    fraction = _FRACTION.match(text)
    if fraction:
        den = float(fraction.group(2))
        if den == 0:
            return None
        return Number(float(fraction.group(1).replace("−", "-")) / den, 6, False)
    matches = list(_ANSWER_NUMBER.finditer(text))
    if len(matches) != 1 or text[: matches[0].start()].strip() not in ("", "=", "≈", "~"):
        return None
    tail = text[matches[0].end():]
    if not _UNIT_TAIL.match(tail):
        return None
    raw = matches[0].group(0).replace(",", "").replace("−", "-")
    try:
        value = float(raw)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    mantissa = raw.lower().split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return Number(value, decimals, "%" in tail or "percent" in tail.lower())


_UNITS = (r"%|percent|kg|g|mg|km|m|cm|mm|nm|µm|s|ms|min|h|hours?|seconds?|minutes?|days?|years?|m/s|km/h|mph|"
          r"N|J|kJ|eV|W|kW|V|A|Ω|ohms?|Hz|Pa|kPa|atm|mol|M|L|mL|K|°C|°F|°|degrees?|cal|kcal|T|C|dollars?|cents?")
_NUMBER_UNIT = re.compile(rf"\d(?:[\d,.]*\d)?\s*(?:{_UNITS})(?![A-Za-z])")
_STEM_NUMBER = re.compile(r"(?<![A-Za-z])\d+(?:[.,]\d+)?")
_YEAR = re.compile(r"^(1[0-9]{3}|20[0-9]{2})$")
_EQUATION = re.compile(r"\d\s*[-+*/×÷^=]\s*\(?\s*[\dxyzn]|[a-z]\s*\^\s*\d|[a-z]\s*=\s*[-\d(]|√|∫|∑|"
                       r"\b(?:sqrt|log|ln|sin|cos|tan|derivative|integral)\b", re.IGNORECASE)
_COMPUTE_WORDS = re.compile(r"\b(?:calculate|compute|how (?:many|much|long|far|fast)|what is the (?:value|"
                            r"probability|ratio|rate|speed|total|sum|product|average|mean)|solve|evaluate|"
                            r"estimate|find the|determine the)\b", re.IGNORECASE)


def route_signals(item: QAItem) -> dict[str, Any]:
    """Cheap evidence that an item is computable: numbers (not years) and units in the stem, equations,
    compute verbs, and the share of options that are numbers."""
    stem_numbers = [n for n in _STEM_NUMBER.findall(item.question) if not _YEAR.match(n.replace(",", ""))]
    numeric_options = sum(parse_number(c) is not None for c in item.choices) / len(item.choices)
    return {
        "stem_numbers": len(stem_numbers),
        "units": len(_NUMBER_UNIT.findall(item.question)),
        "equation": bool(_EQUATION.search(item.question)),
        "compute_words": bool(_COMPUTE_WORDS.search(item.question)),
        "numeric_options": round(numeric_options, 2),
    }


def regex_route(signals: dict[str, Any]) -> str | None:
    """'pot', 'rag', or None when the signals do not settle it (then the LLM decides)."""
    quantitative = signals["stem_numbers"] >= 2 or signals["units"] >= 1 or signals["equation"]
    if quantitative and (signals["numeric_options"] >= 0.5 or signals["compute_words"]):
        return "pot"
    if (signals["stem_numbers"] == 0 and not signals["equation"] and signals["numeric_options"] == 0
            and not signals["compute_words"]):
        return "rag"
    return None
