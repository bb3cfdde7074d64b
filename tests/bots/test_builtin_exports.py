"""The public names of tertulia.bots.builtin."""

from __future__ import annotations

import tertulia.bots.builtin as builtin
from tertulia.bots.base import Bot


def test_exported_classes() -> None:
    """The package exports exactly the five built-in bots, all Bot subclasses."""
    assert sorted(builtin.__all__) == [
        "CalcOrEchoManagerBot",
        "CalculatorBot",
        "PreSelectManagerBot",
        "TransparentManagerBot",
        "UpperCaseEchoBot",
    ]
    for name in builtin.__all__:
        exported = getattr(builtin, name)
        assert issubclass(exported, Bot)
        assert exported.__doc__
