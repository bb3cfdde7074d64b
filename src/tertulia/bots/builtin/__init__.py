"""The built-in internal bots: BLAB's example bots and managers, bounded and fixed.

- :class:`UpperCaseEchoBot` and :class:`CalculatorBot` answer humans (PROTOCOL 6.4).
- :class:`TransparentManagerBot`, :class:`CalcOrEchoManagerBot` and
  :class:`PreSelectManagerBot` are managers (PROTOCOL 7.5).
"""

from tertulia.bots.builtin.calc_or_echo import CalcOrEchoManagerBot
from tertulia.bots.builtin.calculator import CalculatorBot
from tertulia.bots.builtin.echo import UpperCaseEchoBot
from tertulia.bots.builtin.preselect import PreSelectManagerBot
from tertulia.bots.builtin.transparent import TransparentManagerBot

__all__ = [
    "CalcOrEchoManagerBot",
    "CalculatorBot",
    "PreSelectManagerBot",
    "TransparentManagerBot",
    "UpperCaseEchoBot",
]
