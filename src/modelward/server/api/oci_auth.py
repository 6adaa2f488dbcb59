"""The ``/v2/`` auth of OCI and Ollama clients: the token challenge, ``/v2/token``, registry tokens.

A 401 carries ``WWW-Authenticate: Bearer realm="<this host>/v2/token"`` (Ollama insists that the
realm's host:port is the one it asked). ``/v2/token`` trades ``Basic any:<API token>`` (oras,
docker), ``Bearer <API token>`` or an Ollama ed25519-signed request from a registered key for a
one-hour registry token (:mod:`modelward.hub.urlsign`), which names the API token or key it came
from: each use checks that one still exists, so revoking it ends its registry tokens at once. An
Ollama-signed request is good for one token: the database remembers it until its timestamp is
stale (table ``used_challenges``), so a captured request cannot be replayed on any replica.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from modelward.errors import DigestMismatch, Unauthorized
from modelward.hub import urlsign
from modelward.hub.names import validate_repo
from modelward.hub.ollama_auth import parse_authorization, verify_token_request
from modelward.server.auth import (
    ANONYMOUS,
    Need,
    Principal,
    check,
    credentials,
    hash_token,
    iso,
    lookup,
)
from modelward.store.db import Database, OllamaKey, Token, UsedChallenge, utcnow

router = APIRouter(tags=["oci"])

API_VERSION: Final = {"Docker-Distribution-API-Version": "registry/2.0"}
SERVICE: Final = "modelward"
TOKEN_TTL: Final = 3600


# --------------------------------------------------------------------------- auth
def url_key(request: Request) -> bytes:
    raw: str = request.app.state.url_key
    try:
        return bytes.fromhex(raw)
    except ValueError:
        return raw.encode()


def base_url(request: Request) -> str:
    """The URL clients reach this server at: ``public_url`` if set, else the request's host:port."""
    public = request.app.state.settings.public_url
    if public:
        return str(public).rstrip("/")
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


def challenge(request: Request, repo: str | None, need: Need) -> str:
    """The ``WWW-Authenticate`` value; the realm's host:port is the request's (Ollama insists)."""
    value = f'Bearer realm="{base_url(request)}/v2/token",service="{SERVICE}"'
    if repo:
        actions = "pull,push" if need == "publish" else "pull"
        value += f',scope="repository:{repo}:{actions}"'
    return value


def _registry_principal(request: Request) -> None:
    """Accept a ``/v2/token`` bearer token: check it and that what it stands for still exists."""
    token = credentials(request)
    if not token or not urlsign.is_registry_token(token):
        return
    try:
        claims = urlsign.verify_token(url_key(request), token)
    except Unauthorized:
        return
    found = _still_valid(request, claims)
    if found is not None:
        request.state.principal = found


def _still_valid(request: Request, claims: urlsign.RegistryToken) -> Principal | None:
    kind, _, ident = claims.via.partition(":")
    if kind == "anonymous":
        return ANONYMOUS if request.app.state.settings.anonymous_read else None
    with request.app.state.db.session() as s:
        if kind == "token":
            row = s.scalar(select(Token).where(Token.token_hash == ident))
            if row is None or row.revoked_at is not None:
                return None
            return Principal(row.name, row.role)
        if kind == "ollama":
            blob, _, registered = ident.partition("@")
            key = s.scalar(select(OllamaKey).where(OllamaKey.public_key == blob))
            if key is None or key.revoked_at is not None:
                return None
            if registered and registered != _registration(key):
                return None  # issued before the key was revoked and registered again
            return Principal(f"ollama:{key.name}", key.role)
    return None


def _registration(key: OllamaKey) -> str:
    """When ``key`` was (last) registered, as registry tokens name it (``ollama:<blob>@<this>``)."""
    return iso(key.created_at) or ""


def caller(request: Request, need: Need, repo: str | None = None) -> Principal:
    """The authenticated caller allowed ``need``; a 401 carries the token challenge."""
    _registry_principal(request)
    try:
        return check(request, need)
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": challenge(request, repo, need), **API_VERSION}  # type: ignore[attr-defined]
        raise


