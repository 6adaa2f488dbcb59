"""The ``modelward`` command line: thin commands that call the library and render its results."""

from __future__ import annotations

import sys

import typer

from modelward import __version__
from modelward.cli import agent as _agent
from modelward.cli import fleet as _fleet
from modelward.cli import hub as _hub
from modelward.cli import inventory as _inventory
from modelward.cli import policy as _policy
from modelward.cli import quarantine as _quarantine
from modelward.cli import scan as _scan
from modelward.cli import server as _server
from modelward.cli.common import echo
from modelward.errors import Error

app = typer.Typer(
    name="modelward",
    help=(
        "See and vet the AI models on this machine. modelward never loads or runs a model.\n\n"
        "\b\nExamples:\n"
        "  modelward scan ~/Downloads/model.pt      # is it safe to load?\n"
        "  modelward scan ./models --format json -o report.json\n"
        "  modelward scan model.safetensors --fail-on medium   # CI gate\n"
        "  modelward inventory                      # every local model in your home"
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        echo(f"modelward {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """See and vet the AI models on this machine."""


app.command(
    "scan",
    help=_scan.HELP,
    epilog=_scan.EPILOG,
    no_args_is_help=True,
)(_scan.scan_command)


app.command(
    "inventory",
    help=_inventory.HELP,
    epilog=_inventory.EPILOG,
)(_inventory.inventory_command)


app.add_typer(_policy.app, name="policy")
app.add_typer(_quarantine.app, name="quarantine")
app.add_typer(_server.app, name="server")
app.add_typer(_hub.app, name="hub")
app.add_typer(_agent.app, name="agent")
app.add_typer(_fleet.app, name="fleet")


# The optional dependencies (pyproject.toml's extras) by the module a command imports: `pip install
# modelward` alone runs scan, inventory and policy; the hub, fleet and agent need their extra.
_EXTRA_OF = {
    **dict.fromkeys(
        ("fastapi", "uvicorn", "sqlalchemy", "alembic", "pydantic", "pydantic_settings",
         "multipart", "model_signing", "httpx", "cryptography"),
        "server",
    ),
    "watchdog": "agent",  # httpx and cryptography come with "agent" too: see _missing_extra
    "psycopg": "postgres",
    "boto3": "s3",
}  # fmt: skip


def _missing_extra(exc: ModuleNotFoundError, args: list[str]) -> str | None:
    """What to install when a command imports an optional dependency that is not there."""
    module = (exc.name or "").split(".")[0]
    extra = _EXTRA_OF.get(module)
    if extra is None:
        return None
    if args[:1] == ["agent"] and module in ("httpx", "cryptography", "watchdog"):
        extra = "agent"
    return (
        f"this command needs {module}, one of modelward's optional '{extra}' dependencies: "
        f"pip install 'modelward[{extra}]'"
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 0 clean, 1 findings at or above --fail-on, 2 failure."""
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        app(args=argv, prog_name="modelward")
    except Error as exc:
        if verbose:
            raise
        echo(f"modelward: error: {exc.diagnostics()}", err=True)
        sys.exit(2)
    except ModuleNotFoundError as exc:
        missing = _missing_extra(exc, args)
        if missing is None or verbose:
            raise
        echo(f"modelward: error: {missing}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        echo("modelward: interrupted", err=True)
        sys.exit(130)
