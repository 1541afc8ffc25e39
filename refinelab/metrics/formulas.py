"""Whether two options are the same formula written differently ("r = k [B]^0" and "r = k").

Sentence embeddings read formulas by their characters: "r = k [B]^0" sits far from "r = k" although
anything to the power 0 is 1, so a distractor equal to the key passes a cosine test, while "r = k * t"
sits at cosine 0.89 from "r = k" and is dropped as a paraphrase although it is another formula. Options
of formulas are compared here by value instead: each is parsed by a small arithmetic grammar and the two
are evaluated at random points (polynomial identity testing; equal at every point means equal as
functions, with overwhelming probability).

Option text is untrusted, so nothing is handed to `eval` or to sympy's parser (which evaluates Python):
the tokenizer accepts numbers, short symbols, a few named functions, `+ - * / ^ ( ) [ ] =` and nothing
else, and the parser builds a tree of those only. Anything else — prose, units spelled out, a comparison —
is "not a formula" and the caller falls back to its other measures.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "ln": math.log, "log": math.log10, "exp": math.exp, "sqrt": math.sqrt,
    "sin": math.sin, "cos": math.cos, "tan": math.tan,
}
_CONSTANTS = {"π": math.pi, "pi": math.pi, "e": math.e}
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?|\.\d+)|(\[[A-Za-z][A-Za-z0-9+-]{0,6}\])|([A-Za-zα-ωΑ-Ω]+(?:_\w+|\d+)?)"
                    r"|(\*\*|[-+*/^()=]))")
_NORMALISE = str.maketrans({"−": "-", "–": "-", "×": "*", "·": "*", "⋅": "*", "÷": "/", "{": "(", "}": ")"})
# One stated quantity: a number (perhaps "× 10^-34") and then only unit text ("J s", "J T-1", "m/s", "kJ mol^-1"):
# the number rules compare these by value; read as a formula, "T-1" would be T minus 1 and every option ≈ −1.
_QUANTITY = re.compile(r"^\s*[-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:\s*[x×*·]\s*10\s*(?:\^|\*\*)\s*[-−]?\d+)?"
                       r"[\sA-Za-zµΩ°%/^·.\-−\d]*$")
_FORMULA_MARK = re.compile(r"[=+*/^\[\]]|(?<=\S)-")  # an operator or a bracketed concentration
_POINTS = 6
MAX_CHARS = 120  # longer text is no option-sized formula (and would deepen the recursive parser)
_RTOL = 1e-7


@dataclass(frozen=True)
class _Node:
    op: str  # "num", "var", "neg", "call", or a binary operator
    value: float = 0.0
    name: str = ""
    args: tuple[_Node, ...] = ()


class _NotAFormula(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    text = text.translate(_NORMALISE).strip().rstrip(".")
    if len(text) > MAX_CHARS:
        raise _NotAFormula("too long")  # an option, not a program: also bounds the parser's recursion
    out: list[str] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise _NotAFormula(text[pos:pos + 10])
        token = next(g for g in match.groups() if g is not None)
        out.extend(_symbols(token) if match.group(3) else ["^" if token == "**" else token])
        pos = match.end()
    return out


def _symbols(word: str) -> list[str]:
    """A run of letters as symbols: a function or constant name whole, else one symbol per letter ("πr" is
    π times r, "RT" is R times T) with a subscript kept on the last ("v_0", "x1"); a longer word is prose."""
    letters = re.match(r"[A-Za-zα-ωΑ-Ω]+", word).group(0)  # type: ignore[union-attr]
    suffix = word[len(letters):]
    if letters in _FUNCTIONS or letters in _CONSTANTS:
        if suffix:
            raise _NotAFormula(word)
        return [letters]
    if len(letters) > 2:
        raise _NotAFormula(word)  # a word: prose, not a formula
    symbols = [c if c == "π" or c not in _CONSTANTS else f"{c}'" for c in letters]  # the "e" of "Te" is a symbol
    symbols[-1] += suffix
    return symbols


class _Parser:
    """expr := term (("+"|"-") term)*; term := unary (("*"|"/"|implicit) unary)*;
    unary := "-" unary | power; power := atom ("^" unary)?; atom := number | symbol | f atom | "(" expr ")"."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise _NotAFormula("ends early")
        self.pos += 1
        return token

    def expr(self) -> _Node:
        node = self.term()
        while self.peek() in ("+", "-"):
            node = _Node(self.take(), args=(node, self.term()))
        return node

    def term(self) -> _Node:
        node = self.unary()
        while True:
            token = self.peek()
            if token in ("*", "/"):
                node = _Node(self.take(), args=(node, self.unary()))
            elif token is not None and token not in ("+", "-", ")", "^", "="):  # "2πr", "k [A]^2": implicit product
                node = _Node("*", args=(node, self.unary()))
            else:
                return node

    def unary(self) -> _Node:
        if self.peek() == "-":
            self.take()
            return _Node("neg", args=(self.unary(),))
        if self.peek() == "+":
            self.take()
        return self.power()

    def power(self) -> _Node:
        base = self.atom()
        if self.peek() == "^":
            self.take()
            return _Node("^", args=(base, self.unary()))
        return base

    def atom(self) -> _Node:
        token = self.take()
        if token == "(":
            node = self.expr()
            if self.take() != ")":
                raise _NotAFormula("unbalanced")
            return node
        if token[0].isdigit() or token[0] == ".":
            return _Node("num", value=float(token))
        if token in _FUNCTIONS:
            return _Node("call", name=token, args=(self.power(),))
        if token in _CONSTANTS:
            return _Node("num", value=_CONSTANTS[token])
        if token[0] == "[" or token[0].isalpha():
            return _Node("var", name=token)
        raise _NotAFormula(token)


