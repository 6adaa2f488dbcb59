"""``modelward hub``: push and import models into the hub, review them, verify downloads, manage access."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from modelward.cli import remote
from modelward.cli.common import check_format, echo

if TYPE_CHECKING:
    from modelward.hub.client import HubClient, PushResult, Signature
    from modelward.hub.ingest import IngestPlan

HELP = """Put models into the curated hub, review them and check what you downloaded.

Every upload is scanned by the server; a reviewer approves or rejects each revision with a reason
before anyone can pull it. Approved revisions are signed; `hub verify` checks a downloaded copy.
Every command talks to the server given by --server (or MODELWARD_SERVER) with the token given by
--token (or MODELWARD_TOKEN), and takes --format json for scripts.
"""

EPILOG = """\b
Examples:
  export MODELWARD_SERVER=http://hub:8000 MODELWARD_TOKEN=mw_...
  modelward hub push ./llama-3-8b --repo acme/llama-3-8b --tag v1
  modelward hub import hf-cache Qwen/Qwen2-0.5B --repo acme/qwen2-0.5b
  modelward hub import ollama llama3.2:1b --repo acme/llama3.2 --tag 1b
  modelward hub import upstream --endpoint https://huggingface.co gpt2 --repo acme/gpt2
  modelward hub review                                   # the queue, with scan results
  modelward hub approve acme/llama-3-8b 3f2a...c9 --reason "license ok, scan clean"
  modelward hub verify ./downloaded --repo acme/llama-3-8b    # signature of main

\b
Then developers pull with the tools they have:
  HF_ENDPOINT=http://hub:8000 HF_TOKEN=mw_... hf download acme/llama-3-8b
  ollama pull hub:8000/acme/llama3.2:1b --insecure
"""

ROLES = ("admin", "reviewer", "publisher", "reader")

app = remote.group("hub", HELP, EPILOG)
import_app = remote.group(
    "import",
    (
        "Import a model from a local Hugging Face cache, a local Ollama store or an upstream "
        "Hugging Face-compatible hub into the review queue.\n\n"
        "\b\nExamples:\n"
        "  modelward hub import hf-cache Qwen/Qwen2-0.5B --repo acme/qwen2-0.5b\n"
        "  modelward hub import ollama llama3.2:1b --repo acme/llama3.2 --tag 1b\n"
        "  modelward hub import upstream --endpoint https://huggingface.co gpt2 --repo acme/gpt2"
    ),
)
token_app = remote.group(
    "token",
    (
        "Create, list and revoke API tokens (admin only). Roles: admin (everything), reviewer "
        "(approve, reject, revoke), publisher (push, import), reader (pull approved models). "
        "A token is shown once, when it is created; the hub keeps only its hash. Revoking one "
        "ends it at once, and the registry tokens that `oras`/`docker login` got with it.\n\n"
        "\b\nExamples:\n"
        "  modelward hub token create --role reader --name ci-pull\n"
        "  modelward hub token create --role publisher --name platform --format json\n"
        "  modelward hub token list\n"
        '  modelward hub token revoke 7 --reason "laptop stolen"'
    ),
)
ollama_key_app = remote.group(
    "ollama-key",
    (
        "Register, list and revoke the Ollama public keys that let `ollama pull` from a machine "
        "authenticate (admin only). A revoked key stays listed; it can be added again later.\n\n"
        "\b\nExamples:\n"
        "  modelward hub ollama-key add ~/.ollama/id_ed25519.pub --name alice-laptop\n"
        "  ssh build01 cat /usr/share/ollama/.ollama/id_ed25519.pub | "
        "modelward hub ollama-key add - --name build01\n"
        "  modelward hub ollama-key list\n"
        "  modelward hub ollama-key revoke SHA256:Xb3...Q  # or its id, as the list shows it"
    ),
)
app.add_typer(import_app, name="import")
app.add_typer(token_app, name="token")
app.add_typer(ollama_key_app, name="ollama-key")

_SERVER = remote.SERVER
_TOKEN = remote.TOKEN
_FORMAT = remote.FORMAT
_REPO = typer.Option(
    ..., "--repo", "-r", metavar="NS/NAME", help="Hub repository to create the revision in."
)
_TAG = typer.Option(
    None, "--tag", "-t", metavar="TAG", help="Tag the revision (fixed once it is approved)."
)
_REASON = typer.Option(..., "--reason", metavar="TEXT", help="Why (recorded in the audit log).")
_REPO_ARG = typer.Argument(..., metavar="REPO", help="Hub repository (namespace/name).")
_REV_ARG = typer.Argument(
    ..., metavar="REVISION", help="40-hex commit id (as `hub review` lists it), a tag or main."
)
_REVIEW_REV_ARG = typer.Argument(
    ...,
    metavar="REVISION",
    help="The revision in review: its 40-hex commit id (as `hub review` lists it) or the tag it "
    "was pushed with (not main: main names the approved revision).",
)


def _client(server: str | None, token: str | None) -> HubClient:
    from modelward.hub.client import HubClient

    return HubClient(server, token)


def _short(commit: str) -> str:
    return commit[:12]


def _human(n: int) -> str:
    from modelward.report.style import human_size

    return human_size(n)


def _severity(rev: dict[str, Any]) -> str:
    return str(rev.get("max_severity") or "clean")


def _hash(make: Any) -> IngestPlan:
    from modelward.hub.client import transfer_progress

    with transfer_progress("hashing") as bar:
        plan: IngestPlan = make(bar)
    for s in plan.skipped:
        echo(f"skipped {s}", err=True)
    return plan


def _push(
    plan: IngestPlan, repo: str, tag: str | None, server: str | None, token: str | None, fmt: str
) -> None:
    from modelward.hub.client import transfer_progress

    with _client(server, token) as hub, transfer_progress("uploading") as bar:
        result = hub.push(plan, repo, tag, bar)
    _report_push(result, fmt, plan.skipped)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _skipped(entry: str) -> dict[str, str]:
    """``"path (why)"``, as an ingest plan lists what it left out, as ``{"path", "reason"}``."""
    path, sep, why = entry.rpartition(" (")
    if not sep or not why.endswith(")"):
        return {"path": entry, "reason": ""}
    return {"path": path, "reason": why[:-1]}


def _worst_finding(rev: dict[str, Any], severity: str) -> str:
    """``RULE in FILE`` of the first finding of ``severity`` in the revision's scan report."""
    scan = rev.get("scan") if isinstance(rev.get("scan"), dict) else {}
    for f in (scan or {}).get("files", []) or []:
        if not isinstance(f, dict):
            continue
        for finding in f.get("findings", []) or []:
            if isinstance(finding, dict) and finding.get("severity") == severity:
                return f"{finding.get('rule')} in {f.get('path')}"
    return f"a {severity} finding"


