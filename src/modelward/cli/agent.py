"""``modelward agent enroll|run|status``: the endpoint agent that reports to a modelward server."""

from __future__ import annotations

from pathlib import Path

import typer

from modelward.cli import remote
from modelward.cli.common import echo

app = remote.group(
    "agent",
    "The endpoint agent: enroll this machine with a modelward server once, then report its "
    "models and apply the organisation's policy.",
    """\b
Examples:
  modelward agent enroll --server https://mw.example.com --secret-file /etc/modelward/secret
  modelward agent run --once                # one report now (cron), then exit
  modelward agent run                       # the service: see packaging/ (systemd, launchd)
  modelward agent status --format json
""",
)

_STATE_DIR = typer.Option(
    None,
    "--state-dir",
    metavar="DIR",
    help="Agent state (key file, spool, bundle). Default: ~/.local/state/modelward-agent, "
    "/var/lib/modelward-agent as root.",
)
_VERBOSE = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures.")


def _state_dir(given: Path | None) -> Path:
    from modelward.agent.enroll import default_state_dir

    return given if given is not None else default_state_dir()


ENROLL_EPILOG = """\b
Examples:
  modelward agent enroll --server https://modelward.example.com --secret-file /etc/modelward/secret
  modelward agent enroll --server https://mw.internal --secret-file s.txt --ca-bundle corp-ca.pem

\b
The secret (one per team, from `modelward fleet secret create`) is exchanged for this host's own
key, kept owner-only in <state-dir>/agent.json. Keep the secret file to let the agent re-enroll by
itself when the server no longer accepts its key; without it, or when an admin revoked the host
(`modelward fleet host revoke`), the agent stops with a message saying so.
\b
Exit codes: 0 enrolled; 2 error (unknown secret, server unreachable, bad TLS).
"""


@app.command(
    "enroll",
    help="Exchange an enrollment secret for this host's key.",
    epilog=ENROLL_EPILOG,
)
def enroll_command(
    server: str = typer.Option(..., "--server", metavar="URL", help="The modelward server."),
    secret_file: Path = typer.Option(
        ..., "--secret-file", metavar="FILE", help="File holding the team's enrollment secret."
    ),
    state_dir: Path | None = _STATE_DIR,
    ca_bundle: Path | None = typer.Option(
        None, "--ca-bundle", metavar="FILE", help="CA certificates (PEM) to verify the server."
    ),
    verbose: bool = _VERBOSE,
) -> None:
    from urllib.parse import urlsplit

    from modelward.agent.enroll import enroll

    host = urlsplit(server).hostname or ""
    if server.startswith("http://") and host not in ("127.0.0.1", "localhost", "::1"):
        echo(
            f"modelward: warning: {server} is plain HTTP: the host key and reports travel "
            "unencrypted; use https://",
            err=True,
        )
    folder = _state_dir(state_dir)
    state = enroll(server, secret_file, folder, ca_bundle=str(ca_bundle) if ca_bundle else None)
    echo(f"enrolled as host {state.host_id} with {state.server}")
    echo(f"key stored in {folder / 'agent.json'} (owner-only)")


RUN_EPILOG = """\b
Examples:
  modelward agent run --once                     # one report now (cron-style), then exit
  modelward agent run                            # keep running: every --interval, and within
                                                 # seconds of a new model in a watched folder
  modelward agent run --roots /data/models --interval 900 --hash-rate 16

\b
Each cycle: inventory (hashes cached; new files hashed at --hash-rate MiB/s) -> policy bundle from
the server (signature checked) -> quarantine when the bundle sets agent_enforce: true (otherwise
decisions are only reported) -> report what changed. Offline, reports wait in the spool and are
sent in order when the server is back.
\b
Exit codes: 0 done (--once: reported or spooled); 2 error (not enrolled, key revoked without a
secret file to re-enroll).
"""


@app.command("run", help="Collect, evaluate the policy, enforce and report.", epilog=RUN_EPILOG)
def run_command(
    once: bool = typer.Option(False, "--once", help="Run one cycle and exit."),
    roots: list[Path] = typer.Option(
        None,
        "--roots",
        metavar="DIR",
        help="Folder to inventory (repeat for several; default: your home, every home as root).",
        show_default=False,
    ),
    interval: float | None = typer.Option(
        None,
        "--interval",
        metavar="SECONDS",
        help="Seconds between cycles (default: what the server said at enrollment).",
        min=5,
    ),
    hash_rate: float = typer.Option(
        32, "--hash-rate", metavar="MIB/S", help="Hashing speed limit (0: unlimited).", min=0
    ),
    spool_max_mb: float = typer.Option(
        64,
        "--spool-max-mb",
        metavar="MIB",
        help="Disk space for reports waiting while the server is away; the oldest go first.",
        min=1,
    ),
    nice: int = typer.Option(
        10,
        "--nice",
        metavar="N",
        help="Lower the agent's CPU priority by N, with idle-class I/O (0: leave both as they are).",
        min=0,
        max=19,
    ),
    no_watch: bool = typer.Option(False, "--no-watch", help="Do not watch model folders."),
    no_processes: bool = typer.Option(
        False, "--no-processes", help="Do not look at running processes and runtimes."
    ),
    state_dir: Path | None = _STATE_DIR,
    verbose: bool = _VERBOSE,
) -> None:
    import signal
    import threading

    from modelward.agent.budget import lower_priority
    from modelward.agent.runner import Agent, CycleResult, RunOptions

    options = RunOptions(
        roots=tuple(roots or ()),
        hash_rate=int(hash_rate * (1 << 20)),
        processes=not no_processes,
        runtimes=not no_processes,
        max_spool_bytes=int(spool_max_mb * (1 << 20)),
    )
    agent = Agent(_state_dir(state_dir), options, log=lambda m: echo(f"agent: {m}", err=True))
    state = agent.state()
    if nice:
        lower_priority(nice)

    def say(r: CycleResult) -> None:
        kind = "full" if r.full else "delta"
        where = "server offline, kept in the spool" if r.offline else "sent"
        echo(
            f"report {r.seq} ({kind}): {r.decisions} decisions, {len(r.actions)} actions; "
            f"{r.sent} sent, {r.pending} pending ({where})"
        )

    if once:
        say(agent.cycle())
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.run_forever(
        interval or float(state.report_interval), stop=stop, watch=not no_watch, on_cycle=say
    )


STATUS_EPILOG = """\b
Examples:
  modelward agent status
  modelward agent status --format json --state-dir /var/lib/modelward-agent
"""


@app.command(
    "status",
    help="Show enrollment, the last acknowledged report and the spool.",
    epilog=STATUS_EPILOG,
)
def status_command(
    state_dir: Path | None = _STATE_DIR,
    format: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="Output format: table or json."
    ),
    verbose: bool = _VERBOSE,
) -> None:
    from modelward.agent.runner import Agent
    from modelward.cli.common import check_format

    check_format(format, ("table", "json"))
    folder = _state_dir(state_dir)
    if not folder.is_dir():  # never enrolled here: say so without creating anything
        status = {"enrolled": False, "state_dir": str(folder)}
    else:
        status = Agent(folder).status()

    def table(status: dict[str, object]) -> None:
        for k, v in status.items():
            echo(f"{k.replace('_', ' ')}: {'-' if v is None else v}")

    remote.show(format, status, table)
