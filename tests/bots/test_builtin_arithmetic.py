"""The calculator's bounded evaluator (PROTOCOL 6.4, fixed)."""

from __future__ import annotations

import random
import time

import pytest

from tertulia.bots.builtin.arithmetic import MAX_DEPTH, MAX_DIGITS, MAX_TEXT, evaluate

# Generous: each of these takes well under a millisecond; the bound only catches runaways.
SECONDS_PER_INPUT = 0.5


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1+2", "3"),
        ("7*6", "42"),
        ("1/4", "0.25"),
        ("2**10", "1024"),
        ("-3", "-3"),
        ("+5", "5"),
        ("--3", "3"),
        ("  1 + 2  ", "3"),
        ("(1+2)*3", "9"),
        ("7//2", "3"),
        ("-7%3", "2"),
        ("7.5//2", "3.0"),
        ("1/3", "0.3333333333333333"),
        ("0.1+0.2", "0.30000000000000004"),
        ("2**-1", "0.5"),
        ("2**0.5", "1.4142135623730951"),
        ("1e3", "1000.0"),
        ("0x1f", "31"),
        ("0b101", "5"),
        ("0o17", "15"),
        ("1_000", "1000"),
        ("10-2-3", "5"),
        ("2**3**2", "512"),
        ("1.5e300*2", "3e+300"),
        ("(\n1\n+\n2\n)", "3"),
    ],
)
def test_accepted_expressions(text: str, expected: str) -> None:
    """Arithmetic on int and float literals answers Python's result as text."""
    assert evaluate(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "1 +",
        "1@2",
        "__import__('os')",
        "__import__('os').system('true')",
        "().__class__",
        "x",
        "abs(1)",
        "'a'*10",
        "b'a'",
        "f'{1}'",
        "[1]",
        "(1, 2)",
        "{1}",
        "lambda: 1",
        "1 if 1 else 2",
        "1<<9999999",
        "1<<2",
        "1>>1",
        "1&1",
        "1|1",
        "1^1",
        "~1",
        "not 1",
        "1<2",
        "1 and 2",
        "True",
        "True+1",
        "None",
        "...",
        "1j",
        "2+3j",
        "1;2",
        "import os",
        "1\x00",
        "\u0663",
        "\uff11+\uff12",
    ],
)
def test_refused_syntax(text: str) -> None:
    """Anything but numbers, unary +/- and + - * / // % ** is refused."""
    assert evaluate(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "1/0",
        "1//0",
        "1%0",
        "1.0/0",
        "0**-1",
        "0.0**-1",
        "1e308*10",
        "1e308+1e308",
        "1e999",
        "-1e999",
        "1e308**2",
        "(-8)**(1/3)",
        "(-8)**0.5",
        "10**4000/3",
        "(10**4000)**0.5",
        "(10**4000)*1.0",
    ],
)
def test_arithmetic_errors_are_refused(text: str) -> None:
    """Division by zero, overflow, infinities and complex results answer None."""
    assert evaluate(text) is None


@pytest.mark.parametrize(
    "text",
    [
        "9**9**9**9",
        "9**9**9",
        "10**5000",
        "2**2**2**2**2",
        "(9**9)**(9**9)",
        "2**13289",
        "(-2)**13289",
        "2**10000*2**3289",
        "(2**10000*2**3289)//2**3289",
        "-(10**4000)*10",
        "10**4000",
        "1**10001",
        "1**-10001",
        "0.5**20000",
    ],
)
def test_too_large_is_refused(text: str) -> None:
    """Huge exponents and results, final or intermediate, answer None at once."""
    started = time.perf_counter()
    assert evaluate(text) is None
    assert time.perf_counter() - started < SECONDS_PER_INPUT


