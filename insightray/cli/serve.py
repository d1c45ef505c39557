"""``insightray serve``: the clinical web service (REST API, viewer, metrics) via uvicorn.

Example:
    export INSIGHTRAY_HOME=/srv/insightray        # database, encrypted store, keys
    insightray users create ada --role admin --password-stdin
    insightray serve --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from insightray.cli.common import app, err


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    log_level: Annotated[
        str, typer.Option(help="uvicorn log level: critical, error, warning, info, debug.")
    ] = "info",
) -> None:
    """Run the web service on the bundled models and the database in $INSIGHTRAY_HOME.

    Data: $INSIGHTRAY_HOME (default ~/.local/share/insightray), created on first use.

    PostgreSQL instead of the embedded SQLite: set INSIGHTRAY_DATABASE_URL.

    First admin: insightray users create NAME --role admin --password-stdin

    API documentation: http://HOST:PORT/docs. Stop with Ctrl+C.
    """
    import uvicorn

    from insightray.serving.app import create_app
    from insightray.serving.settings import ServeSettings

    settings = ServeSettings.from_env()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    err.print(f"data directory: {settings.home}", highlight=False)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=10,
    )
