"""API tokens with roles, and the FastAPI dependencies that check them on every route.

Roles: ``admin`` (everything), ``reviewer`` (read, review queue, approve/reject/revoke),
``publisher`` (read, push/import), ``reader`` (read approved models). Tokens are random, shown once
and stored only as their SHA-256. ``Authorization: Bearer <token>``; ``Basic`` with the token as the
password is accepted too (OCI clients such as oras log in that way). The web UI keeps the token in
an HttpOnly cookie, used only when a request has no Authorization header (see :func:`session_token`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request
from sqlalchemy import select

from modelward.errors import BadRequest, Forbidden, Unauthorized
from modelward.store.db import Database, Token

ROLES = ("admin", "reviewer", "publisher", "reader")
Need = Literal["read", "publish", "review", "admin"]
_GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset({"read", "publish", "review", "admin"}),
    "reviewer": frozenset({"read", "review"}),
    "publisher": frozenset({"read", "publish"}),
    "reader": frozenset({"read"}),
}
TOKEN_PREFIX = "mw_"


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
