"""``modelward fleet``: the console's command line: enrollment secrets, hosts, artifacts, violations,
policy bundles (a client of ``/api/v1/fleet/``; heavy imports stay inside the commands)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from modelward.cli import remote
from modelward.cli.common import check_format, echo

if TYPE_CHECKING:
    from modelward.fleet.client import FleetClient

T = TypeVar("T")

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


app = remote.group("fleet", HELP, EPILOG)
secret_app = remote.group(
    "secret",
    "Enrollment secrets, one or more per team (admin only). A secret is shown once.\n\n"
    "\b\nExamples:\n  modelward fleet secret create --team laptops\n"
    "  modelward fleet secret list\n  modelward fleet secret revoke 3",
)
host_app = remote.group(
    "host",
    "One enrolled host: show it, or revoke it (admin; the machine may not enroll again).\n\n"
    "\b\nExamples:\n  modelward fleet host show 9c1f...\n  modelward fleet host revoke 9c1f...",
)
policy_app = remote.group(
    "policy",
    "The policy bundle agents fetch: a folder of .rego files, settings.yaml and waivers.yaml, "
    "checked here, versioned and signed by the server.\n\n"
    "\b\nExamples:\n  modelward fleet policy push ./policy\n  modelward fleet policy show",
)
app.add_typer(secret_app, name="secret")
app.add_typer(host_app, name="host")
app.add_typer(policy_app, name="policy")

_SERVER = remote.SERVER
_TOKEN = remote.TOKEN
_FORMAT = remote.FORMAT
_LIMIT = typer.Option(100, "--limit", min=1, max=1000, help="Items per page.")
_CURSOR = typer.Option(None, "--cursor", metavar="CURSOR", help="Continue after this cursor.")
_ALL = typer.Option(False, "--all", help="Follow the pages to the end.")


def _client(server: str | None, token: str | None) -> FleetClient:
    from modelward.fleet.client import FleetClient

    return FleetClient(server, token)


def _call(server: str | None, token: str | None, fmt: str, action: Callable[[FleetClient], T]) -> T:
    return remote.call(fmt, _client(server, token), action)


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
    def fetch(fleet: FleetClient) -> dict[str, Any]:
        if every:
            return {"items": list(fleet.every(path, limit=limit, **params)), "next": None}
        return fleet.page(path, limit=limit, cursor=cursor, **params)

    def table(doc: dict[str, Any]) -> None:
        if not doc["items"]:
            echo(empty)
        for item in doc["items"]:
            echo(row(item))
        if doc.get("next"):
            echo(f"... more: --cursor {doc['next']} (or --all)", err=True)

    remote.show(fmt, _call(server, token, fmt, fetch), table)


# ------------------------------------------------------------------------------------ secrets
@secret_app.command("create", help="Create an enrollment secret for a team (shown once).")
def secret_create(
    team: str | None = typer.Option(None, "--team", metavar="TEAM", help="Default: default."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    def table(doc: dict[str, Any]) -> None:
        echo(doc["secret"])
        echo(
            f"enrollment secret {doc['id']} for team {doc['team']}: shown once, keep it safe; "
            "agents use it with `modelward agent enroll --secret-file`",
            err=True,
        )

    remote.show(format, _call(server, token, format, lambda f: f.create_secret(team)), table)


@secret_app.command("list", help="List enrollment secrets (never the secrets themselves).")
def secret_list(
    server: str | None = _SERVER, token: str | None = _TOKEN, format: str = _FORMAT
) -> None:
    def table(doc: dict[str, Any]) -> None:
        for s in doc["items"]:
            state = f"revoked {s['revoked_at']}" if s["revoked_at"] else "active"
            echo(f"{s['id']:>4}  {s['team']:20}  {s['created_at']}  {state}")

    remote.show(format, _call(server, token, format, lambda f: f.page("secrets")), table)


@secret_app.command("revoke", help="Revoke an enrollment secret (enrolled hosts keep working).")
def secret_revoke(
    secret_id: int = typer.Argument(..., metavar="ID"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    remote.show(
        format,
        _call(server, token, format, lambda f: f.revoke_secret(secret_id)),
        lambda d: echo(f"revoked enrollment secret {d['id']} of team {d['team']}"),
    )


# -------------------------------------------------------------------------------------- hosts
def _host_row(h: dict[str, Any]) -> str:
    return (
        f"{h['id']}  {h['hostname']:24}  {h['state']:8}  {h['os']} {h['os_version']}  "
        f"{h['user']}  agent {h['agent_version']}  last seen {h['last_seen'] or 'never'}"
    )


@app.command(
    "hosts",
    help="Enrolled hosts (online: seen within the server's fleet_offline_after, by default 3 "
    "report intervals).",
)
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
    def table(doc: dict[str, Any]) -> None:
        echo(_host_row(doc))
        echo(f"  artifacts: {doc['artifacts']}  open violations: {doc['violations'] or 'none'}")
        for r in doc["runtimes"]:
            flags = " ".join(f for f in ("exposed", "vulnerable") if r.get(f))
            echo(f"  runtime {r.get('name')} {r.get('version') or ''} {flags}".rstrip())

    remote.show(format, _call(server, token, format, lambda f: f.host(host_id)), table)


@host_app.command("revoke", help="Revoke a host's key at once (admin); it may not enroll again.")
def host_revoke(
    host_id: str = typer.Argument(..., metavar="ID"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    remote.show(
        format,
        _call(server, token, format, lambda f: f.revoke_host(host_id)),
        lambda d: echo(f"revoked host {d['id']} ({d['hostname']})"),
    )


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

        def counts(doc: dict[str, Any]) -> None:
            for s in doc["items"]:
                echo(f"{s['severity']:8}  {s['rule']:32}  {s['count']:>7}  on {s['hosts']} hosts")

        doc = _call(server, token, format, lambda f: f.page("violations/summary"))
        remote.show(format, doc, counts)
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
@policy_app.command(
    "push",
    help="Check a policy folder (its Rego must compile, its settings and waivers load) and push "
    "it as the next bundle version.",
)
def policy_push(
    folder: Path = typer.Argument(..., metavar="DIR"),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.fleet.check import check_folder

    check_format(format, remote.FORMATS)
    check_folder(folder)  # a broken policy stops here, with file:line, before any upload
    remote.show(
        format,
        _call(server, token, format, lambda f: f.push_policy(folder)),
        lambda d: echo(
            f"policy bundle version {d['version']} (etag {d['etag']}): "
            f"{len(d['files'])} rego files, {d['waivers']} waivers; agents fetch it on their "
            "next report"
        ),
    )


@policy_app.command("show", help="The current bundle's version, ETag and files.")
def policy_show(
    server: str | None = _SERVER, token: str | None = _TOKEN, format: str = _FORMAT
) -> None:
    remote.show(
        format,
        _call(server, token, format, lambda f: f.page("policy")),
        lambda d: echo(
            f"version {d['version']}  etag {d['etag']}  by {d['created_by']} "
            f"at {d['created_at']}\n  " + "\n  ".join(d["files"])
        ),
    )
