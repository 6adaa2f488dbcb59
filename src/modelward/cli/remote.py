"""What the commands that talk to a modelward server share (``hub``, ``fleet``): the command-group
factory, the ``--server``/``--token``/``--format`` options and the table-or-JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from modelward.cli.common import check_format, echo

T = TypeVar("T")
FORMATS = ("table", "json")

SERVER = typer.Option(
    None,
    "--server",
    envvar="MODELWARD_SERVER",
    metavar="URL",
    help="The server's URL (default http://127.0.0.1:8000).",
    show_default=False,
)
TOKEN = typer.Option(
    None,
    "--token",
    envvar="MODELWARD_TOKEN",
    metavar="TOKEN",
    help="API token (mw_...).",
    show_default=False,
)
FORMAT = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table or json.")


def group(name: str, help: str, epilog: str | None = None) -> typer.Typer:
    """A command group with modelward's conventions (``-h``, no completion, plain help text)."""
    return typer.Typer(
        name=name,
        help=help,
        epilog=epilog,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


def print_json(doc: Any) -> None:
    echo(json.dumps(doc, indent=2))


def call(fmt: str, client: Any, action: Callable[[Any], T]) -> T:
    """Check ``--format``, then ``action(client)`` inside the client's session."""
    check_format(fmt, FORMATS)
    with client as session:
        return action(session)


def show(fmt: str, doc: T, table: Callable[[T], object]) -> None:
    """``doc`` as JSON with ``--format json``, else as ``table(doc)`` prints it."""
    if fmt == "json":
        print_json(doc)
    else:
        table(doc)