def _report_push(result: PushResult, fmt: str, skipped: tuple[str, ...] = ()) -> None:
    rev = result.revision
    if fmt == "json":
        remote.print_json(
            {
                "repo": rev.get("repo"),
                "commit": rev.get("commit"),
                "state": rev.get("state"),
                "max_severity": rev.get("max_severity"),
                "files": len(rev.get("files", [])),
                "uploaded": result.uploaded,
                "already_present": result.present,
                "bytes_uploaded": result.bytes_uploaded,
                "tags": rev.get("tags", []),
                "skipped": [_skipped(s) for s in skipped],
            }
        )
        return
    files = rev.get("files", [])
    echo(
        f"{rev.get('repo')} @ {rev.get('commit')}  state: {rev.get('state')}  "
        f"scan: {_severity(rev)}"
    )
    echo(
        f"  {_plural(len(files), 'file')}; uploaded {result.uploaded} "
        f"({_human(result.bytes_uploaded)}), {result.present} already on the hub"
    )
    if rev.get("state") != "in_review":
        return
    decide = f"{rev.get('repo')} {rev.get('commit')} --reason TEXT"
    if rev.get("max_severity") == "critical":
        echo(
            f"  cannot be approved (critical finding: {_worst_finding(rev, 'critical')}); "
            f"a reviewer can only reject it: `modelward hub reject {decide}`"
        )
    elif rev.get("max_severity") == "high":
        echo(
            f"  next: a reviewer approves it only with --override (high finding: "
            f"{_worst_finding(rev, 'high')}): `modelward hub approve {decide} --override`, "
            "or rejects it"
        )
    else:
        echo(f"  next: a reviewer runs `modelward hub approve {decide}`")


def _check_tag(tag: str | None) -> None:
    """Refuse a --tag the hub would refuse or drop, before anything is hashed or uploaded."""
    from modelward.errors import UsageError
    from modelward.hub.names import validate_tag

    if tag is None:
        return
    if tag in ("main", "latest"):
        why = " (latest means main)" if tag == "latest" else ""
        raise UsageError(f"--tag: '{tag}' is moved by approval and cannot be set as a tag{why}")
    validate_tag(tag)


def _imported(rev: dict[str, Any], fmt: str) -> None:
    if fmt == "json":
        remote.print_json(rev)
        return
    echo(
        f"{rev.get('repo')} @ {rev.get('commit')}  state: {rev.get('state')}  "
        f"scan: {_severity(rev)}  files: {len(rev.get('files', []))}"
    )


