"""``modelward fleet``: the console's command line: enrollment secrets, hosts, artifacts, violations,
policy bundles (a client of ``/api/v1/fleet/``; heavy imports stay inside the commands)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelward.cli.common import check_format

if TYPE_CHECKING:
    from modelward.fleet.client import FleetClient

HELP = """See every enrolled machine's models, runtimes and policy violations; manage enrollment.

Agents enroll with a team's secret (`fleet secret create`), report their inventory and fetch the
signed policy bundle you push (`fleet policy push DIR`). Reading needs a reviewer or admin token,
changes an admin token. Every command talks to --server (or MODELWARD_SERVER) with --token (or
MODELWARD_TOKEN) and takes --format json.
"""

EPILOG = """\b
Examples:
  export MODELWARD_SERVER=http://hub:8000 MODELWARD_TOKEN=mw_...
  modelward fleet secret create --team laptops      # give it to `modelward agent enroll`
  modelward fleet hosts --state offline
  modelward fleet artifacts --sha256 3f2a...c9      # which machines hold this file
  modelward fleet artifacts --unapproved            # files not in an approved hub revision
  modelward fleet violations --severity critical,high
  modelward fleet policy push ./policy              # *.rego + settings.yaml + waivers.yaml
  modelward fleet host revoke 9c1f...               # its key stops working at once
