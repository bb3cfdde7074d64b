"""Seeded random input for robustness tests: JSON values of every kind, wrong more often
than right (``random.Random(seed)`` makes a failure reproduce)."""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Sequence
from typing import Any

SEED = 20261202
"""One seed for every random-input test: a failure reproduces as it was."""
MESSAGE_FIELDS = (
    "type",
    "text",
    "local_id",
    "quoted_message_id",
    "options",
    "command",
    "external_file_url",
)
"""The input fields of a message (PROTOCOL 5.3)."""
TEXT_CHARACTERS = string.printable + "é\u0000\u2028\ud7ff\U0001f600"
ABSENT_ID = "01a237c0-3ca3-740a-9ea7-4eca07ba0ab3"  # a well-formed id of nothing


def json_value(rnd: random.Random, keys: Sequence[str], depth: int = 0) -> Any:
    """Any JSON value (integers beyond 64 bits among them: serialise with ``json``);
    objects take their keys from ``keys``."""
    makers: list[Callable[[], Any]] = [
        lambda: None,
        lambda: rnd.choice([True, False]),
        lambda: rnd.randint(-(2**70), 2**70),
        lambda: rnd.random() * 10 ** rnd.randint(-300, 300),
        lambda: "".join(rnd.choice(TEXT_CHARACTERS) for _ in range(rnd.randint(0, 40))),
        lambda: rnd.choice(["T", "V", "a", "i", "A", "S", "", "TT", "ECHO"]),
        lambda: ABSENT_ID,
        lambda: "x" * rnd.choice([1, 32, 33, 51, 101, 4000, 4001]),
    ]
    if depth < 3:
        makers.append(lambda: [json_value(rnd, keys, depth + 1) for _ in range(rnd.randint(0, 4))])
        makers.append(
            lambda: {
                rnd.choice(keys): json_value(rnd, keys, depth + 1) for _ in range(rnd.randint(0, 3))
            }
        )
    return rnd.choice(makers)()