def repo_name(ns: str, name: str) -> str:
    return validate_repo(f"{ns}/{name}")


def digest_hex(digest: str) -> str:
    if not (digest.startswith("sha256:") and len(digest) == 71) or any(
        c not in "0123456789abcdef" for c in digest[7:]
    ):
        raise DigestMismatch(
            f"digest {digest[:80]!r} is not sha256:<64 lowercase hex>", digest=digest[:80]
        )
    return digest[7:]


@router.api_route("/v2/", methods=["GET", "HEAD"], include_in_schema=True)
@router.api_route("/v2", methods=["GET", "HEAD"], include_in_schema=False)
def ping(request: Request) -> Response:
    """OCI ``/v2/`` check: 200 for an authorised caller, else 401 with the token challenge."""
    caller(request, "read")
    return JSONResponse({}, headers=API_VERSION)


@router.get("/v2/token")
def token(request: Request) -> JSONResponse:
    """Docker/Ollama token endpoint: ``Basic any:<token>``, ``Bearer <token>`` or an Ollama key.

    A 401 asks for Basic credentials (``WWW-Authenticate: Basic``), as a registry's token
    service does: docker, oras and Ollama then retry with the user's credentials."""
    try:
        return _issue(request)
    except Unauthorized as exc:
        exc.headers = {"WWW-Authenticate": 'Basic realm="modelward"', **API_VERSION}  # type: ignore[attr-defined]
        raise


def _issue(request: Request) -> JSONResponse:
    header = request.headers.get("authorization", "").strip()
    key = url_key(request)
    scheme = header.partition(" ")[0].lower()
    if header and scheme not in ("basic", "bearer"):
        who, via = _ollama_principal(request, header)
    else:
        secret = credentials(request)
        if secret:
            found = lookup(request.app.state.db, secret)
            if found is None:
                raise Unauthorized("invalid or revoked token")
            who, via = found, "token:" + hash_token(secret)
        elif request.app.state.settings.anonymous_read:
            who, via = ANONYMOUS, "anonymous:"
        else:
            raise Unauthorized(
                "authentication required: log in with any user name and an API token as the "
                "password, or register this machine's Ollama key"
            )
    issued = urlsign.issue_token(key, who.name, who.role, ttl=TOKEN_TTL, via=via)
    return JSONResponse(
        {"token": issued, "access_token": issued, "expires_in": TOKEN_TTL},
        headers={"Cache-Control": "no-store"},
    )


def _ollama_principal(request: Request, header: str) -> tuple[Principal, str]:
    key, _sig = parse_authorization(header)
    db: Database = request.app.state.db
    with db.session() as s:
        row = s.scalar(select(OllamaKey).where(OllamaKey.public_key == key.blob_b64))
        if row is not None and row.revoked_at is not None:
            raise Unauthorized(
                f"this Ollama key ({key.fingerprint}) was revoked on {iso(row.revoked_at)}: an "
                "administrator can register it again with 'modelward hub ollama-key add'",
                fingerprint=key.fingerprint,
            )
        registered = [key] if row is not None else []
        name, role = (row.name, row.role) if row is not None else ("", "")
        since = _registration(row) if row is not None else ""
    query = request.url.query
    candidates = [f"{base_url(request)}{request.url.path}?{query}", str(request.url)]
    verify_token_request(
        header, candidates, registered, remember=lambda c, exp: remember_challenge(db, c, exp)
    )
    return Principal(f"ollama:{name}", role), f"ollama:{key.blob_b64}@{since}"


def remember_challenge(db: Database, challenge: str, expires: int) -> bool:
    """Record a used signed request until ``expires`` (unix); False when it was recorded before.

    The primary key decides, in the database: of two replicas given the same request at once, one
    insert wins and the other fails. Expired records are dropped on the way.
    """
    try:
        with db.session() as s:
            s.execute(delete(UsedChallenge).where(UsedChallenge.expires_at < utcnow()))
            s.add(UsedChallenge(id=challenge, expires_at=datetime.fromtimestamp(expires + 1, UTC)))
    except IntegrityError:
        return False
    return True