def _parse(text: str) -> tuple[_Node | None, _Node] | None:
    """(left side or None, right side) of a formula, None when `text` is not one."""
    if not _FORMULA_MARK.search(text.translate(_NORMALISE)):
        return None
    try:
        tokens = _tokens(text)
        if tokens.count("=") > 1:
            return None
        sides = []
        for part in _split(tokens):
            parser = _Parser(part)
            node = parser.expr()
            if parser.peek() is not None:
                return None
            sides.append(node)
    except (_NotAFormula, RecursionError):
        return None
    return (sides[0], sides[1]) if len(sides) == 2 else (None, sides[0])


def _split(tokens: list[str]) -> list[list[str]]:
    if "=" not in tokens:
        return [tokens]
    at = tokens.index("=")
    return [tokens[:at], tokens[at + 1:]]


def _variables(node: _Node | None) -> set[str]:
    if node is None:
        return set()
    return ({node.name} if node.op == "var" else set()).union(*(_variables(a) for a in node.args))


def _value(node: _Node, point: dict[str, float]) -> float:
    op, args = node.op, node.args
    if op == "num":
        return node.value
    if op == "var":
        return point[node.name]
    if op == "neg":
        return -_value(args[0], point)
    if op == "call":
        return _FUNCTIONS[node.name](_value(args[0], point))
    left, right = _value(args[0], point), _value(args[1], point)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right
    return float(left ** right)


def _same_function(a: _Node, b: _Node, names: list[str], seed: int) -> bool | None:
    """True/False when both evaluate at enough random points, None when they cannot be compared."""
    rng = random.Random(seed)
    compared = 0
    for _ in range(_POINTS * 2):
        point = {name: rng.uniform(1.1, 3.7) for name in names}  # positive: ln and sqrt stay defined
        try:
            x, y = _value(a, point), _value(b, point)
        except (ArithmeticError, ValueError, TypeError):
            continue
        if not (isinstance(x, float) and isinstance(y, float) and math.isfinite(x) and math.isfinite(y)):
            continue
        if not math.isclose(x, y, rel_tol=_RTOL, abs_tol=0.0):  # relative only: 10^-34 is not 0
            return False
        compared += 1
        if compared >= _POINTS:
            return True
    return None


def formula_relation(key: str, candidate: str) -> str | None:
    """"same" when both options are formulas equal as functions (the same left side, if any, and right
    sides equal at every sampled point), "distinct" when both are formulas that differ, None when either is
    not a formula (prose, one stated quantity with its units, a comparison) or they cannot be evaluated."""
    if _QUANTITY.match(key) or _QUANTITY.match(candidate):
        return None
    parsed_key, parsed_candidate = _parse(key), _parse(candidate)
    if parsed_key is None or parsed_candidate is None:
        return None
    (key_left, key_right), (cand_left, cand_right) = parsed_key, parsed_candidate
    if (key_left is None) != (cand_left is None):
        return None
    names = sorted(_variables(key_left) | _variables(key_right) | _variables(cand_left) | _variables(cand_right))
    if not names:
        return None  # plain arithmetic: the number rules decide
    verdicts = [_same_function(key_right, cand_right, names, seed=0)]
    if key_left is not None and cand_left is not None:
        verdicts.append(_same_function(key_left, cand_left, names, seed=1))
    if None in verdicts:
        return None
    return "same" if all(verdicts) else "distinct"
