"""The ``--where`` filter language: parsed by the project, evaluated column-wise, never executed.

A ``--where`` string (and the ``where`` recorded in a manifest's ``sampling`` metadata, which
``csmoe-data stats`` recomputes) is untrusted text. It is tokenised and parsed here by a small
recursive-descent parser into a tree of the constructs below, and the tree is evaluated with
vectorised pandas/numpy operations on the manifest's columns. Nothing is handed to ``eval``,
``DataFrame.eval``/``query`` or any other interpreter, so a string can name columns and
literals only: no attributes, calls, ``@variables``, indexing or imports.

The language (a subset of the pandas query syntax the README used before):

=============================  ==============================================================
``lc_40``, ```odd name```      a column (identifier, or any name between backticks)
``0.5``, ``1e-3``, ``12``      numbers
``'Dfb'``, ``"Dfb"``           strings (backslash escapes the quote and the backslash)
``True``, ``False``            booleans (also ``true``/``false``)
``+ - * / %``, unary ``-``     arithmetic on numeric columns and numbers
``== != < <= > >=``            comparisons (chained like Python: ``0.1 < lc_40 <= 0.5``)
``and or not`` / ``& | ~``     logic (``&``/``|`` bind like ``and``/``or``, as in pandas)
``x in [a, b]``, ``not in``    membership in a list of literals
``isna(x)``, ``notna(x)``      missing values (also ``x.isna()``, ``x.notna()``)
``( ... )``                    grouping
=============================  ==============================================================

Missing values never pass: a comparison with NaN/None is false, and a row whose condition is
missing counts as failing. Precedence, lowest first: ``or``, ``and``, ``not``, comparisons and
``in``, ``+ -``, ``* / %``, unary minus. Anything else (``@name``, ``a.b``, ``f(x)``, ``x[0]``,
``**``, ``;``) is a one-line :class:`WhereError` naming the offending token and its position.

Example::

    from csmoe_data.where import parse_where
    flt = parse_where("lc_40 > 0.5 and kg_major in ['Dfb', 'Dfc']")
    keep = flt.mask(pool)            # numpy bool array, one entry per row
    flt.breakdown(pool)              # [("lc_40 > 0.5", 812), ("kg_major in [...]", 97)]: rows failing each
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from csmoe_data.errors import CsmoeDataError

#: longest accepted expression, in characters (a filter is a line, not a program)
MAX_LENGTH = 4_000
#: deepest accepted nesting of parentheses, ``not``, unary signs and ``isna()`` (bounds the parser's
#: recursion)
MAX_DEPTH = 32
#: deepest accepted tree (a chain ``a + a + ...`` is one level per operator; bounds the evaluation)
MAX_TREE_DEPTH = 200

Kind = Literal["number", "string", "bool", "unknown"]


class WhereError(CsmoeDataError):
    """A ``--where`` string that is not a valid filter, or does not fit the manifest's columns."""


# ----------------------------------------------------------------------------------- tokens

