"""An external bot in fifteen lines: greets, then answers every human text.

Run it beside a Tertulia (or BLAB) server, then install it there as a WebSocket bot::

    TERTULIA_URL=http://127.0.0.1:8000 .venv/bin/python examples/echo_bot.py

    # tertulia.toml
    [bots.Echo]
    module = "tertulia.bots.external"
    class = "WebSocketExternalBot"
    args = ["http://127.0.0.1:25220/"]
"""

import os

from tertulia.client import BotApp, ChatMessage, Conversation

bot = BotApp(os.environ.get("TERTULIA_URL", "http://127.0.0.1:8000"))


@bot.on_connect
async def greet(conversation: Conversation) -> None:
    await conversation.send("Hi! I repeat what you say.")


@bot.on_message
async def echo(conversation: Conversation, message: ChatMessage) -> None:
    await conversation.send(f"You said: {message.text}", quote=message)


if __name__ == "__main__":
    bot.run(port=int(os.environ.get("PORT", "25220")))
