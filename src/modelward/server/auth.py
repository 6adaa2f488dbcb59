"""API tokens with roles, and the FastAPI dependencies that check them on every route.

Roles: ``admin`` (everything), ``reviewer`` (read, review queue, approve/reject/revoke),
``publisher`` (read, push/import), ``reader`` (read approved models). Tokens are random, shown once
and stored only as their SHA-256. ``Authorization: Bearer <token>``; ``Basic`` with the token as the
password is accepted too (OCI clients such as oras log in that way). The web UI keeps the token in
an HttpOnly cookie, used only when a request has no Authorization header (see :func:`session_token`).

Every request looks its token up in the database, so revoking one (:func:`revoke_token`) ends it at
once on every replica; the last active admin token cannot be revoked, so the hub cannot be locked
out. :func:`list_tokens` never shows a token or its hash.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from modelward.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from modelward.store.db import Database, OllamaKey, Token, utcnow

ROLES = ("admin", "reviewer", "publisher", "reader")
Need = Literal["read", "publish", "review", "admin"]
_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "publish", "review", "admin"}),
    "reviewer": frozenset({"read", "review"}),
    "publisher": frozenset({"read", "publish"}),
    "reader": frozenset({"read"}),
}
TOKEN_PREFIX = "mw_"
_MAX_ID = 1 << 31  # ids are 32-bit integers in the database


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a token's name and role (``anonymous`` when anonymous read is on)."""

    name: str
    role: str

    def can(self, need: str) -> bool:
        return need in _GRANTS.get(self.role, frozenset())


ANONYMOUS = Principal("anonymous", "reader")
TokenVerifier = Callable[[str], Principal | None]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(
    db: Database, name: str, role: str, created_by: str, token: str | None = None
) -> str:
    """Store a new token (or the given one) and return it in clear, the only time it is shown."""
    if role not in ROLES:
        raise BadRequest(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}", role=role)
    token = token or new_token()
    with db.session() as s:
        if s.scalar(select(Token).where(Token.token_hash == hash_token(token))) is None:
            s.add(Token(name=name, role=role, token_hash=hash_token(token), created_by=created_by))
    return token


class LastAdminToken(Conflict):
    """Revoking this token would leave the hub without an active admin token."""

    code = "last_admin_token"


def iso(at: datetime | None) -> str | None:
    """A stored time as ISO 8601 in UTC (SQLite hands back naive datetimes, which are UTC)."""
    from modelward.hub.revision import utc_iso

    return None if at is None else utc_iso(at)


def token_doc(row: Token) -> dict[str, Any]:
    """What an admin may see of a token: never the token nor its hash."""
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "revoked_at": iso(row.revoked_at),
        "revoked": row.revoked_at is not None,
    }


def id_of_token(db: Database, token: str) -> int | None:
    """The id of ``token`` (given in clear), what ``token list`` and ``token revoke`` use."""
    with db.session() as s:
        return s.scalar(select(Token.id).where(Token.token_hash == hash_token(token)))


def list_tokens(db: Database) -> list[dict[str, Any]]:
    """Every token ever created (revoked ones too, for the record), oldest first."""
    with db.session() as s:
        return [token_doc(row) for row in s.scalars(select(Token).order_by(Token.id))]


def revoke_token(db: Database, token_id: int) -> tuple[dict[str, Any], bool]:
    """Revoke token ``token_id``; ``(its record, whether it was active until now)``.

    Revoking a revoked token changes nothing. The last active admin token is refused
    (:class:`LastAdminToken`): the active admin rows are locked first (PostgreSQL; SQLite
    transactions are serialised), so two admins revoking each other's token at once cannot both
    succeed.
    """
    with db.session() as s:
        row = s.get(Token, token_id) if 0 < token_id < _MAX_ID else None
        if row is None:
            raise NotFound(
                f"there is no API token with id {token_id} (modelward hub token list shows them)",
                id=token_id,
            )
        if row.role == "admin":
            # Every active admin row, locked in id order (no deadlock between two revocations),
            # then this row again as the lock holder sees it.
            admins = s.scalars(
                select(Token.id)
                .where(Token.role == "admin", Token.revoked_at.is_(None))
                .order_by(Token.id)
                .with_for_update()
            ).all()
            s.refresh(row)
            if row.revoked_at is None and set(admins) <= {row.id}:
                raise LastAdminToken(
                    f"token {row.id} ({row.name!r}) is the last active admin token: revoking it "
                    "would lock every admin out of the hub; create another admin token first "
                    "(modelward hub token create --role admin), then revoke this one",
                    id=row.id,
                )
        else:
            s.refresh(row, with_for_update=True)
        if row.revoked_at is not None:
            return token_doc(row), False
        row.revoked_at = utcnow()
        s.flush()
        return token_doc(row), True


# ----------------------------------------------------------------------------------- Ollama keys
def _fingerprint(blob_b64: str) -> str:
    from modelward.hub.ollama_auth import key_from_blob

    return key_from_blob(base64.b64decode(blob_b64)).fingerprint


def ollama_key_doc(row: OllamaKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "fingerprint": _fingerprint(row.public_key),
        "public_key": f"ssh-ed25519 {row.public_key}",
        "created_at": iso(row.created_at),
        "created_by": row.created_by,
        "revoked_at": iso(row.revoked_at),
        "revoked": row.revoked_at is not None,
    }