def test_largest_integer_result() -> None:
    """An integer of MAX_DIGITS digits is answered in full; one more digit is refused."""
    assert evaluate(f"10**{MAX_DIGITS - 1}") == "1" + "0" * (MAX_DIGITS - 1)
    assert evaluate(f"-10**{MAX_DIGITS - 1}") == "-1" + "0" * (MAX_DIGITS - 1)
    assert evaluate(f"10**{MAX_DIGITS}") is None


def test_largest_exponent() -> None:
    """An exponent of 10,000 is accepted when the result is small enough."""
    assert evaluate("1**10000") == "1"
    assert evaluate("(-1)**10000") == "1"
    assert evaluate("2**10000") == str(2**10000)


def test_text_length_bound() -> None:
    """Texts up to MAX_TEXT characters are evaluated; longer ones are refused."""
    assert evaluate("9" * MAX_TEXT) == "9" * MAX_TEXT
    assert evaluate("9" * (MAX_TEXT + 1)) is None
    assert evaluate(" " * (MAX_TEXT - 1) + "1") == "1"


def test_nesting_bound() -> None:
    """Operators nested up to MAX_DEPTH deep are evaluated; deeper is refused."""
    assert evaluate("-" * MAX_DEPTH + "1") == "1"
    assert evaluate("-" * (MAX_DEPTH + 1) + "1") is None
    assert evaluate("+".join(["1"] * MAX_DEPTH)) == str(MAX_DEPTH)
    assert evaluate("+".join(["1"] * (MAX_DEPTH + 2))) is None
    assert evaluate("(" * 150 + "1" + ")" * 150) == "1"
    assert evaluate("(" * 400 + "1" + ")" * 400) is None


def _random_expression(rng: random.Random, depth: int) -> str:
    if depth == 0 or rng.random() < 0.3:
        return rng.choice(["0", "1", "2", "3", "7", "10", "0.5", "2.5", "1e3", "123456789"])
    if rng.random() < 0.15:
        return f"-({_random_expression(rng, depth - 1)})"
    operator = rng.choice(["+", "-", "*", "/", "//", "%"])
    left = _random_expression(rng, depth - 1)
    return f"({left}){operator}({_random_expression(rng, depth - 1)})"


def test_agrees_with_python_on_small_expressions() -> None:
    """Within bounds the result is exactly Python's, and Python's errors become None."""
    rng = random.Random(20240601)
    for _ in range(2000):
        text = _random_expression(rng, 4)
        try:
            expected: str | None = str(eval(text, {"__builtins__": {}}))
        except ArithmeticError:
            expected = None
        if expected in {"inf", "-inf", "nan"}:
            expected = None
        assert evaluate(text) == expected, text


NASTY_TOKENS = [
    "9", "99", "0", "1", ".5", "1e308", "-", "+", "*", "**", "/", "//", "%", "(", ")",
    " ", "9**9", "10**4000", "2**13288", "@", "<<", "j", "e", "x", "_", "'", "\\", "\n",
]  # fmt: skip


def test_nasty_inputs_answer_fast() -> None:
    """Random token soup never raises and each input is answered quickly."""
    rng = random.Random(7)
    for _ in range(3000):
        text = "".join(rng.choice(NASTY_TOKENS) for _ in range(rng.randint(1, 40)))
        started = time.perf_counter()
        result = evaluate(text)
        assert time.perf_counter() - started < SECONDS_PER_INPUT, text
        assert result is None or isinstance(result, str)


def test_power_towers_answer_fast() -> None:
    """Towers and chains of powers of every shape are refused or answered at once."""
    rng = random.Random(11)
    for _ in range(500):
        bases = [str(rng.choice([2, 3, 9, 10, 99, 12345, -7])) for _ in range(rng.randint(2, 6))]
        glue = rng.choice(["**", ")**(", "*", "**-"])
        text = "(" + glue.join(bases) + ")" if ")" in glue else glue.join(bases)
        started = time.perf_counter()
        evaluate(text)
        assert time.perf_counter() - started < SECONDS_PER_INPUT, text