_KEYWORDS = {"and", "or", "not", "in", "True", "False", "true", "false"}
_FUNCTIONS = {"isna", "notna"}
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<backtick>`[^`]*`)
  | (?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
  | (?P<op>==|!=|<=|>=|<|>|\+|-|\*|/|%|&|\||~|\(|\)|\[|\]|,|\.)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    """One lexical token.

    Attributes:
        kind: ``number``, ``name``, ``keyword``, ``backtick``, ``string``, ``op`` or ``end``.
        text: the token as written.
        pos: its character offset in the expression.
    """

    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens (an ``end`` token last).

    Raises:
        WhereError: at the first character that starts no token (``@``, ``$``, ``;``, ...).
    """
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            bad = text[pos]
            if bad in "'\"`":
                raise WhereError(f"unterminated quote {bad} at position {pos}")
            raise WhereError(f"unexpected {bad!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "space":
            if kind == "name" and m.group() in _KEYWORDS:
                kind = "keyword"
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


# ------------------------------------------------------------------------------------- tree


@dataclass(frozen=True)
class Node:
    """A node of the parsed tree; ``start``/``end`` delimit its source text."""

    start: int
    end: int


@dataclass(frozen=True)
class Column(Node):
    """A column of the manifest."""

    name: str


@dataclass(frozen=True)
class Literal_(Node):
    """A number, string or boolean."""

    value: float | int | str | bool


@dataclass(frozen=True)
class Unary(Node):
    """``-x``, ``+x`` or ``not x``."""

    op: str
    operand: Node


@dataclass(frozen=True)
class Binary(Node):
    """Arithmetic (``+ - * / %``) or logic (``and``, ``or``)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Compare(Node):
    """A (chained) comparison: ``operands[0] ops[0] operands[1] ops[1] operands[2] ...``."""

    ops: tuple[str, ...]
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Membership(Node):
    """``operand in [values]`` (``negated``: ``not in``)."""

    operand: Node
    values: tuple[float | int | str | bool, ...]
    negated: bool


@dataclass(frozen=True)
class Missing(Node):
    """``isna(operand)`` (``negated``: ``notna``)."""

    operand: Node
    negated: bool


_COMPARE = {"==", "!=", "<", "<=", ">", ">="}
_AND = {"and", "&"}
_OR = {"or", "|"}
_NOT = {"not", "~"}


class _Parser:
    """Recursive descent over the token list; one method per precedence level."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0

    # helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def at(self, *texts: str) -> bool:
        return self.tok.kind in ("op", "keyword", "name") and self.tok.text in texts

    def take(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str, what: str) -> Token:
        if not self.at(text):
            raise self.unexpected(f"expected {what}")
        return self.take()

    def unexpected(self, hint: str = "") -> WhereError:
        tok = self.tok
        if tok.kind == "end":
            msg = "unexpected end of expression"
        else:
            msg = f"unexpected {tok.text!r} at position {tok.pos}"
            if tok.text == "." and self.i > 0:
                msg += " (only .isna() and .notna() may follow a column)"
            elif tok.text in ("*", "/") and self.i > 0 and self.tokens[self.i - 1].text == "*":
                msg += " (** is not supported)"
        return WhereError(f"{msg}; {hint}" if hint else msg)

    def nested(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise WhereError(f"expression nested deeper than {MAX_DEPTH} levels")

    # grammar
    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise WhereError("empty expression")
        node = self.or_expr()
        if self.tok.kind != "end":
            raise self.unexpected("expected 'and', 'or' or the end of the expression")
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.at(*_OR):
            self.take()
            right = self.and_expr()
            node = Binary(node.start, right.end, "or", node, right)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while self.at(*_AND):
            self.take()
            right = self.not_expr()
            node = Binary(node.start, right.end, "and", node, right)
        return node

    def not_expr(self) -> Node:
        if self.at(*_NOT) and not self._not_in():
            start = self.take().pos
            self.nested()
            operand = self.not_expr()
            self.depth -= 1
            return Unary(start, operand.end, "not", operand)
        return self.comparison()

    def _not_in(self) -> bool:
        if self.tok.text != "not" or self.tok.kind != "keyword" or self.tok.kind == "end":
            return False
        nxt = self.tokens[min(self.i + 1, len(self.tokens) - 1)]
        return nxt.kind == "keyword" and nxt.text == "in"

    def comparison(self) -> Node:
        first = self.sum()
        if self.at("in") or self._not_in():
            negated = self.take().text == "not"
            if negated:
                self.take()  # "in"
            values, end = self.literal_list()
            return Membership(first.start, end, first, values, negated)
        ops: list[str] = []
        operands = [first]
        while self.tok.kind == "op" and self.tok.text in _COMPARE:
            ops.append(self.take().text)
            operands.append(self.sum())
        if not ops:
            return first
        return Compare(first.start, operands[-1].end, tuple(ops), tuple(operands))

    def literal_list(self) -> tuple[tuple[float | int | str | bool, ...], int]:
        close = {"[": "]", "(": ")"}
        if not self.at("[", "("):
            raise self.unexpected("expected a list [..] after 'in'")
        closing = close[self.take().text]
        values: list[float | int | str | bool] = []
        while not self.at(closing):
            values.append(self.literal())
            if not self.at(","):
                break
            self.take()
        end = self.expect(closing, f"',' or '{closing}' in the list").pos + 1
        return tuple(values), end

    def literal(self) -> float | int | str | bool:
        sign = 1
        if self.at("-", "+"):
            sign = -1 if self.take().text == "-" else 1
            if self.tok.kind != "number":
                raise self.unexpected("expected a number after the sign")
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return sign * _number(tok.text)
        if tok.kind == "string":
            self.take()
            return _unquote(tok.text)
        if tok.kind == "keyword" and tok.text in ("True", "False", "true", "false"):
            self.take()
            return tok.text in ("True", "true")
        raise self.unexpected("lists after 'in' hold numbers, strings and booleans only")

    def sum(self) -> Node:
        node = self.product()
        while self.at("+", "-"):
            op = self.take().text
            right = self.product()
            node = Binary(node.start, right.end, op, node, right)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.at("*", "/", "%"):
            op = self.take().text
            if self.at("*", "/"):
                raise self.unexpected()
            right = self.unary()
            node = Binary(node.start, right.end, op, node, right)
        return node

    def unary(self) -> Node:
        if self.at("-", "+"):
            tok = self.take()
            self.nested()
            operand = self.unary()
            self.depth -= 1
            return Unary(tok.pos, operand.end, tok.text, operand)
        return self.postfix()

    def postfix(self) -> Node:
        node = self.atom()
        while self.at("."):
            self.take()
            name = self.tok
            if name.kind != "name" or name.text not in _FUNCTIONS:
                raise self.unexpected("only .isna() and .notna() may follow a column")
            self.take()
            self.expect("(", "'('")
            end = self.expect(")", "')' (.isna() takes no argument)").pos + 1
            node = Missing(node.start, end, node, name.text == "notna")
        return node

    def atom(self) -> Node:
        tok = self.tok
        if tok.kind == "number":
            self.take()
            return Literal_(tok.pos, tok.pos + len(tok.text), _number(tok.text))
        if tok.kind == "string":
            self.take()
            return Literal_(tok.pos, tok.pos + len(tok.text), _unquote(tok.text))
        if tok.kind == "keyword" and tok.text in ("True", "False", "true", "false"):
            self.take()
            return Literal_(tok.pos, tok.pos + len(tok.text), tok.text in ("True", "true"))
        if tok.kind == "backtick":
            self.take()
            name = tok.text[1:-1]
            if not name:
                raise WhereError(f"empty column name `` at position {tok.pos}")
            return Column(tok.pos, tok.pos + len(tok.text), name)
        if tok.kind == "name":
            self.take()
            if tok.text in _FUNCTIONS and self.at("("):
                self.take()
                self.nested()
                operand = self.or_expr()
                self.depth -= 1
                end = self.expect(")", f"')' closing {tok.text}(").pos + 1
                return Missing(tok.pos, end, operand, tok.text == "notna")
            if self.at("("):
                raise WhereError(
                    f"unexpected call {tok.text}( at position {tok.pos}; "
                    "the only functions are isna() and notna()"
                )
            return Column(tok.pos, tok.pos + len(tok.text), tok.text)
        if self.at("("):
            start = self.take().pos
            self.nested()
            node = self.or_expr()
            self.depth -= 1
            end = self.expect(")", "')'").pos + 1
            return dataclasses.replace(node, start=start, end=end)  # the span keeps the parentheses
        raise self.unexpected("expected a column, a literal or '('")


def _number(text: str) -> float | int:
    value = float(text)
    if not math.isfinite(value):
        raise WhereError(f"number {text} is out of range")
    return int(text) if text.isdigit() else value


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1])


