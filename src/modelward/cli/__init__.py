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


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: exit 0 clean, 1 findings at or above --fail-on, 2 failure."""
    verbose = "-v" in (argv or sys.argv[1:]) or "--verbose" in (argv or sys.argv[1:])
    try:
        app(args=argv, prog_name="modelward")
    except Error as exc:
        if verbose:
            raise
        echo(f"modelward: error: {exc.diagnostics()}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        echo("modelward: interrupted", err=True)
        sys.exit(130)
