"""JSON responses rendered with orjson (compact UTF-8, as PROTOCOL 1.3 asks)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse


class JSONBody(JSONResponse):  # a JSONResponse, so OpenAPI shows the response models
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)