def list_ollama_keys(db: Database) -> list[dict[str, Any]]:
    """Every registered Ollama key (revoked ones too, for the record), oldest first."""
    with db.session() as s:
        return [ollama_key_doc(row) for row in s.scalars(select(OllamaKey).order_by(OllamaKey.id))]


def _find_key(s: Session, ident: str) -> OllamaKey | None:
    """The key with id ``ident`` (digits) or fingerprint ``ident`` (``SHA256:...``, prefix optional)."""
    ident = ident.strip()
    if ident.isdigit():
        return (
            s.get(OllamaKey, int(ident), with_for_update=True) if 0 < int(ident) < _MAX_ID else None
        )
    wanted = ident if ident.startswith("SHA256:") else "SHA256:" + ident
    for row in s.scalars(select(OllamaKey).order_by(OllamaKey.id)):
        if _fingerprint(row.public_key) == wanted:
            return s.get(OllamaKey, row.id, with_for_update=True)
    return None


def revoke_ollama_key(db: Database, ident: str) -> tuple[dict[str, Any], bool]:
    """Revoke the key with id or fingerprint ``ident``; ``(its record, whether it was active)``.

    The row stays (with ``revoked_at``): the key no longer authenticates, and the registry tokens
    issued to it stop working at once. Registering the same key again is an admin's explicit act
    (:func:`register_ollama_key`).
    """
    with db.session() as s:
        row = _find_key(s, ident)
        if row is None:
            raise NotFound(
                f"there is no Ollama key with id or fingerprint {ident[:80]!r} "
                "(modelward hub ollama-key list shows them)",
                key=ident[:80],
            )
        if row.revoked_at is not None:
            return ollama_key_doc(row), False
        row.revoked_at = utcnow()
        s.flush()
        return ollama_key_doc(row), True


def register_ollama_key(
    db: Database, blob_b64: str, name: str, role: str, created_by: str
) -> dict[str, Any]:
    """Register a key, or register a revoked one again (a new registration: new name, role and
    time; the registry tokens issued before its revocation stay dead). An active key: 409."""
    from sqlalchemy.exc import IntegrityError

    try:
        with db.session() as s:
            row = s.scalar(
                select(OllamaKey).where(OllamaKey.public_key == blob_b64).with_for_update()
            )
            if row is not None and row.revoked_at is None:
                raise Conflict(
                    f"this Ollama key is already registered ({_fingerprint(blob_b64)}) as "
                    f"{row.name!r}, id {row.id}",
                    id=row.id,
                )
            if row is None:
                row = OllamaKey(name=name, public_key=blob_b64, role=role, created_by=created_by)
                s.add(row)
            else:
                row.name, row.role, row.created_by = name, role, created_by
                row.created_at, row.revoked_at = utcnow(), None
            s.flush()
            return ollama_key_doc(row)
    except IntegrityError:  # another request registered it at the same moment
        raise Conflict(
            f"this Ollama key is already registered ({_fingerprint(blob_b64)})"
        ) from None


def lookup(db: Database, token: str) -> Principal | None:
    with db.session() as s:
        row = s.scalar(select(Token).where(Token.token_hash == hash_token(token)))
        if row is None or row.revoked_at is not None:
            return None
        return Principal(row.name, row.role)


def credentials(request: Request) -> str | None:
    """The token in the Authorization header (Bearer, or Basic with the token as password)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return decoded.partition(":")[2] or None
    return None


SESSION_COOKIE = "modelward_session"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def session_token(request: Request) -> str | None:
    """The API token in the web UI's session cookie, when the request may use it.

    Only without an Authorization header, and for a state-changing method only once the web route
    has checked the form's CSRF token (``request.state.csrf_ok``): a cookie alone never approves.
    """
    if request.headers.get("authorization"):
        return None
    if request.method not in _SAFE_METHODS and not getattr(request.state, "csrf_ok", False):
        return None
    token = request.cookies.get(SESSION_COOKIE, "")
    return token if token.startswith(TOKEN_PREFIX) else None


def principal(request: Request) -> Principal | None:
    """The authenticated caller, or None (no or unknown credentials)."""
    cached: Principal | None = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    token = credentials(request)
    if not token:
        cookie = session_token(request)
        if cookie is None:
            return None
        found_cookie = lookup(request.app.state.db, cookie)
        if found_cookie is not None:
            request.state.principal = found_cookie
        return found_cookie
    app = request.app
    found = lookup(app.state.db, token) if token.startswith(TOKEN_PREFIX) else None
    if found is None:
        for verify in getattr(app.state, "token_verifiers", []):
            found = verify(token)
            if found is not None:
                break
    if found is not None:
        request.state.principal = found
    return found


def require(need: Need) -> Callable[[Request], Principal]:
    """A FastAPI dependency: the caller, who must be allowed ``need`` (401 / 403 otherwise)."""

    def dependency(request: Request) -> Principal:
        return check(request, need)

    return dependency


def check(request: Request, need: Need) -> Principal:
    who = principal(request)
    if who is None:
        has_credentials = bool(request.headers.get("authorization"))
        if need == "read" and request.app.state.settings.anonymous_read and not has_credentials:
            return ANONYMOUS
        raise Unauthorized(
            "invalid or revoked token"
            if has_credentials
            else "authentication required: "
            "pass a token (Authorization: Bearer <token>, HF_TOKEN or --token)"
        )
    if not who.can(need):
        raise Forbidden(
            f"the {who.role} role may not {need}; ask an admin for a token with that right",
            role=who.role,
            needs=need,
        )
    return who
