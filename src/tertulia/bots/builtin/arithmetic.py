"""A bounded arithmetic evaluator: the calculator bot's rules, free of I/O (PROTOCOL 6.4).

Only numeric literals (``int``, ``float``; no ``bool``, ``complex`` or strings), unary ``+``
and ``-``, and the binary operators ``+ - * / // % **`` are accepted. Every input is
answered at once: the text length, the nesting depth, exponents and the size of every
intermediate result are bounded, so no input can run for long or use much memory.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable

MAX_TEXT = 1000
"""Longest accepted text, in characters."""
MAX_DEPTH = 200
"""Deepest accepted nesting of operators."""
MAX_EXPONENT = 10_000
"""Largest accepted absolute value of an exponent."""
MAX_DIGITS = 4000
"""Most decimal digits an integer result may have (Python refuses to print above 4300)."""
MAX_INT_BITS = math.ceil(MAX_DIGITS * math.log2(10))
"""Most bits an integer (final or intermediate) may have: about ``MAX_DIGITS`` digits."""

Number = int | float

# Letters only for number literals (1e5, 0x1f, 0o17, 0b101); anything else cannot be valid,
# and refusing it before parsing keeps the parser from emitting warnings about odd literals.
_CHARACTERS = re.compile(r"[0-9a-fA-FxXoObBeE_.+\-*/%() \t\r\n]*")

_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}


class _Refused(Exception):
    """The expression is outside what the calculator accepts."""


def evaluate(text: str) -> str | None:
    """Evaluate an arithmetic expression within fixed bounds.

    Args:
        text: the expression, e.g. ``"1 + 2*3"``; surrounding whitespace is ignored.

    Returns:
        The result as ``str(result)`` (``"3"``, ``"0.25"``), or ``None`` when the text is not
        an accepted expression or its value is out of bounds (too large, not finite, an
        arithmetic error such as a division by zero). Never raises.
    """
    if len(text) > MAX_TEXT or not _CHARACTERS.fullmatch(text):
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return _format(_evaluate(tree.body, 0))
    except Exception:
        # _Refused, SyntaxError, ArithmeticError, ValueError, MemoryError, RecursionError...:
        # whatever goes wrong, the answer is "?".
        return None


def _evaluate(node: ast.expr, depth: int) -> Number:
    if depth > MAX_DEPTH:
        raise _Refused("too deep")
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Refused("not a number")
        return _checked(value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _checked(_UNARY[type(node.op)](_evaluate(node.operand, depth + 1)))
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, ast.Pow):
            base = _evaluate(node.left, depth + 1)
            return _power(base, _evaluate(node.right, depth + 1))
        binary = _BINARY.get(type(node.op))
        if binary is not None:
            left = _evaluate(node.left, depth + 1)
            return _checked(binary(left, _evaluate(node.right, depth + 1)))
    raise _Refused("not allowed")


def _power(base: Number, exponent: Number) -> Number:
    """``base ** exponent``, refused before computing when the result would be too large."""
    if abs(exponent) > MAX_EXPONENT or _power_bits(base, exponent) > MAX_INT_BITS:
        raise _Refused("too large")
    result: object = base**exponent
    return _checked(result)


def _power_bits(base: Number, exponent: Number) -> float:
    """About how many bits ``base ** exponent`` has when it is an int that can grow, else 0.

    Only an int to a positive int power grows without bound; float powers overflow at once.
    """
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        return exponent * math.log2(abs(base))
    return 0.0


def _checked(value: object) -> Number:
    """``value`` if it is an int within bounds or a finite float (complex results refused)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > MAX_INT_BITS:
            raise _Refused("integer too large")
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise _Refused("not a finite real number")


def _format(value: Number) -> str | None:
    text = str(value)
    if isinstance(value, int) and len(text.lstrip("-")) > MAX_DIGITS:
        return None
    return text