"""


def _typer(name: str, help: str) -> typer.Typer:
    return typer.Typer(
        name=name,
        help=help,
        no_args_is_help=True,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )


app = _typer("fleet", HELP)
app.info.epilog = EPILOG
secret_app = _typer(
    "secret",
    "Enrollment secrets, one or more per team (admin only). A secret is shown once.\n\n"
    "\b\nExamples:\n  modelward fleet secret create --team laptops\n"
    "  modelward fleet secret list\n  modelward fleet secret revoke 3",
)
host_app = _typer(
    "host",
    "One enrolled host: show it, or revoke it (admin; the machine may not enroll again).\n\n"
    "\b\nExamples:\n  modelward fleet host show 9c1f...\n  modelward fleet host revoke 9c1f...",
)
policy_app = _typer(
    "policy",
    "The policy bundle agents fetch: a folder of .rego files, settings.yaml and waivers.yaml, "
    "checked here, versioned and signed by the server.\n\n"
    "\b\nExamples:\n  modelward fleet policy push ./policy\n  modelward fleet policy show",
)
app.add_typer(secret_app, name="secret")
app.add_typer(host_app, name="host")
app.add_typer(policy_app, name="policy")

_SERVER = typer.Option(
    None,
    "--server",
    envvar="MODELWARD_SERVER",
    metavar="URL",
    help="The server's URL (default http://127.0.0.1:8000).",
    show_default=False,
)
_TOKEN = typer.Option(
    None,
    "--token",
    envvar="MODELWARD_TOKEN",
    metavar="TOKEN",
    help="API token (mw_...).",
    show_default=False,
)
_FORMAT = typer.Option("table", "--format", "-f", metavar="FORMAT", help="table or json.")
_LIMIT = typer.Option(100, "--limit", min=1, max=1000, help="Items per page.")
_CURSOR = typer.Option(None, "--cursor", metavar="CURSOR", help="Continue after this cursor.")
_ALL = typer.Option(False, "--all", help="Follow the pages to the end.")


def _client(server: str | None, token: str | None) -> FleetClient:
    from modelward.fleet.client import FleetClient

    return FleetClient(server, token)


def _print_json(doc: Any) -> None:
    json.dump(doc, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def _list(
    server: str | None,
    token: str | None,
    path: str,
    fmt: str,
    every: bool,
    limit: int,
    cursor: str | None,
    row: Any,
    empty: str,
    **params: Any,
) -> None:
    check_format(fmt, ("table", "json"))
    with _client(server, token) as fleet:
        if every:
            doc: dict[str, Any] = {"items": list(fleet.every(path, limit=limit, **params))}
            doc["next"] = None
        else:
            doc = fleet.page(path, limit=limit, cursor=cursor, **params)
    if fmt == "json":
        _print_json(doc)
        return
    if not doc["items"]:
        typer.echo(empty)
    for item in doc["items"]:
        typer.echo(row(item))
    if doc.get("next"):
        typer.echo(f"... more: --cursor {doc['next']} (or --all)", err=True)


# ------------------------------------------------------------------------------------ secrets
@secret_app.command("create", help="Create an enrollment secret for a team (shown once).")
def secret_create(
    team: str | None = typer.Option(None, "--team", metavar="TEAM", help="Default: default."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.create_secret(team)
    if format == "json":
        _print_json(doc)
        return
    typer.echo(doc["secret"])
    typer.echo(
        f"enrollment secret {doc['id']} for team {doc['team']}: shown once, keep it safe; "
        "agents use it with `modelward agent enroll --secret-file`",
        err=True,
    )


@secret_app.command("list", help="List enrollment secrets (never the secrets themselves).")
def secret_list(
    server: str | None = _SERVER, token: str | None = _TOKEN, format: str = _FORMAT
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.page("secrets")
    if format == "json":
        _print_json(doc)
        return
    for s in doc["items"]:
        state = f"revoked {s['revoked_at']}" if s["revoked_at"] else "active"
        typer.echo(f"{s['id']:>4}  {s['team']:20}  {s['created_at']}  {state}")


@secret_app.command("revoke", help="Revoke an enrollment secret (enrolled hosts keep working).")
def secret_revoke(
    secret_id: int = typer.Argument(..., metavar="ID"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.revoke_secret(secret_id)
    if format == "json":
        _print_json(doc)
    else:
        typer.echo(f"revoked enrollment secret {doc['id']} of team {doc['team']}")


# -------------------------------------------------------------------------------------- hosts
def _host_row(h: dict[str, Any]) -> str:
    return (
        f"{h['id']}  {h['hostname']:24}  {h['state']:8}  {h['os']} {h['os_version']}  "
        f"{h['user']}  agent {h['agent_version']}  last seen {h['last_seen'] or 'never'}"
    )


@app.command("hosts", help="Enrolled hosts (online: reported within 3 report intervals).")
def hosts_command(
    state: str | None = typer.Option(None, "--state", help="online, offline or revoked."),
    team: str | None = typer.Option(None, "--team", metavar="TEAM"),
    hostname: str | None = typer.Option(None, "--hostname", help="Part of the host name."),
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
    every: bool = _ALL,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    _list(
        server,
        token,
        "hosts",
        format,
        every,
        limit,
        cursor,
        _host_row,
        "No hosts.",
        state=state,
        team=team,
        hostname=hostname,
    )


@host_app.command("show", help="One host: its runtimes, packages and counts.")
def host_show(
    host_id: str = typer.Argument(..., metavar="ID"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.host(host_id)
    if format == "json":
        _print_json(doc)
        return
    typer.echo(_host_row(doc))
    typer.echo(f"  artifacts: {doc['artifacts']}  open violations: {doc['violations'] or 'none'}")
    for r in doc["runtimes"]:
        flags = " ".join(f for f in ("exposed", "vulnerable") if r.get(f))
        typer.echo(f"  runtime {r.get('name')} {r.get('version') or ''} {flags}".rstrip())


@host_app.command("revoke", help="Revoke a host's key at once (admin); it may not enroll again.")
def host_revoke(
    host_id: str = typer.Argument(..., metavar="ID"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.revoke_host(host_id)
    if format == "json":
        _print_json(doc)
    else:
        typer.echo(f"revoked host {doc['id']} ({doc['hostname']})")


# ---------------------------------------------------------------------------------- artifacts
@app.command("artifacts", help="Model files across the fleet, with the host holding each.")
def artifacts_command(
    sha256: str | None = typer.Option(None, "--sha256", metavar="HEX", help="Only this file."),
    unapproved: bool = typer.Option(
        False, "--unapproved", help="Only files not in an approved hub revision."
    ),
    host: str | None = typer.Option(None, "--host", metavar="ID"),
    license: str | None = typer.Option(None, "--license", metavar="ID"),
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
    every: bool = _ALL,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    def row(a: dict[str, Any]) -> str:
        mark = "approved" if a["approved"] else "UNAPPROVED"
        return (
            f"{a['hostname']:24}  {(a['sha256'] or '-')[:16]}  {a['format']:12}  "
            f"{a['license']:14}  {mark:10}  {a['path']}"
        )

    _list(
        server,
        token,
        "artifacts",
        format,
        every,
        limit,
        cursor,
        row,
        "No artifacts.",
        sha256=sha256,
        unapproved=unapproved,
        host=host,
        license=license,
    )


@app.command("violations", help="Open policy violations across the fleet.")
def violations_command(
    rule: str | None = typer.Option(None, "--rule", metavar="RULE"),
    severity: str | None = typer.Option(
        None, "--severity", metavar="LIST", help="e.g. critical,high"
    ),
    host: str | None = typer.Option(None, "--host", metavar="ID"),
    waived: bool = typer.Option(False, "--waived", help="Include waived decisions."),
    summary: bool = typer.Option(False, "--summary", help="Counts by rule and severity."),
    limit: int = _LIMIT,
    cursor: str | None = _CURSOR,
    every: bool = _ALL,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    if summary:
        check_format(format, ("table", "json"))
        with _client(server, token) as fleet:
            doc = fleet.page("violations/summary")
        if format == "json":
            _print_json(doc)
            return
        for s in doc["items"]:
            typer.echo(f"{s['severity']:8}  {s['rule']:32}  {s['count']:>7}  on {s['hosts']} hosts")
        return

    def row(v: dict[str, Any]) -> str:
        return (
            f"{v['severity']:8}  {v['action']:10}  {v['hostname']:24}  {v['rule']:28}  "
            f"{v['subject']['name']}"
        )

    _list(
        server,
        token,
        "violations",
        format,
        every,
        limit,
        cursor,
        row,
        "No open violations.",
        rule=rule,
        severity=severity,
        host=host,
        waived=waived,
    )


# ------------------------------------------------------------------------------------- policy
@policy_app.command("push", help="Check a policy folder and push it as the next bundle version.")
def policy_push(
    folder: Path = typer.Argument(..., metavar="DIR"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.push_policy(folder)
    if format == "json":
        _print_json(doc)
        return
    typer.echo(
        f"policy bundle version {doc['version']} (etag {doc['etag']}): "
        f"{len(doc['files'])} rego files, {doc['waivers']} waivers; agents fetch it on their "
        "next report"
    )


@policy_app.command("show", help="The current bundle's version, ETag and files.")
def policy_show(
    server: str | None = _SERVER, token: str | None = _TOKEN, format: str = _FORMAT
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as fleet:
        doc = fleet.page("policy")
    if format == "json":
        _print_json(doc)
        return
    typer.echo(
        f"version {doc['version']}  etag {doc['etag']}  by {doc['created_by']} "
        f"at {doc['created_at']}\n  " + "\n  ".join(doc["files"])
    )
