"""HMAC-SHA256 signed, short-lived values: blob URLs that work without a token, registry tokens.

A signed blob URL carries ``?exp=<unix seconds>&sig=<hex>`` where ``sig`` is the HMAC of the repo,
the digest and ``exp`` under a key every replica shares (stored in the database). Ollama follows
such a URL (the ``Location`` of a blob GET) with ranged GETs that carry no ``Authorization``.
A registry token (what ``/v2/token`` hands out) is ``mwr_<payload>.<sig>`` with the subject, role
and expiry in the payload. Both are stateless, so any replica can check them; comparisons are
constant-time. The standard library's ``hmac`` is all this needs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import urllib.parse
from dataclasses import dataclass
from typing import Any, Final

from modelward.errors import Forbidden, Unauthorized

_BLOB_DOMAIN: Final = b"modelward-blob-url-v1\n"
_TOKEN_DOMAIN: Final = b"modelward-registry-token-v1\n"
TOKEN_PREFIX: Final = "mwr_"
_MAX_TOKEN = 2048


def _mac(key: bytes, domain: bytes, *parts: str) -> str:
    if len(key) < 16:
        raise ValueError("URL-signing key must be at least 16 bytes")
    msg = domain + b"\n".join(p.encode("utf-8", "surrogatepass") for p in parts)
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def sign_blob(
    key: bytes, repo: str, digest: str, *, ttl: int, now: float | None = None
) -> dict[str, str]:
    """Query parameters (``exp``, ``sig``) that let anyone fetch ``digest`` of ``repo`` until expiry."""
    exp = str(int(time.time() if now is None else now) + max(1, int(ttl)))
    return {"exp": exp, "sig": _mac(key, _BLOB_DOMAIN, repo, digest, exp)}


def signed_blob_query(
    key: bytes, repo: str, digest: str, *, ttl: int, now: float | None = None
) -> str:
    return urllib.parse.urlencode(sign_blob(key, repo, digest, ttl=ttl, now=now))


def verify_blob(
    key: bytes,
    repo: str,
    digest: str,
    exp: str | None,
    sig: str | None,
    *,
    now: float | None = None,
) -> None:
    """Raise :class:`Forbidden` unless ``exp``/``sig`` were made by :func:`sign_blob` for this
    repo and digest and have not expired."""
    if not exp or not sig:
        raise Forbidden("signed blob URL is missing 'exp' or 'sig'")
    if not exp.isdigit() or len(exp) > 12 or len(sig) != 64:
        raise Forbidden("signed blob URL is malformed")
    expected = _mac(key, _BLOB_DOMAIN, repo, digest, exp)
    if not hmac.compare_digest(expected, sig.lower()):
        raise Forbidden("signed blob URL signature is not valid for this blob")
    if int(exp) < (time.time() if now is None else now):
        raise Forbidden("signed blob URL has expired; request the blob again")


# --------------------------------------------------------------------------- registry tokens
@dataclass(frozen=True, slots=True)
class RegistryToken:
    """Who a ``/v2/token`` bearer token speaks for."""

    subject: str
    role: str
    expires: int
    via: str = ""  # "token" (Basic with an API token) or "ollama-key:<fingerprint>"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def issue_token(
    key: bytes, subject: str, role: str, *, ttl: int, via: str = "", now: float | None = None
) -> str:
    """A bearer token for the ``/v2/`` routes, valid for ``ttl`` seconds."""
    exp = int(time.time() if now is None else now) + max(1, int(ttl))
    payload = _b64(
        json.dumps({"sub": subject, "role": role, "exp": exp, "via": via}, sort_keys=True).encode()
    )
    return f"{TOKEN_PREFIX}{payload}.{_mac(key, _TOKEN_DOMAIN, payload)}"


def is_registry_token(token: str) -> bool:
    return token.startswith(TOKEN_PREFIX)


def verify_token(key: bytes, token: str, *, now: float | None = None) -> RegistryToken:
    """The token's claims, or :class:`Unauthorized` if it is forged, malformed or expired."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > _MAX_TOKEN or "." not in token:
        raise Unauthorized("not a registry token")
    payload, sig = token[len(TOKEN_PREFIX) :].rsplit(".", 1)
    if not hmac.compare_digest(_mac(key, _TOKEN_DOMAIN, payload), sig):
        raise Unauthorized("registry token signature is not valid")
    try:
        claims: Any = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (binascii.Error, ValueError):
        raise Unauthorized("registry token is malformed") from None
    if not isinstance(claims, dict):
        raise Unauthorized("registry token is malformed")
    sub, role, exp, via = (
        claims.get("sub"),
        claims.get("role"),
        claims.get("exp"),
        claims.get("via", ""),
    )
    if not (
        isinstance(sub, str)
        and isinstance(role, str)
        and isinstance(exp, int)
        and isinstance(via, str)
    ):
        raise Unauthorized("registry token is malformed")
    if exp < (time.time() if now is None else now):
        raise Unauthorized("registry token has expired; authenticate again")
    return RegistryToken(sub, role, exp, via)


# --------------------------------------------------------------------------- upload session state
_STATE_DOMAIN: Final = b"modelward-upload-state-v1\n"


def sign_upload_state(key: bytes, upload_id: str, head: str, size: int) -> str:
    """``<head>.<size>.<mac>``: where a chunked upload stands, carried in its ``Location`` URL.

    ``head`` is the digest of the last chunk record (empty before the first chunk); any replica
    can continue the upload because the state travels with the client, as in Docker's registry.
    """
    return f"{head}.{size}.{_mac(key, _STATE_DOMAIN, upload_id, head, str(size))}"


def verify_upload_state(key: bytes, upload_id: str, state: str | None) -> tuple[str, int]:
    """``(head, size)`` of a state made by :func:`sign_upload_state` for this upload."""
    parts = (state or "").split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 16:
        raise Forbidden("upload state is missing or malformed; restart the upload")
    head, size, mac = parts
    if not hmac.compare_digest(_mac(key, _STATE_DOMAIN, upload_id, head, size), mac):
        raise Forbidden("upload state signature is not valid; restart the upload")
    return head, int(size)