# ------------------------------------------------------------------------------- evaluation


@dataclass
class _Value:
    """An evaluated node: a Series (one value per row) or a scalar, and what kind of values."""

    data: Any
    kind: Kind
    source: str = field(default="")


def _kind_of(series: pd.Series) -> Kind:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_numeric_dtype(dtype):
        return "number"
    if pd.api.types.is_string_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        non_null = series.dropna()
        if len(non_null) and all(isinstance(v, str) for v in non_null.iloc[:1000]):
            return "string"
        if len(non_null) and all(isinstance(v, (bool, np.bool_)) for v in non_null.iloc[:1000]):
            return "bool"
        return "string" if len(non_null) == 0 else "unknown"
    return "unknown"


def _scalar_kind(value: Any) -> Kind:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


def _as_condition(values: Any, n: int) -> np.ndarray:
    """Booleans (missing = False) as a numpy array of ``n`` entries (scalars broadcast)."""
    if isinstance(values, pd.Series):
        return values.astype("boolean").fillna(False).to_numpy(dtype=bool)
    if values is None or values is pd.NA:
        return np.zeros(n, dtype=bool)
    return np.full(n, bool(values))


@dataclass(frozen=True)
class WhereFilter:
    """A parsed ``--where`` expression; see the module docstring for the language.

    Attributes:
        text: the expression as given.
        tree: its parsed form.
        source: what the expression came from (``--where``, or a manifest's metadata), for messages.
    """

    text: str
    tree: Node
    source: str = "--where"

    def _error(self, reason: str) -> WhereError:
        return WhereError(f"bad {self.source} expression {_shown(self.text)}: {reason}")

    def columns(self) -> list[str]:
        """The column names the expression uses, in order of appearance."""
        seen: dict[str, None] = {}
        for node in _walk(self.tree):
            if isinstance(node, Column):
                seen.setdefault(node.name)
        return list(seen)

    def conditions(self) -> list[str]:
        """The source text of each top-level ``and``-ed condition (one entry without ``and``)."""
        return [self.text[n.start : n.end] for n in _conjuncts(self.tree)]

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """One bool per row of ``frame``: True where the expression holds (missing is False).

        Raises:
            WhereError: unknown column, or an operation that does not fit the columns' types
                (arithmetic on text, a number used as a condition, ...).
        """
        return self._condition(self.tree, frame)

    def condition_masks(self, frame: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
        """For each top-level ``and``-ed condition, its text and where it holds.

        Raises:
            WhereError: see :meth:`mask`.
        """
        return [
            (self.text[node.start : node.end], self._condition(node, frame))
            for node in _conjuncts(self.tree)
        ]

    def breakdown(self, frame: pd.DataFrame) -> list[tuple[str, int]]:
        """For each top-level ``and``-ed condition, its text and the number of rows failing it.

        Raises:
            WhereError: see :meth:`mask`.
        """
        return [
            (self.text[node.start : node.end], int((~self._condition(node, frame)).sum()))
            for node in _conjuncts(self.tree)
        ]

    def _condition(self, node: Node, frame: pd.DataFrame) -> np.ndarray:
        self._check_columns(frame)
        value = self._eval(node, frame)
        if value.kind != "bool":
            raise self._error(
                f"{self.text[node.start : node.end]!r} is {_describe(value.kind)}, not a condition"
                " (compare it, e.g. x > 0)"
            )
        return _as_condition(value.data, len(frame))

    def _check_columns(self, frame: pd.DataFrame) -> None:
        missing = [c for c in self.columns() if c not in frame.columns]
        if missing:
            known = [str(c) for c in frame.columns if c != "geometry"]
            shown = ", ".join(known[:30]) + (
                f", ... ({len(known)} in all)" if len(known) > 30 else ""
            )
            raise self._error(f"unknown column {missing[0]!r}; columns: {shown}")

    def _eval(self, node: Node, frame: pd.DataFrame) -> _Value:
        src = self.text[node.start : node.end]
        if isinstance(node, Column):
            series = frame[node.name]
            if isinstance(series, pd.DataFrame):
                raise self._error(f"column name {node.name!r} is not unique in the manifest")
            return _Value(series, _kind_of(series), src)
        if isinstance(node, Literal_):
            return _Value(node.value, _scalar_kind(node.value), src)
        if isinstance(node, Unary):
            operand = self._eval(node.operand, frame)
            if node.op == "not":
                self._need(operand, "bool", "not")
                return _Value(_not(_boolean(operand.data)), "bool", src)
            self._need(operand, "number", node.op)
            return _Value(-operand.data if node.op == "-" else operand.data, "number", src)
        if isinstance(node, Binary):
            left, right = self._eval(node.left, frame), self._eval(node.right, frame)
            if node.op in ("and", "or"):
                self._need(left, "bool", node.op)
                self._need(right, "bool", node.op)
                a, b = _boolean(left.data), _boolean(right.data)
                return _Value(a & b if node.op == "and" else a | b, "bool", src)
            self._need(left, "number", node.op)
            self._need(right, "number", node.op)
            return _Value(_arith(node.op, left.data, right.data), "number", src)
        if isinstance(node, Compare):
            values = [self._eval(o, frame) for o in node.operands]
            result: Any = True
            for op, a, b in zip(node.ops, values, values[1:], strict=False):
                result = result & _boolean(self._compare(op, a, b))
            return _Value(result, "bool", src)
        if isinstance(node, Membership):
            operand = self._eval(node.operand, frame)
            for v in node.values:
                self._comparable(operand, _Value(v, _scalar_kind(v), repr(v)), "in")
            data = operand.data
            if isinstance(data, pd.Series):
                hit: Any = _boolean(data.isin(list(node.values))).mask(data.isna())
            else:
                hit = pd.NA if pd.isna(data) else data in node.values
            return _Value(_not(hit) if node.negated else hit, "bool", src)
        if isinstance(node, Missing):
            missing = _missing(self._eval(node.operand, frame).data)
            return _Value(_not(missing) if node.negated else missing, "bool", src)
        raise self._error(f"cannot evaluate {src!r}")  # pragma: no cover - every node is above

    def _need(self, value: _Value, kind: Kind, op: str) -> None:
        if value.kind != kind and not (value.kind == "unknown" and kind != "bool"):
            raise self._error(
                f"{op!r} needs {_describe(kind)}, but {value.source!r} is {_describe(value.kind)}"
            )

    def _comparable(self, a: _Value, b: _Value, op: str) -> None:
        kinds = {a.kind, b.kind}
        if len(kinds) == 1 or "unknown" in kinds or kinds == {"bool", "number"}:
            return
        raise self._error(
            f"cannot compare {a.source!r} ({_describe(a.kind)}) with {b.source!r} ({_describe(b.kind)}) using {op!r}"
        )

    def _compare(self, op: str, a: _Value, b: _Value) -> Any:
        self._comparable(a, b, op)
        if op in ("<", "<=", ">", ">=") and "bool" in (a.kind, b.kind) and a.kind != b.kind:
            raise self._error(f"{op!r} does not order booleans ({a.source!r} {op} {b.source!r})")
        x, y = a.data, b.data
        if isinstance(x, pd.Series) and x.dtype == object and b.kind == "number":
            x = pd.to_numeric(x, errors="coerce")  # a column of numbers read as objects
        if isinstance(y, pd.Series) and y.dtype == object and a.kind == "number":
            y = pd.to_numeric(y, errors="coerce")
        try:
            with warnings.catch_warnings(), np.errstate(all="ignore"):
                warnings.simplefilter("ignore")
                if op == "==":
                    result = x == y
                elif op == "!=":
                    result = x != y
                elif op == "<":
                    result = x < y
                elif op == "<=":
                    result = x <= y
                elif op == ">":
                    result = x > y
                else:
                    result = x >= y
        except TypeError:
            raise self._error(
                f"cannot compare {a.source!r} with {b.source!r} using {op!r} (mixed value types)"
            ) from None
        # a missing operand makes the comparison missing (so it fails, and so does its ``not``)
        missing = _missing(x) | _missing(y)
        if isinstance(result, pd.Series):
            return _boolean(result).mask(
                missing if isinstance(missing, pd.Series) else bool(missing)
            )
        return pd.NA if missing is True else result


def _not(x: Any) -> Any:
    if isinstance(x, pd.Series):
        return ~x
    return x if x is pd.NA else not x


def _missing(x: Any) -> Any:
    return x.isna() if isinstance(x, pd.Series) else bool(pd.isna(x))


def _boolean(x: Any) -> Any:
    """Booleans with missing kept as NA (Kleene logic): a Series of the nullable boolean dtype."""
    if isinstance(x, pd.Series):
        if x.dtype == object:
            return x.map(lambda v: pd.NA if v is None or v is pd.NA or v != v else bool(v)).astype(
                "boolean"
            )
        return x.astype("boolean")
    return bool(x) if not pd.isna(x) else pd.NA


def _arith(op: str, a: Any, b: Any) -> Any:
    if isinstance(a, pd.Series) and a.dtype == object:
        a = pd.to_numeric(a, errors="coerce")
    if isinstance(b, pd.Series) and b.dtype == object:
        b = pd.to_numeric(b, errors="coerce")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        if op == "/":
            if not isinstance(a, pd.Series) and not isinstance(b, pd.Series):
                return a / b if b != 0 else (math.nan if a == 0 else math.copysign(math.inf, a))
            return a / b
        if not isinstance(a, pd.Series) and not isinstance(b, pd.Series):
            return math.nan if b == 0 else a % b
        return a % b


def _describe(kind: Kind) -> str:
    return {
        "number": "a number",
        "string": "text",
        "bool": "a condition",
        "unknown": "of mixed type",
    }[kind]


def _walk(node: Node) -> Iterator[Node]:
    """Every node, parents before children, left to right."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(_children(current)))


def _conjuncts(node: Node) -> list[Node]:
    if isinstance(node, Binary) and node.op == "and":
        return _conjuncts(node.left) + _conjuncts(node.right)
    return [node]


def parse_where(text: str, source: str = "--where") -> WhereFilter:
    """Parse a filter expression (see the module docstring).

    Args:
        text: the expression.
        source: what it came from, named in error messages (``--where``, ``the manifest's where``).

    Raises:
        WhereError: the expression is empty, too long, too deep, or holds a token outside the
            language (the message names it and its position).
    """
    if not isinstance(text, str):
        raise WhereError(f"bad {source} expression: expected text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise WhereError(f"bad {source} expression: longer than {MAX_LENGTH} characters")
    try:
        tree = _Parser(text).parse()
        if _depth(tree) > MAX_TREE_DEPTH:
            raise WhereError(f"more than {MAX_TREE_DEPTH} operators in a chain")
    except WhereError as exc:
        raise WhereError(f"bad {source} expression {_shown(text)}: {exc}") from None
    return WhereFilter(text, tree, source)


def _shown(text: str, limit: int = 120) -> str:
    """The expression quoted for a message, cut when long (positions still refer to the full text)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + "..."


def _children(node: Node) -> Sequence[Node]:
    if isinstance(node, Unary):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Compare):
        return node.operands
    if isinstance(node, (Membership, Missing)):
        return (node.operand,)
    return ()


def _depth(tree: Node) -> int:
    """The tree's depth, computed without recursion (the tree may be deep)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((child, d + 1) for child in _children(node))
    return deepest
