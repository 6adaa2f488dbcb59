"""``modelward policy check|test``: apply a Rego policy to an inventory, and run a policy's unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelward.cli.common import check_format, echo, emit, parse_fail_on
from modelward.errors import UsageError

if TYPE_CHECKING:
    from modelward.policy.decision import Decision
    from modelward.policy.waivers import WaiverReview

INVENTORY_SCHEMA = "modelward.inventory/v1"

app = typer.Typer(
    name="policy",
    help="Apply the organisation's rules for local AI, written in Rego, to this machine's models.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

CHECK_HELP = """Evaluate a policy (default: the bundled pack) over an inventory and print the decisions.

The inventory is read from --inventory (a saved `modelward inventory -f json`) or collected from
ROOTS. The settings file (YAML) feeds the policy as data.modelward.settings.

A waivers file (YAML, --waivers) lists signed-off exceptions, each with reason, approved_by and
expires, matching exactly one of: an artifact by `sha256:`, a runtime by `runtime:` (name), or an
inference library by `package:` (name, with an optional `version:`), optionally only one `rule:`.
A waived decision becomes allow with waived_by set. Expired waivers (they no longer apply) and
waivers that matched no decision are reported as warnings after the decisions (json: "waivers";
sarif: run.invocations[0].toolExecutionNotifications), never as errors.
"""

CHECK_EPILOG = """\b
Examples:
  modelward policy check                                # the bundled pack over your home
  modelward policy check --settings settings.yaml --inventory inventory.json -f json
  modelward policy check --policy ./policies -f sarif -o decisions.sarif

Exit codes: 0 no deny or quarantine at or above --fail-on; 1 there is one; 2 error (a policy that
does not parse or evaluate is an error, never an allow).
"""


# Inputs shared by `check` and `enforce` (typer reads each default as the parameter's declaration).
_ROOTS = typer.Argument(
    None,
    help="Folders to inventory (default: your home), unless --inventory is given.",
    show_default=False,
    metavar="[ROOT]...",
)
_POLICY = typer.Option(
    None, "--policy", metavar="DIR", help="Folder of .rego files (default: the bundled pack)."
)
_SETTINGS = typer.Option(
    None, "--settings", metavar="FILE", help="Settings file (YAML) fed to the policy as data."
)
_INVENTORY = typer.Option(
    None, "--inventory", metavar="FILE", help="A saved inventory (JSON) instead of collecting one."
)
_WAIVERS = typer.Option(
    None,
    "--waivers",
    metavar="FILE",
    help="Waivers file (YAML): signed-off exceptions by sha256, runtime or package.",
)
_VERBOSE = typer.Option(False, "--verbose", "-v", help="Show tracebacks of failures.")


@app.command("check", help=CHECK_HELP, epilog=CHECK_EPILOG)
def check_command(
    roots: list[Path] = _ROOTS,
    policy: Path | None = _POLICY,
    settings: Path | None = _SETTINGS,
    inventory: Path | None = _INVENTORY,
    format: str = typer.Option(
        "table", "--format", "-f", metavar="FORMAT", help="Output format: table, json or sarif."
    ),
    fail_on: str = typer.Option(
        "high",
        "--fail-on",
        metavar="SEVERITY",
        help="Exit 1 when a deny or quarantine decision is at or above this severity.",
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", metavar="FILE", help="Write the decisions to FILE (atomically)."
    ),
    waivers: Path | None = _WAIVERS,
    verbose: bool = _VERBOSE,
) -> None:
    from modelward.report import decisions as report

    check_format(format, report.FORMATS)
    threshold = parse_fail_on(fail_on)
    _doc, decisions, review = decide(roots, policy, settings, inventory, waivers)
    write = {
        "json": report.write_decisions_json,
        "sarif": report.write_decisions_sarif,
    }.get(format, report.write_decisions_table)
    emit(output, lambda f: write(decisions, f, review))
    if format != "table" or output is not None:  # the table on the terminal already says so
        warn_waivers(review)
    failing = any(
        d.action in ("deny", "stop", "quarantine") and d.severity >= threshold for d in decisions
    )
    raise typer.Exit(1 if failing else 0)


def decide(
    roots: list[Path] | None,
    policy: Path | None,
    settings: Path | None,
    inventory: Path | None,
    waivers: Path | None,
) -> tuple[dict[str, Any], list[Decision], WaiverReview | None]:
    """The inventory document, the decisions of the policy over it with waivers applied, and what
    became of the waivers (``None`` without a waivers file)."""
    import datetime as dt

    from modelward.policy.engine import evaluate
    from modelward.policy.settings import Settings, load_settings
    from modelward.policy.waivers import apply_waivers, load_waivers, review_waivers

    if inventory is not None and roots:
        raise UsageError("give either --inventory FILE or ROOTS, not both")
    conf = load_settings(settings) if settings is not None else Settings()
    waived = load_waivers(waivers) if waivers is not None else []
    if inventory is not None:
        doc = load_inventory(inventory)
    else:
        from modelward.inventory import collect

        doc = collect(roots or None).to_dict()
    raw = evaluate(doc, conf, policy)
    today = dt.date.today()
    decisions, _expired = apply_waivers(raw, waived, today)
    review = None
    if waivers is not None:
        review = review_waivers(raw, waived, today, source=str(waivers))
    return doc, decisions, review


def warn_waivers(review: WaiverReview | None) -> None:
    """Expired and unused waivers, one warning line each on stderr."""
    for _kind, _waiver, sentence in review.notes() if review is not None else []:
        echo(f"modelward: warning: {sentence}", err=True)


ENFORCE_EPILOG = """\b
Examples:
  modelward policy enforce                       # dry run: what would be quarantined
  modelward policy enforce --apply               # move those models into the vault
  modelward quarantine list                      # what is in the vault; restore ID brings it back

