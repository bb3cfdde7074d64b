"""A webhook bot: checks each delivery's signature and answers inline with the text reversed.

Run it with the same secret as the server::

    export REVERSE_SECRET=$(python -c 'import secrets; print(secrets.token_hex(32))')
    .venv/bin/python examples/webhook_bot.py          # listens on http://127.0.0.1:25221/hook

    # tertulia.toml (the server's environment has REVERSE_SECRET too)
    [bots.Reverse]
    module = "tertulia.bots.external"
    class = "WebhookBot"
    args = ["http://127.0.0.1:25221/hook", "REVERSE_SECRET"]
"""

import json
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tertulia.client import SIGNATURE_HEADER, verify_signature


async def hook(request: Request) -> Response:
    body = await request.body()  # the signature covers these exact bytes
    if not verify_signature(
        os.environ["REVERSE_SECRET"], body, request.headers.get(SIGNATURE_HEADER)
    ):
        return Response(status_code=401)
    message = json.loads(body)["message"]
    if not message["sent_by_human"] or message["type"] != "T":
        return Response(status_code=204)  # system events, bots: nothing to say
    answer = {"type": "T", "text": message["text"][::-1], "quoted_message_id": message["id"]}
    return JSONResponse({"messages": [answer]})


app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])

if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=int(os.environ.get("PORT", "25221")))
