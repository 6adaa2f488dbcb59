"""``modelward server``: run the model hub, or migrate its database."""

from __future__ import annotations

import socket
from pathlib import Path

import typer

from modelward.cli.common import echo
from modelward.errors import UsageError

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""uvicorn's log levels."""

app = typer.Typer(
    name="server",
    help="Run the curated internal model hub (Hugging Face, OCI and Ollama protocols).",
    invoke_without_command=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EPILOG = """\b
Examples:
  modelward server                                   # SQLite + blobs under ./modelward-data
  modelward server --host 0.0.0.0 --port 8000 --data /srv/modelward
  MODELWARD_ADMIN_TOKEN=... modelward server         # scripted setup: a known admin token
  modelward server --database postgresql+psycopg://hub@db/hub --config hub.yaml
  modelward server migrate --database postgresql+psycopg://hub@db/hub

\b
Then, on a developer machine:
  HF_ENDPOINT=http://hub:8000 HF_TOKEN=<token> hf download acme/llama-3-8b
  ollama pull hub:8000/acme/llama3:8b --insecure
"""

_CONFIG = typer.Option(
    None, "--config", "-c", help="YAML settings file (keys as in MODELWARD_* without the prefix)."
)
_DATA = typer.Option(None, "--data", help="Data folder (default ./modelward-data).")
_DATABASE = typer.Option(
    None, "--database", help="Database URL (default SQLite in the data folder)."
)


@app.callback(epilog=EPILOG)
def server_command(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", help="TCP port to listen on (1-65535)."),
    data: Path | None = _DATA,
    database: str | None = _DATABASE,
    config: Path | None = _CONFIG,
    log_level: str = typer.Option(
        "info", "--log-level", help=f"uvicorn log level: {', '.join(LOG_LEVELS)}."
    ),
) -> None:
    """Start the hub. On first start an admin token is printed once (or set MODELWARD_ADMIN_TOKEN)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"data": data, "database": database, "config": config}
        return
    # Everything that can be checked is checked before the database is opened or a token made.
    level = _check_options(port, log_level)
    import uvicorn

    from modelward.server.app import Startup, create_app
    from modelward.server.settings import load_settings

    settings = load_settings(config, data_dir=data, database_url=database)
    check_listen(host, port)
    startup = Startup()
    fastapi_app = create_app(settings, startup)
    if startup.admin_token:
        echo(
            "modelward: created the first admin token (shown once, store it now):\n"
            f"  {startup.admin_token}",
            err=True,
        )
    shown = f"[{host}]" if ":" in host else host
    echo(f"modelward hub on http://{shown}:{port} (data: {settings.data_dir})", err=True)
    # Keep idle connections longer than the clients' pools do (uvicorn's default is 5 s): a client
    # that reuses a pooled connection the server has just closed has to retry its request.
    uvicorn.run(fastapi_app, host=host, port=port, log_level=level, timeout_keep_alive=75)


def _check_options(port: int, log_level: str) -> str:
    """The uvicorn log level (lowercase) once ``--port`` and ``--log-level`` are known good."""
    if not 1 <= port <= 65535:
        raise UsageError(f"--port {port} is not a TCP port: give one from 1 to 65535")
    level = log_level.lower()
    if level not in LOG_LEVELS:
        raise UsageError(f"--log-level {log_level!r} is not one of: {', '.join(LOG_LEVELS)}")
    return level


def check_listen(host: str, port: int) -> None:
    """Bind ``host:port`` as uvicorn will (and let go): a bad address or a port in use is one line.

    uvicorn sets ``SO_REUSEADDR`` too, so a port left in TIME_WAIT by an earlier run is not "in use".
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
    except OSError as exc:
        shown = f"[{host}]" if ":" in host else host
        raise UsageError(
            f"cannot listen on {shown}:{port}: {exc.strerror or exc}"
            + (" (is another server running there? pick another --port)" if _in_use(exc) else "")
        ) from None


def _in_use(exc: OSError) -> bool:
    import errno

    return exc.errno == errno.EADDRINUSE


@app.command("migrate")
def migrate_command(
    ctx: typer.Context,
    data: Path | None = _DATA,
    database: str | None = _DATABASE,
    config: Path | None = _CONFIG,
) -> None:
    """Apply the database migrations (run once per upgrade before starting new server versions)."""
    from modelward.server.app import database_errors, open_database, redact_url
    from modelward.server.settings import load_settings

    parent = ctx.obj or {}
    settings = load_settings(
        config or parent.get("config"),
        data_dir=data or parent.get("data"),
        database_url=database or parent.get("database"),
    )
    from modelward.store.migrate import upgrade

    url = settings.effective_database_url
    if url.startswith("sqlite"):  # the embedded database lives in the data folder
        from modelward.server.app import make_folder

        make_folder(settings.data_dir, "data folder")
    db = open_database(url)
    try:
        with database_errors(url):
            upgrade(db)
    finally:
        db.dispose()
    echo(f"database at {redact_url(url)} is up to date")
