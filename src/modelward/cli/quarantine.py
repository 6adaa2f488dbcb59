"""``modelward quarantine list | show | restore | purge``: look after the quarantine vault."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from modelward.cli.common import check_format, echo
from modelward.report.text import visible

if TYPE_CHECKING:
    from modelward.policy.vault import Vault

app = typer.Typer(
    name="quarantine",
    help=(
        "List, inspect, restore or delete the model files modelward moved into its quarantine vault.\n\n"
        "\b\nExamples:\n"
        "  modelward quarantine list\n"
        "  modelward quarantine list --format json\n"
        "  modelward quarantine show 3fa9c01b22de\n"
        "  modelward quarantine restore 3fa9c01b22de   # byte-identical, with mode, owner and times\n"
        "  modelward quarantine purge 3fa9c01b22de --yes"
    ),
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_VAULT_HELP = "The vault folder (default: $MODELWARD_DATA_DIR/quarantine or your data folder's)."
_ID_HELP = "The entry id: 12 hex digits, as `modelward quarantine list` shows."
_VERBOSE = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures.")
_EXIT = "Exit codes: 0 done; 2 error (nothing is lost: the vault and the journal keep every file)."
_SAFE = (
    "The vault must be your own folder, not writable by group or others, else it is refused.\n\n"
)


def _root(vault: Path | None) -> Path:
    from modelward.policy.vault import default_root

    return vault if vault is not None else default_root()


def _open(vault: Path | None) -> Vault:
    """The vault (recovered); a clear error when there is none yet (exit 2), never ``None``.
    What the recovery of interrupted work did is said on stderr."""
    from modelward.policy.vault import Vault

    store = Vault.open(_root(vault), create=False)
    for line in store.recovered:
        echo(f"modelward: recovery: {visible(line)}", err=True)
    return store


def _no_vault(root: Path) -> bool:
    """No vault at ``root`` yet: nothing there, or an empty folder (listing creates nothing)."""
    from modelward.policy.journal import exists
    from modelward.policy.vault import MARKER

    if not exists(root):
        return True
    return (
        root.is_dir()
        and not root.is_symlink()
        and not (root / MARKER).exists()
        and not any(root.iterdir())
    )


@app.command(
    "list",
    help="List the quarantined entries (newest last); finishes interrupted work first.",
    epilog=f"{_SAFE}{_EXIT}",
)
def list_command(
    format: str = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table or json"),
    vault: Path | None = typer.Option(None, "--vault", metavar="DIR", help=_VAULT_HELP),
    verbose: bool = _VERBOSE,
) -> None:
    check_format(format, ("table", "json"))
    root = _root(vault)
    # No vault yet: nothing was ever quarantined there, which is an empty list, not an error.
    entries = [] if _no_vault(root) else _open(vault).list()
    if format == "json":
        keys = ("id", "original_path", "sha256", "reason", "quarantined_at")
        rows = []
        for e in entries:
            d = e.to_dict()
            rows.append({**{k: d[k] for k in keys}, "rule": e.rule, "files": len(e.files)})
        echo(json.dumps(rows, indent=2))
        return
    if not entries:
        echo("The quarantine vault is empty.")
        return
    for e in entries:
        more = f" (+{len(e.files) - 1} files)" if len(e.files) > 1 else ""
        echo(
            f"{e.id}  {e.quarantined_at}  {visible(e.original_path)}{more}  "
            f"[{visible(e.rule)}] {visible(e.reason)}"
        )


@app.command(
    "show", help="Show one entry: every file, its SHA-256, size, mode and why.", epilog=_EXIT
)
def show_command(
    entry_id: str = typer.Argument(..., metavar="ID", help=_ID_HELP),
    vault: Path | None = typer.Option(None, "--vault", metavar="DIR", help=_VAULT_HELP),
    verbose: bool = _VERBOSE,
) -> None:
    entry = _open(vault).show(entry_id)
    echo(json.dumps(entry.to_dict(), indent=2))


@app.command(
    "restore",
    help="Put an entry's files back (SHA-256 checked); never overwrites.",
    epilog=(
        "Each file gets back its content, owner (when allowed), times and permission bits; "
        "setuid, setgid and sticky bits are never restored. Folders that are gone are made "
        "again (mode 0755).\n\n" + _EXIT
    ),
)
def restore_command(
    entry_id: str = typer.Argument(..., metavar="ID", help=_ID_HELP),
    vault: Path | None = typer.Option(None, "--vault", metavar="DIR", help=_VAULT_HELP),
    verbose: bool = _VERBOSE,
) -> None:
    store = _open(vault)
    entry = store.restore(entry_id)
    for f in entry.files:
        why = store.unset.get(f.original_path)
        echo(f"restored {visible(f.original_path)}" + (f" ({why})" if why else ""))


@app.command(
    "purge", help="Delete an entry's files from the vault for good (needs --yes).", epilog=_EXIT
)
def purge_command(
    entry_id: str = typer.Argument(..., metavar="ID", help=_ID_HELP),
    yes: bool = typer.Option(False, "--yes", help="Confirm: the files are deleted for good."),
    vault: Path | None = typer.Option(None, "--vault", metavar="DIR", help=_VAULT_HELP),
    verbose: bool = _VERBOSE,
) -> None:
    from modelward.errors import UsageError

    if not yes:
        raise UsageError(f"purge deletes {entry_id}'s files for good: add --yes to confirm")
    entry = _open(vault).purge(entry_id, confirm=True)
    echo(f"purged {entry.id} ({len(entry.files)} files)")