Exit codes: 0 everything to be done was done (or a dry run, or nothing to do); 1 a quarantine or
stop could not be done (e.g. a file changed since the inventory: it is left where it is); 2 error.
Nothing is ever deleted: a quarantined model moves into the vault (journaled, crash-safe) and a
note file is left where it was. Runtimes are never stopped by default: with
stop_exposed_runtimes: true in the settings, --apply also terminates (SIGTERM, never SIGKILL) your
runtime processes that listen on a network address.
"""


def stop_failed(line: str) -> bool:
    """Whether a line of ``stop_decisions(apply=True)`` says an exposed process was not stopped."""
    return (
        line.startswith("could not stop ")
        or line.endswith("): not stopped")
        or any(
            s in line
            for s in (
                " still runs ",
                " alone: the process belongs to another user",
                " alone: not allowed to inspect the process",
            )
        )
    )


@app.command(
    "enforce",
    help="Carry out the policy's quarantine (and stop) decisions (a dry run unless --apply).",
    epilog=ENFORCE_EPILOG,
)
def enforce_command(
    roots: list[Path] = _ROOTS,
    policy: Path | None = _POLICY,
    settings: Path | None = _SETTINGS,
    inventory: Path | None = _INVENTORY,
    waivers: Path | None = _WAIVERS,
    apply: bool = typer.Option(
        False,
        "--apply",
        help="Move the models, stop the runtimes (default: only say what would be done).",
    ),
    vault: Path | None = typer.Option(
        None,
        "--vault",
        metavar="DIR",
        help="Quarantine vault (default: your modelward data folder).",
    ),
    verbose: bool = _VERBOSE,
) -> None:
    from modelward.policy.enforce import enforce_quarantine
    from modelward.policy.stop import stop_decisions
    from modelward.policy.vault import Vault

    doc, decisions, review = decide(roots, policy, settings, inventory, waivers)
    warn_waivers(review)
    store = Vault.open(vault) if apply else None
    outcome = enforce_quarantine(decisions, doc, store, apply)
    stops = stop_decisions(decisions, doc, apply)
    for line in [*outcome.lines, *stops]:
        echo(line)
    if not outcome.lines:
        echo("nothing to quarantine")
    failed = outcome.failed + (sum(stop_failed(line) for line in stops) if apply else 0)
    if failed:
        echo(f"modelward: {failed} action(s) could not be carried out (see above)", err=True)
    raise typer.Exit(1 if failed else 0)


def load_inventory(path: Path) -> dict[str, Any]:
    """A saved ``modelward.inventory/v1`` document, validated (:func:`validate_inventory`); a clear
    error for anything else."""
    try:
        with path.open("rb") as f:
            doc = json.load(f)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the inventory: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise UsageError(f"{path}: not a JSON inventory ({exc})") from None
    schema = doc.get("schema") if isinstance(doc, dict) else None
    if schema != INVENTORY_SCHEMA:
        raise UsageError(
            f"{path}: not a modelward inventory (schema {schema!r}, expected {INVENTORY_SCHEMA!r}); "
            "write one with `modelward inventory -f json -o FILE`"
        )
    validate_inventory(doc, str(path))
    result: dict[str, Any] = doc
    return result


class _Bad(Exception):
    """One invalid field: ``where`` is like ``artifacts[3].path``."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where} {problem}")


