"""DRF's page-number pagination: ``{"count", "next", "previous", "results"}``, 100 a page."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from tertulia.errors import NotFound
from tertulia.web.params import whole_number

PAGE_SIZE = 100
PAGE_QUERY = "page number from 1, or `last`; 100 items a page"


def page_number(raw: str | None, *, count_hint: int | None = None) -> int | str:
    """The requested page: a number from 1, or ``"last"``.

    Raises:
        NotFound: ``{"detail": "Invalid page."}``.
    """
    if raw is None or raw == "":
        return 1
    if raw == "last":
        return "last"
    number = whole_number(raw)
    if number is None or number < 1:
        raise NotFound("Invalid page.")
    return number


def resolve_last(page: int | str, count: int) -> int:
    if page == "last":
        return max(1, -(-count // PAGE_SIZE))
    assert isinstance(page, int)
    return page


def check_in_range(page: int, count: int) -> None:
    if page > 1 and (page - 1) * PAGE_SIZE >= count:
        raise NotFound("Invalid page.")


def paginated(request: Request, page: int, count: int, results: list[Any]) -> dict[str, Any]:
    """The page wrapper, with absolute ``next`` / ``previous`` URLs keeping other parameters."""

    def link(number: int) -> str:
        if number == 1:
            return str(request.url.remove_query_params("page"))
        return str(request.url.include_query_params(page=number))

    has_next = page * PAGE_SIZE < count
    return {
        "count": count,
        "next": link(page + 1) if has_next else None,
        "previous": link(page - 1) if page > 1 else None,
        "results": results,
    }
