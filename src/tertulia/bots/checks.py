"""The bots' own configuration, checked when the server starts rather than at a delivery.

The settings check that every bot's class can be imported; what its ``args`` and
``kwargs`` mean only the class knows. A class that can tell a bad configuration without a
conversation (a webhook's secret variable unset, say) says so with a classmethod
``check_config(args, kwargs)`` raising :class:`~tertulia.errors.ConfigurationError`.
Without it the class's constructor raised that error at every delivery, each retried and
logged, while people saw the bot as working. Whatever the class says, its constructor's
signature must take the ``args`` and ``kwargs`` (a misspelt keyword used to pass start-up
and fail every delivery with a ``TypeError``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from tertulia.bots.arguments import check_signature
from tertulia.errors import ConfigurationError
from tertulia.settings import BotSpec


def check_bot(name: str, spec: BotSpec, cls: type) -> None:
    """Ask the bot's class whether its ``args`` and ``kwargs`` can work, then check that
    they fit its constructor at all (:func:`~tertulia.bots.arguments.check_signature`).

    Raises:
        ConfigurationError: one line naming the bot (``bot 'Reverse': webhook secret
            variable 'REVERSE_SECRET' is unset or empty``; ``bot 'Manager':
            CalcOrEchoManagerBot got an unexpected keyword argument …``).
    """
    args, kwargs = list(spec.args), dict(spec.kwargs)
    if not callable(getattr(cls, "receive_message", None)) and not hasattr(cls, "accepts_delivery"):
        # The runner would find nothing to call, and mark every delivery done in silence.
        # (A class that says which deliveries it takes may take none: a manager driven
        # over its socket, say.)
        close = difflib.get_close_matches("receive_message", dir(cls), n=1, cutoff=0.8)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigurationError(
            f"bot {name!r}: {cls.__name__} has no receive_message(message) method "
            f"(docs/bots.md){hint}"
        )
    try:
        check = getattr(cls, "check_config", None)
        if callable(check):  # (first: the class says what it takes in its own words)
            check(args, kwargs)
        check_signature(cls, args, kwargs)
    except ConfigurationError as exc:
        raise ConfigurationError(f"bot {name!r}: {exc.detail}") from exc


def check_bots(bots: Mapping[str, BotSpec]) -> None:
    """:func:`check_bot` for every bot of a configuration, in order.

    Raises:
        ConfigurationError: for the first bot whose class cannot be found, or that says its
            configuration cannot work.
    """
    for name, spec in bots.items():
        check_bot(name, spec, spec.resolve())