_SHA256_HEX = frozenset("0123456789abcdef")
_SEVERITIES = frozenset({"critical", "high", "medium", "low", "info"})
_STR = (str,)
_OPT_STR = (str, type(None))


def _show(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _describe(value: Any) -> str:
    """``a number 7``, ``a list ["a"]``, ``null``: what a field holds, for an error."""
    if value is None or type(value) is bool:
        return json.dumps(value)
    kinds: dict[type, str] = {dict: "an object", list: "a list", str: "a string"}
    kind = kinds.get(type(value), "a number")
    return f"{kind} {_show(value)}"


def _field(entry: dict[str, Any], where: str, key: str, types: tuple[type, ...], what: str) -> Any:
    value = entry.get(key)
    if key in entry and (type(value) not in types):
        raise _Bad(f"{where}.{key}", f"must be {what}, not {_describe(value)}")
    return value


def _text(entry: dict[str, Any], where: str, key: str) -> None:
    """A required, non-empty string."""
    value = entry.get(key)
    if type(value) is not str or not value.strip():
        shown = "missing" if key not in entry else _describe(value)
        raise _Bad(f"{where}.{key}", f"must be a non-empty string, not {shown}")


def _object(value: Any, where: str) -> dict[str, Any]:
    if type(value) is not dict:
        raise _Bad(where, f"must be an object, not {_describe(value)}")
    return value


def _findings(entry: dict[str, Any], where: str) -> None:
    found = _field(entry, where, "findings", (list, type(None)), "a list of findings")
    for j, f in enumerate(found or ()):
        at = f"{where}.findings[{j}]"
        _text(_object(f, at), at, "rule")
        sev = f.get("severity")
        if type(sev) is not str or sev.lower() not in _SEVERITIES:
            raise _Bad(
                f"{at}.severity",
                f"must be one of {', '.join(sorted(_SEVERITIES))}, not {_show(sev)}",
            )


def _artifact(a: Any, where: str) -> None:
    a = _object(a, where)
    _text(a, where, "path")
    sha = _field(a, where, "sha256", _OPT_STR, "64 hex digits or null")
    if sha is not None:
        low = sha.lower()
        if len(low) != 64 or not _SHA256_HEX.issuperset(low):
            raise _Bad(f"{where}.sha256", f"must be 64 hex digits or null, not {_show(sha)}")
        if low != sha:
            a["sha256"] = low  # as the settings and waivers write digests
    _field(a, where, "format", _STR, "a string")
    size = _field(a, where, "size", (int, type(None)), "a whole number of bytes or null")
    if size is not None and size < 0:
        raise _Bad(f"{where}.size", f"must not be negative, not {size}")
    for key, subkeys in (("license", ("id", "name", "evidence")), ("source", _SOURCE_KEYS)):
        sub = _field(a, where, key, (dict, type(None)), "an object or null")
        for k in subkeys if sub else ():
            _field(sub, f"{where}.{key}", k, _OPT_STR, "a string or null")
    _field(a, where, "metadata", (dict, type(None)), "an object or null")
    _field(a, where, "in_use", (bool,), "true or false")
    _findings(a, where)


_SOURCE_KEYS = ("kind", "name", "repo", "revision")


def _runtime(r: Any, where: str) -> None:
    r = _object(r, where)
    _text(r, where, "name")
    for key in ("version", "executable"):
        _field(r, where, key, _OPT_STR, "a string or null")
    _field(r, where, "running", (bool,), "true or false")
    for j, pid in enumerate(_field(r, where, "pids", (list,), "a list of process ids") or ()):
        if type(pid) is not int or pid <= 0:
            raise _Bad(f"{where}.pids[{j}]", f"must be a process id, not {_show(pid)}")
    for j, sock in enumerate(_field(r, where, "listen", (list,), "a list of sockets") or ()):
        at = f"{where}.listen[{j}]"
        sock = _object(sock, at)
        _field(sock, at, "address", _STR, "a string")
        port = _field(sock, at, "port", (int,), "a port number")
        if port is not None and not 0 <= port <= 65535:
            raise _Bad(f"{at}.port", f"must be a port number (0-65535), not {port}")
        _field(sock, at, "exposed", (bool,), "true or false")
    _findings(r, where)


def _package(p: Any, where: str) -> None:
    p = _object(p, where)
    _text(p, where, "name")
    for key in ("version", "environment"):
        _field(p, where, key, _OPT_STR, "a string or null")
    _findings(p, where)


def validate_inventory(doc: dict[str, Any], source: str) -> None:
    """Refuse an inventory whose entries the policy could not judge (an artifact without a path,
    findings that are not a list, a runtime that is a number, ...): such an entry would match no
    rule and so escape the policy. The error names the entry and the field (``artifacts[3].path``).

    Hex digests in capitals are lowered in place, as the settings and waivers write them."""
    try:
        for key, check in (
            ("artifacts", _artifact),
            ("runtimes", _runtime),
            ("packages", _package),
        ):
            entries = doc.get(key, [])
            if type(entries) is not list:
                raise _Bad(key, f"must be a list, not {_describe(entries)}")
            for i, entry in enumerate(entries):
                check(entry, f"{key}[{i}]")
        if type(doc.get("host", {})) is not dict:
            raise _Bad("host", "must be an object")
        if type(doc.get("errors", [])) is not list:
            raise _Bad("errors", "must be a list")
    except _Bad as exc:
        raise UsageError(f"{source}: invalid inventory: {exc}") from None


TEST_EPILOG = """\b
Examples:
  modelward policy test                 # the bundled pack's own tests
  modelward policy test ./policies      # your policy's *_test.rego files

Exit codes: 0 every test passed; 1 a test failed; 2 a policy that does not parse.
"""


@app.command(
    "test",
    help="Run the Rego unit tests (rules named test_* in *_test.rego files) of a policy folder.",
    epilog=TEST_EPILOG,
)
def test_command(
    folder: Path | None = typer.Argument(
        None, help="Policy folder (default: the bundled pack).", show_default=False, metavar="[DIR]"
    ),
    verbose: bool = _VERBOSE,
) -> None:
    from modelward.policy.engine import run_tests

    results = run_tests(folder)
    if not results:  # the error alone: "0 passed, 0 failed" would read as a success
        raise UsageError(f"{folder or 'the bundled pack'}: no test_* rules in *_test.rego files")
    failed = 0
    for r in results:
        status = "PASS" if r.passed else "FAIL"
        line = f"{status} {r.file}: {r.name}"
        if r.error:
            line += f" ({r.error})"
        echo(line)
        failed += not r.passed
    echo(f"{len(results) - failed} passed, {failed} failed")
    raise typer.Exit(1 if failed else 0)
