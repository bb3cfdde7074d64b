"""JSON responses rendered with orjson (compact UTF-8, as PROTOCOL 1.3 asks)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
