"""REST routes under ``/api/chat/`` (PROTOCOL 3). Each path answers with and without its
trailing slash, without redirects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

Endpoint = Callable[..., Any]


def route(
    router: APIRouter, path: str, methods: list[str], **kwargs: Any
) -> Callable[[Endpoint], Endpoint]:
    """Register ``path`` + ``/`` (documented) and ``path`` without the slash (hidden)."""

    def decorator(endpoint: Endpoint) -> Endpoint:
        # HEAD gets a route of its own, out of the schema: one route with GET and HEAD
        # would give two OpenAPI operations the same operationId.
        documented = [m for m in methods if m != "HEAD"] or methods
        hidden = {k: v for k, v in kwargs.items() if k != "name"}
        router.add_api_route(path + "/", endpoint, methods=documented, **kwargs)
        if documented != methods:
            router.add_api_route(
                path + "/", endpoint, methods=["HEAD"], include_in_schema=False, **hidden
            )
        # always, even for path "": the router's prefix then makes it e.g. "/conversations"
        router.add_api_route(path, endpoint, methods=methods, include_in_schema=False, **hidden)
        return endpoint

    return decorator