# ---------------------------------------------------------------------------------------- push
@app.command(
    "push",
    help="Upload a local model folder as a new revision (it goes to the review queue).",
    epilog="""\b
Examples:
  modelward hub push ./llama-3-8b --repo acme/llama-3-8b
  modelward hub push ./tiny --repo acme/tiny --tag v1 --format json

Only files the hub does not have yet are uploaded; pushing the same files again gives the same
revision. .git/ and .cache/huggingface/ are left out. Links to files inside DIR are followed; a
link whose target is outside DIR (or is missing) stops the push before anything is uploaded,
except links from a Hugging Face cache snapshot into the blobs/ of its own repo folder.
""",
    no_args_is_help=True,
)
def push_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="The model folder to upload."),
    repo: str = _REPO,
    tag: str | None = _TAG,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.hub.ingest import from_folder
    from modelward.hub.names import validate_repo

    check_format(format, ("table", "json"))
    validate_repo(repo)
    _check_tag(tag)
    plan = _hash(lambda bar: from_folder(folder, bar))
    _push(plan, repo, tag, server, token, format)


# -------------------------------------------------------------------------------------- import
@import_app.command(
    "hf-cache",
    help="Import one revision of a model from the local Hugging Face cache.",
    epilog="""\b
Examples:
  modelward hub import hf-cache Qwen/Qwen2-0.5B --repo acme/qwen2-0.5b
  modelward hub import hf-cache gpt2 --revision 607a30d783dfa663caf39e06633721c8d4cfcd7e --repo acme/gpt2
  modelward hub import hf-cache org/model --cache-dir /mnt/hf-cache/hub --repo acme/model

The cache is $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub unless --cache-dir is given.
Every file is checked against the digest its cache blob is named by.
""",
    no_args_is_help=True,
)
def import_hf_cache_command(
    repo_id: str = typer.Argument(..., metavar="REPO_ID", help="Hugging Face repo id (org/name)."),
    revision: str = typer.Option(
        "main", "--revision", metavar="REV", help="Branch, tag or commit in the cache."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", metavar="DIR", help="Hugging Face hub cache folder."
    ),
    repo: str = _REPO,
    tag: str | None = _TAG,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.hub.ingest import from_hf_cache
    from modelward.hub.names import validate_repo

    check_format(format, ("table", "json"))
    validate_repo(repo)
    _check_tag(tag)
    plan = _hash(lambda bar: from_hf_cache(repo_id, revision, cache_dir, bar))
    _push(plan, repo, tag, server, token, format)


@import_app.command(
    "ollama",
    help="Import a local Ollama model (GGUF plus its template, params, license... layers).",
    epilog="""\b
Examples:
  modelward hub import ollama llama3.2:1b --repo acme/llama3.2 --tag 1b
  OLLAMA_MODELS=/srv/ollama modelward hub import ollama acme/coder:7b --repo acme/coder --tag 7b

The model is read from $OLLAMA_MODELS or ~/.ollama/models (or --models-dir). Developers then pull it
with `ollama pull hub:8000/acme/llama3.2:1b --insecure`.
""",
    no_args_is_help=True,
)
def import_ollama_command(
    name: str = typer.Argument(
        ..., metavar="NAME:TAG", help="Ollama model name, e.g. llama3.2:1b."
    ),
    models_dir: Path | None = typer.Option(
        None, "--models-dir", metavar="DIR", help="Ollama models folder."
    ),
    repo: str = _REPO,
    tag: str | None = _TAG,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.hub.ingest import from_ollama
    from modelward.hub.names import validate_repo

    check_format(format, ("table", "json"))
    validate_repo(repo)
    _check_tag(tag)
    plan = _hash(lambda bar: from_ollama(name, models_dir, bar))
    _push(plan, repo, tag, server, token, format)


@import_app.command(
    "upstream",
    help="Import a model from a Hugging Face-compatible hub (huggingface.co, a mirror, another modelward).",
    epilog="""\b
Examples:
  modelward hub import upstream --endpoint https://huggingface.co gpt2 --repo acme/gpt2
  modelward hub import upstream --endpoint http://other-hub:8000 team/model --revision v2 --repo acme/model
  modelward hub import upstream --endpoint https://huggingface.co org/gated --upstream-token hf_... --repo acme/gated
  modelward hub import upstream --endpoint https://mirror.local org/m --fetch-here --repo acme/m

The hub server downloads the files itself unless --fetch-here is given (then this machine downloads
and uploads them). The provenance records the endpoint, repo and the resolved commit.
""",
    no_args_is_help=True,
)
def import_upstream_command(
    repo_id: str = typer.Argument(..., metavar="REPO_ID", help="Upstream repo id (org/name)."),
    endpoint: str = typer.Option(
        ..., "--endpoint", metavar="URL", help="Upstream endpoint, e.g. https://huggingface.co."
    ),
    revision: str | None = typer.Option(
        None, "--revision", metavar="REV", help="Upstream branch, tag or commit (default main)."
    ),
    upstream_token: str | None = typer.Option(
        None,
        "--upstream-token",
        envvar="MODELWARD_UPSTREAM_TOKEN",
        metavar="TOKEN",
        help="Token for the upstream endpoint (never your HF_TOKEN implicitly).",
        show_default=False,
    ),
    fetch_here: bool = typer.Option(
        False, "--fetch-here", help="Download on this machine and upload (the hub cannot reach it)."
    ),
    repo: str = _REPO,
    tag: str | None = _TAG,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.hub.names import validate_repo

    check_format(format, ("table", "json"))
    validate_repo(repo)
    _check_tag(tag)
    if fetch_here:
        import tempfile

        from modelward.hub.ingest import from_upstream

        with tempfile.TemporaryDirectory(prefix="modelward-import-") as tmp:
            plan = _hash(
                lambda bar: from_upstream(endpoint, repo_id, tmp, revision, upstream_token, bar)
            )
            _push(plan, repo, tag, server, token, format)
        return
    with _client(server, token) as hub:
        rev = hub.import_upstream(endpoint, repo_id, repo, revision, tag, upstream_token)
    _imported(rev, format)


# -------------------------------------------------------------------------------------- review
@app.command(
    "review",
    help="List the revisions waiting for review, with their scan results (reviewer or admin).",
    epilog="""\b
Examples:
  modelward hub review
  modelward hub review --format json | jq -r '.[] | select(.max_severity == null) | .commit'
""",
)
def review_command(
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as hub:
        queue = hub.review_queue()
    if format == "json":
        remote.print_json(queue)
        return
    if not queue:
        echo("The review queue is empty.")
        return
    for rev in queue:
        files = rev.get("files", [])
        size = sum(int(f.get("size", 0)) for f in files)
        prov = rev.get("provenance") or {}
        origin = prov.get("repo") or prov.get("name") or prov.get("source") or ""
        echo(
            f"{rev.get('repo')}  {rev.get('commit')}  {_severity(rev):8}  "
            f"{_plural(len(files), 'file')} {_human(size)}  by {rev.get('created_by')}  "
            f"{prov.get('kind', '')} {origin}".rstrip()
        )


def _decide(
    verb: str,
    repo: str,
    revision: str,
    reason: str,
    fmt: str,
    server: str | None,
    token: str | None,
    **extra: Any,
) -> None:
    """Approve, reject or revoke a revision (``verb``: the hub client's method) and say so."""
    rev: dict[str, Any] = remote.call(
        fmt, _client(server, token), lambda hub: getattr(hub, verb)(repo, revision, reason, **extra)
    )

    def table(rev: dict[str, Any]) -> None:
        main = " (now main)" if rev.get("main") else ""
        done = {"approve": "approved", "reject": "rejected", "revoke": "revoked"}[verb]
        echo(f"{done} {rev.get('repo')} @ {rev.get('commit')}{main}: {rev.get('reason', '')}")

    remote.show(fmt, rev, table)


def _in_review(revision: str) -> None:
    """Refuse ``main``/``latest`` for approve and reject: they name the approved revision."""
    from modelward.errors import UsageError

    if revision in ("main", "latest"):
        raise UsageError(
            f"{revision} names the approved revision; give the commit id of the revision in "
            "review: hub review"
        )


@app.command(
    "approve",
    help="Approve a revision: it is signed and becomes pullable (reviewer or admin).",
    epilog="""\b
Examples:
  modelward hub approve acme/llama-3-8b 3f2a...c9 --reason "license ok, scan clean"
  modelward hub approve acme/old-model 77aa...01 --override --reason "pickle from our own training run"

REVISION is the commit id `hub review` lists (or the tag the revision was pushed with); main
cannot be approved, it names the approved revision. A revision with a critical finding cannot be
approved (reject it); one with a high finding needs --override.
""",
    no_args_is_help=True,
)
def approve_command(
    repo: str = _REPO_ARG,
    revision: str = _REVIEW_REV_ARG,
    reason: str = _REASON,
    override: bool = typer.Option(
        False, "--override", help="Approve despite high findings (the reason says why)."
    ),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    _in_review(revision)
    _decide("approve", repo, revision, reason, format, server, token, override=override)


@app.command(
    "reject",
    help="Reject a revision in review (reviewer or admin).",
    epilog="""\b
Examples:
  modelward hub reject acme/model 3f2a...c9 --reason "non-commercial license"

REVISION is the commit id `hub review` lists (or the tag the revision was pushed with).
""",
    no_args_is_help=True,
)
def reject_command(
    repo: str = _REPO_ARG,
    revision: str = _REVIEW_REV_ARG,
    reason: str = _REASON,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    _in_review(revision)
    _decide("reject", repo, revision, reason, format, server, token)


@app.command(
    "revoke",
    help="Revoke an approved revision: pulls fail from now on and main moves back (reviewer or admin).",
    epilog="""\b
Examples:
  modelward hub revoke acme/model 3f2a...c9 --reason "CVE in the tokenizer config"
""",
    no_args_is_help=True,
)
def revoke_command(
    repo: str = _REPO_ARG,
    revision: str = _REV_ARG,
    reason: str = _REASON,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    _decide("revoke", repo, revision, reason, format, server, token)


@app.command(
    "tag",
    help="Name an approved revision with a tag, e.g. a version (reviewer or admin).",
    epilog="""\b
Examples:
  modelward hub tag acme/llama-3-8b 3f2a...c9 v1.2 --reason "validated on the eval suite"
  ollama pull hub:8000/acme/llama-3-8b:v1.2 --insecure     # then, on a developer machine

Tags are 1-80 letters, digits, '_', '.' or '-' (every client can pull them). A publisher tags a
revision by pushing it with --tag (it goes to review); a reviewer can name an already approved
revision directly. Moving a tag to another revision is recorded in the audit log with the reason.
""",
    no_args_is_help=True,
)
def tag_command(
    repo: str = _REPO_ARG,
    revision: str = _REV_ARG,
    tag: str = typer.Argument(..., metavar="TAG", help="The tag (e.g. v1.2, 8b-q4)."),
    reason: str = _REASON,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    rev: dict[str, Any] = remote.call(
        format, _client(server, token), lambda hub: hub.tag(repo, revision, tag, reason)
    )
    remote.show(
        format,
        rev,
        lambda rev: echo(f"tagged {rev.get('repo')} @ {rev.get('commit')} as {tag}: {reason}"),
    )


@app.command(
    "show",
    help="Show one revision: state, files, provenance, scan summary, signature.",
    epilog="""\b
Examples:
  modelward hub show acme/model                 # main
  modelward hub show acme/model 3f2a...c9 --format json
""",
    no_args_is_help=True,
)
def show_command(
    repo: str = _REPO_ARG,
    revision: str = typer.Argument("main", metavar="[REVISION]", help="Commit, tag or main."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.errors import NotApproved

    check_format(format, ("table", "json"))
    with _client(server, token) as hub:
        try:
            rev = hub.revision(repo, revision)
        except NotApproved as exc:
            if revision != "main":
                raise
            raise NotApproved(
                f"{exc.message}; `modelward hub review` lists the revisions in review and "
                f"`modelward hub show {repo} COMMIT` shows one"
            ) from None
    if format == "json":
        remote.print_json(rev)
        return
    echo(f"{rev.get('repo')} @ {rev.get('commit')}")
    echo(f"  state: {rev.get('state')}  scan: {_severity(rev)}  tags: {rev.get('tags', [])}")
    if rev.get("reason"):
        echo(f"  decided by {rev.get('decided_by')}: {rev.get('reason')}")
    echo(f"  provenance: {json.dumps(rev.get('provenance', {}))}")
    echo(f"  signed: {'yes' if rev.get('signature') else 'no'}")
    for f in rev.get("files", []):
        echo(f"  {f.get('sha256', '')[:12]}  {_human(int(f.get('size', 0))):>10}  {f.get('path')}")


# -------------------------------------------------------------------------------------- verify
def _refusal(repo: str, doc: dict[str, Any]) -> str:
    """Why a copy of the revision ``doc`` describes must not be used (it is not approved)."""
    commit = doc.get("commit")
    state = str(doc.get("state") or "not approved")
    if state in ("revoked", "rejected"):
        when = _when(doc.get("decided_at"))
        who = doc.get("decided_by") or "unknown"
        reason = doc.get("reason") or "no reason recorded"
        return (
            f"{repo} @ {commit} was {state} on {when} UTC by {who}: {reason}; do not use this copy"
        )
    return (
        f"{repo} @ {commit} is {state.replace('_', ' ')}: no reviewer has approved it; "
        "do not use this copy"
    )


def _signature_or_refusal(hub: HubClient, repo: str, revision: str) -> Signature | str:
    """The signature of an approved revision, or why the revision must not be used.

    A revoked revision keeps its signature: the state the server sends with it decides. A reader
    gets 403 ``revoked`` / ``not_approved`` for such a revision instead; those are refusals too.
    Any other failure (server unreachable, unknown repo or revision) is raised as it is.
    """
    from modelward.errors import HubError, NotApproved, NotFound, Revoked

    try:
        sig = hub.signature(repo, revision)
    except Revoked as exc:  # a reader: the message carries the reason, after "was revoked: "
        commit = exc.detail.get("commit") or revision
        reason = exc.message.split(" was revoked: ", 1)[-1]
        return f"{repo} @ {commit} was revoked: {reason}; do not use this copy"
    except NotApproved as exc:
        commit = exc.detail.get("commit") or revision
        return f"{repo} @ {commit} is not approved ({exc.message}); do not use this copy"
    except NotFound as exc:
        if exc.code != NotFound.code:  # no such repo, revision...: a real failure
            raise
        try:  # the revision exists but has no signature: say why (its state)
            doc = hub.revision(repo, revision)
        except HubError:
            raise exc from None
        if doc.get("state") == "approved":
            raise
        return _refusal(repo, doc)
    if sig.state == "approved":
        return sig
    try:
        doc = hub.revision(repo, sig.commit)
    except HubError:
        doc = {"commit": sig.commit, "state": sig.state}
    return _refusal(repo, doc)


@app.command(
    "verify",
    help="Check a downloaded model folder against the hub's signature of the revision.",
    epilog="""\b
Examples:
  hf download acme/llama-3-8b --local-dir ./llama && modelward hub verify ./llama --repo acme/llama-3-8b
  modelward hub verify ~/.cache/huggingface/hub/models--acme--m/snapshots/3f2a... --repo acme/m --revision 3f2a...

\b
Exit codes:
  0  every file matches the signed revision, and the revision is approved
  1  a file differs, is missing or extra (each named), or the revision was revoked, rejected
     or never approved (a copy of it must not be used; the message says when, who and why)
  2  the signature could not be fetched or checked (server unreachable, unknown repo or
     revision, bad token)
""",
    no_args_is_help=True,
)
def verify_command(
    folder: Path = typer.Argument(..., metavar="DIR", help="The downloaded model folder."),
    repo: str = typer.Option(
        ...,
        "--repo",
        "-r",
        metavar="NS/NAME",
        help="Hub repository the copy was downloaded from.",
    ),
    revision: str = typer.Option(
        "main", "--revision", metavar="REV", help="Commit, tag or main (default main)."
    ),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.errors import UsageError
    from modelward.hub.signing import verify_folder

    check_format(format, ("table", "json"))
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder")
    with _client(server, token) as hub:
        sig = _signature_or_refusal(hub, repo, revision)
    if isinstance(sig, str):
        if format == "json":
            remote.print_json({"ok": False, "repo": repo, "revision": revision, "error": sig})
        else:
            echo(f"FAILED: {sig}", err=True)
        raise typer.Exit(1)
    result = verify_folder(folder, sig.bundle, sig.public_pem)
    ok = result.ok
    if format == "json":
        remote.print_json(
            {
                "ok": ok,
                "repo": repo,
                "commit": sig.commit,
                "files_checked": result.files_checked,
                "files_signed": result.files_signed,
                "key_fingerprint": result.key_fingerprint,
                "problems": [
                    {"path": p.path, "kind": p.kind, "reason": p.reason} for p in result.problems
                ],
            }
        )
    elif ok:
        echo(
            f"OK: {folder} matches {repo} @ {sig.commit} ({_plural(result.files_checked, 'file')}), "
            f"signed by the hub key {result.key_fingerprint[:16]}"
        )
    else:
        echo(f"FAILED: {folder} does not match {repo} @ {sig.commit}:", err=True)
        for p in result.problems:
            echo(f"  {p.path or '<signature>'}: {p.reason}", err=True)
    raise typer.Exit(0 if ok else 1)


# ------------------------------------------------------------------------------ tokens and keys
def _check_role(role: str) -> None:
    from modelward.errors import UsageError

    if role not in ROLES:
        raise UsageError(f"--role {role!r} is not one of: {', '.join(ROLES)}")


@token_app.command(
    "create",
    help="Create an API token with a role; it is shown once.",
    epilog="""\b
Examples:
  modelward hub token create --role reader --name ci-pull
  HF_TOKEN=$(modelward hub token create --role reader --format json | jq -r .token)
""",
    no_args_is_help=True,
)
def token_create_command(
    role: str = typer.Option(..., "--role", metavar="ROLE", help=f"One of: {', '.join(ROLES)}."),
    name: str | None = typer.Option(None, "--name", metavar="NAME", help="Who or what uses it."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    _check_role(role)
    with _client(server, token) as hub:
        doc = hub.create_token(role, name)
    if format == "json":
        remote.print_json(doc)
        return
    ident = f" (id {doc['id']})" if doc.get("id") is not None else ""
    echo(f"{doc.get('role')} token {doc.get('name') or ''}{ident} (shown once, store it now):")
    echo(f"  {doc.get('token')}")


_REVOKE_REASON = typer.Option(
    "", "--reason", metavar="TEXT", help="Why (recorded in the audit log).", show_default=False
)


def _when(at: object) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM`` (UTC) for tables."""
    text = str(at or "")
    return text[:16].replace("T", " ") if text else "-"


def _status(doc: dict[str, Any]) -> str:
    return f"revoked {_when(doc.get('revoked_at'))}" if doc.get("revoked") else "active"


def _show_access(
    format: str,
    rows: list[dict[str, Any]],
    empty: str,
    middle: tuple[str, Callable[[dict[str, Any]], str], int],
    verb: str,
) -> None:
    """Tokens or Ollama keys: id, role, one column of its own (``middle``: title, cell, width),
    status, name and who made it."""
    title, cell, width = middle

    def table(rows: list[dict[str, Any]]) -> None:
        if not rows:
            echo(empty)
            return
        echo(f"{'ID':>5}  {'ROLE':9}  {title:{width}}  {'STATUS':24}  NAME")
        for r in rows:
            echo(
                f"{r.get('id'):>5}  {r.get('role', ''):9}  {cell(r):{width}}  "
                f"{_status(r):24}  {r.get('name')}  ({verb} by {r.get('created_by') or '-'})"
            )

    remote.show(format, rows, table)


def _show_revoked(format: str, doc: dict[str, Any], what: str, effect: str) -> None:
    def table(doc: dict[str, Any]) -> None:
        if doc.get("already_revoked"):
            echo(f"{what} was already revoked on {_when(doc.get('revoked_at'))}")
        else:
            echo(f"revoked {what}: {effect}")

    remote.show(format, doc, table)


@token_app.command(
    "list",
    help="List the API tokens: id, role, name, who created each when, and which are revoked.",
    epilog="""\b
Examples:
  modelward hub token list
  modelward hub token list --format json | jq '.[] | select(.revoked | not) | .id'

The tokens themselves are never shown (the hub keeps only their hashes): a lost token cannot be
recovered, only revoked (`hub token revoke ID`) and replaced (`hub token create`).
""",
)
def token_list_command(
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    rows: list[dict[str, Any]] = remote.call(format, _client(server, token), lambda h: h.tokens())
    created = ("CREATED", lambda r: _when(r.get("created_at")), 16)
    _show_access(format, rows, "No API tokens.", created, "created")


@token_app.command(
    "revoke",
    help="Revoke an API token at once: every request with it gets 401 from now on.",
    epilog="""\b
Examples:
  modelward hub token list                       # find the token's id
  modelward hub token revoke 7 --reason "left the team"
  modelward hub token revoke 7 --format json

This also ends the registry tokens that `oras`/`docker login` got with it, and a web UI session
logged in with it. Revoking a revoked token changes nothing. The last active admin token cannot
be revoked (create another admin token first), so the hub cannot be locked out.
""",
    no_args_is_help=True,
)
def token_revoke_command(
    token_id: int = typer.Argument(..., metavar="ID", help="The token's id (`hub token list`)."),
    reason: str = _REVOKE_REASON,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    doc: dict[str, Any] = remote.call(
        format, _client(server, token), lambda h: h.revoke_token(token_id, reason)
    )

    what = f"{doc.get('role')} token {doc.get('id')} {doc.get('name')!r}"
    _show_revoked(format, doc, what, "requests with it get 401 from now on")


@ollama_key_app.command(
    "add",
    help="Register an Ollama public key (~/.ollama/id_ed25519.pub) with a role.",
    epilog="""\b
Examples:
  modelward hub ollama-key add ~/.ollama/id_ed25519.pub --name alice-laptop
  cat id_ed25519.pub | modelward hub ollama-key add - --name build01 --role reader
""",
    no_args_is_help=True,
)
def ollama_key_add_command(
    pubkey: str = typer.Argument(
        ..., metavar="PUBKEY_FILE|-", help="The public key file, or - to read it from stdin."
    ),
    name: str | None = typer.Option(
        None, "--name", metavar="NAME", help="Whose key (default: the key's comment)."
    ),
    role: str = typer.Option("reader", "--role", metavar="ROLE", help="Role the key gets."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    from modelward.errors import UsageError

    check_format(format, ("table", "json"))
    _check_role(role)
    if pubkey == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(pubkey).expanduser().read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read {pubkey}: {exc}") from None
    text = text.strip()
    fields = text.split()
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        raise UsageError(
            f"{pubkey} is not an Ollama public key (expected 'ssh-ed25519 AAAA...', as in "
            "~/.ollama/id_ed25519.pub)"
        )
    key_name = name or (" ".join(fields[2:]) if len(fields) > 2 else "")
    if not key_name:
        raise UsageError("the key has no comment: give it a --name")
    with _client(server, token) as hub:
        doc = hub.add_ollama_key(" ".join(fields[:2]), key_name, role)
    if format == "json":
        remote.print_json(doc)
        return
    echo(f"registered Ollama key {key_name!r} ({role}) {doc.get('fingerprint', '')}".rstrip())


@ollama_key_app.command(
    "list",
    help="List the registered Ollama keys: id, role, fingerprint, name, and which are revoked.",
    epilog="""\b
Examples:
  modelward hub ollama-key list
  modelward hub ollama-key list --format json | jq -r '.[] | select(.revoked | not) | .fingerprint'

A key's fingerprint is what `ssh-keygen -lf ~/.ollama/id_ed25519.pub` prints on its machine.
""",
)
def ollama_key_list_command(
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    rows: list[dict[str, Any]] = remote.call(
        format, _client(server, token), lambda h: h.ollama_keys()
    )

    fingerprint = ("FINGERPRINT", lambda r: str(r.get("fingerprint", "")), 50)
    _show_access(format, rows, "No Ollama keys registered.", fingerprint, "added")


@ollama_key_app.command(
    "revoke",
    help="Revoke an Ollama key by id or fingerprint: `ollama pull` with it stops at once.",
    epilog="""\b
Examples:
  modelward hub ollama-key list                  # find the key's id or fingerprint
  modelward hub ollama-key revoke 3 --reason "laptop replaced"
  modelward hub ollama-key revoke SHA256:Xb3...Q --format json

The registry tokens Ollama got with the key stop working on its next request. The key stays
listed, as revoked; `hub ollama-key add` registers it again (its earlier tokens stay dead).
""",
    no_args_is_help=True,
)
def ollama_key_revoke_command(
    key: str = typer.Argument(
        ..., metavar="ID|FINGERPRINT", help="The key's id or SHA256:... fingerprint."
    ),
    reason: str = _REVOKE_REASON,
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    doc: dict[str, Any] = remote.call(
        format, _client(server, token), lambda h: h.revoke_ollama_key(key, reason)
    )

    what = f"Ollama key {doc.get('id')} {doc.get('name')!r} ({doc.get('fingerprint')})"
    _show_revoked(format, doc, what, "it no longer authenticates")


# ------------------------------------------------------------------------------------ gc, audit
@app.command(
    "gc",
    help="Delete blobs no revision uses (admin). Lists them only, unless --apply.",
    epilog="""\b
Examples:
  modelward hub gc            # what would be deleted
  modelward hub gc --apply

Grace period: blobs uploaded (or uploaded again) within the last hour are kept even when no
revision uses them yet, so a push in progress keeps what it has sent. While an upload is still
in progress, the hour counts back from when it began: an OCI upload session opened within the
last day, or (its start unknown) a day back when an upload is being written. Run gc again
later to delete what was kept.
""",
)
def gc_command(
    apply: bool = typer.Option(False, "--apply", help="Delete for real (default: dry run)."),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as hub:
        doc = hub.gc(apply)
    if format == "json":
        remote.print_json(doc)
        return
    blobs = doc.get("blobs", [])
    verb = "deleted" if apply else "would delete"
    echo(f"{verb} {len(blobs)} unreferenced blob(s)")
    for d in blobs:
        echo(f"  {d}")
    if blobs and not apply:
        echo("run again with --apply to delete them")


@app.command(
    "audit",
    help="Show the audit log: who pushed, approved, rejected or revoked what, when and why.",
    epilog="""\b
Examples:
  modelward hub audit
  modelward hub audit --repo acme/model --format json
""",
)
def audit_command(
    repo: str | None = typer.Option(
        None, "--repo", "-r", metavar="NS/NAME", help="Only this repo."
    ),
    server: str | None = _SERVER,
    token: str | None = _TOKEN,
    format: str = _FORMAT,
) -> None:
    check_format(format, ("table", "json"))
    with _client(server, token) as hub:
        events = hub.audit(repo)
    if format == "json":
        remote.print_json(events)
        return
    for e in events:
        commit = _short(str(e.get("commit") or ""))
        # what the event's detail says in a word (override=True, tag=v1, role=reader ...)
        detail = e.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        said = " ".join(
            f"{k}={v}"
            for k, v in detail.items()
            if isinstance(v, str | int | bool) and v is not False and v != ""
        )
        echo(
            f"{e.get('at')}  {e.get('actor')}  {e.get('action')}  {e.get('repo')} {commit}  "
            f"{e.get('reason') or ''}{f'  [{said}]' if said else ''}".rstrip()
        )
