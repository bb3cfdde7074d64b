"""REST routes under ``/api/chat/`` (PROTOCOL 3). Each path answers with and without its
trailing slash, without redirects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

Endpoint = Callable[..., Any]


def route(router: APIRouter, path: str, methods: list[str], **kwargs: Any) -> Callable[[Endpoint], Endpoint]:
    """Register ``path`` + ``/`` (documented) and ``path`` without the slash (hidden)."""

    def decorator(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(path + "/", endpoint, methods=methods, **kwargs)
        if path:
            hidden = {k: v for k, v in kwargs.items() if k != "name"}
            router.add_api_route(path, endpoint, methods=methods, include_in_schema=False, **hidden)
        return endpoint

    return decorator
