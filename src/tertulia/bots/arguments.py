"""A bot class's ``args`` and ``kwargs`` checked against its constructor, at the start.

For a class's ``check_config`` (:mod:`tertulia.bots.checks`): the values of the
configuration are bound to the constructor's parameters (after ``conversation_info``), as
each delivery would bind them, and each checked against the parameter's annotation by
pydantic in strict mode (the constructor gets them unconverted: ``"5"`` where an ``int``
is expected would fail at every delivery, so it fails here; an ``int`` for a ``float`` is
fine), with the limits an ``Annotated`` parameter sets (:data:`Seconds`).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from tertulia.errors import ConfigurationError

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
"""A duration a constructor takes: more than 0, finite (an ``httpx`` timeout of 0 or NaN
fails every call)."""


def check_signature(cls: type, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Bind ``args`` and ``kwargs`` to the constructor's parameters after
    ``conversation_info``, as every delivery will (``cls(conversation_info, *args,
    **kwargs)``), without calling it. A class that takes ``*args`` or ``**kwargs`` (BLAB's
    ``Bot`` does) accepts whatever the configuration gives it.

    Raises:
        ConfigurationError: naming the class, what does not fit (``got an unexpected
            keyword argument 'calculator_botname'``) and the parameters it takes.
    """
    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):  # (a class Python cannot tell the signature of)
        return
    parameters = list(signature.parameters.values())[1:]  # (after conversation_info)
    named = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    takes = f"it takes {', '.join(named)}" if named else "it takes nothing more"
    if not any(p.kind is p.VAR_KEYWORD for p in parameters):
        # Said before a missing argument: a misspelt keyword is both, and the cause.
        keywords = [p.name for p in parameters if p.kind is not p.POSITIONAL_ONLY]
        for key in kwargs:
            if key not in keywords:
                close = difflib.get_close_matches(key, keywords, n=1)
                hint = f"; did you mean {close[0]}?" if close else f" ({takes})"
                raise ConfigurationError(
                    f"{cls.__name__}: got an unexpected keyword argument {key!r}{hint}"
                )
    try:
        signature.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"{cls.__name__}: {exc} ({takes})") from None


def bind_arguments(
    cls: type, args: list[Any], kwargs: dict[str, Any], *, usage: str
) -> dict[str, Any]:
    """Every constructor parameter of ``cls`` after ``conversation_info`` with its value
    from the configuration, or its default.

    Args:
        cls: the bot class.
        args: the spec's ``args``.
        kwargs: the spec's ``kwargs``.
        usage: what the class takes, said when they do not fit
            (``"WebhookBot takes args = [url, secret_env] …"``).

    Raises:
        ConfigurationError: arguments that do not fit the parameters, or a value not of
            its parameter's type.
    """
    init = cls.__init__  # type: ignore[misc]
    try:
        bound = inspect.signature(init).bind(None, None, *args, **kwargs)
    except TypeError as exc:
        raise ConfigurationError(f"{usage}: {exc}") from None
    bound.apply_defaults()
    values = dict(list(bound.arguments.items())[2:])  # (self, conversation_info)
    hints = typing.get_type_hints(init, include_extras=True)  # (with Annotated's limits)
    for name, value in values.items():
        hint = hints.get(name)
        if hint is None:
            continue
        try:
            TypeAdapter(hint).validate_python(value, strict=True)
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"]
            raise ConfigurationError(f"{cls.__name__}: {name} = {value!r}: {reason}") from None
    return values
