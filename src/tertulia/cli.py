"""``tertulia serve | migrate | bots``: parse, load Settings, call."""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import Sequence

from tertulia.errors import ConfigurationError
from tertulia.logs import configure_logging
from tertulia.settings import Settings, load_settings

YOUNG_COLLECTION_EVERY = 10_000  # new container objects between young collections (700)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tertulia", description="Tertulia chat controller")
    parser.add_argument("--config", help="TOML configuration file (default: $TERTULIA_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server (migrates the database first)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    bots = commands.add_parser("bots", help="list the configured bots")
    bots.add_argument("--config", dest="sub_config", help=argparse.SUPPRESS)
    return parser


def serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from tertulia.web.app import create_app
    from tertulia.web.wsprotocol import WebSocketProtocol

    app = create_app(settings)
    # What start-up built (modules, the app, the schema) lives as long as the process: out
    # of the collector's sight, a full collection no longer walks it on every round.
    gc.collect()
    gc.freeze()
    # A young collection every 10,000 new container objects rather than 700: a message
    # makes a few hundred, most gone by its end, and the collector's rounds were 3 % of the
    # instructions of an answered message (bench.instructions).
    gc.set_threshold(YOUNG_COLLECTION_EVERY, *gc.get_threshold()[1:])
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws=WebSocketProtocol,  # websockets-sansio, aborting connections stuck in closing
        ws_max_size=settings.ws_max_message,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = getattr(args, "sub_config", None) or args.config
    try:
        settings = load_settings(config)
    except ConfigurationError as exc:
        print(f"tertulia: configuration error: {exc.detail}", file=sys.stderr)
        return 2
    configure_logging(settings.log_format, settings.log_level)
    if args.command == "serve":
        serve(settings, args.host, args.port)
    elif args.command == "migrate":
        from tertulia.storage.migrate import upgrade_async

        asyncio.run(upgrade_async(settings.database_url, settings.database_schema))
        print("database is up to date")
    elif args.command == "bots":
        for name, spec in settings.bots.items():
            role = " (manager)" if name == settings.manager else ""
            required = " required" if spec.required else ""
            print(f"{name}{role}: {spec.module}.{spec.class_name}{required}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
