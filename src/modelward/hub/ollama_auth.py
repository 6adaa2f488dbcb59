"""Ollama's ed25519 token exchange: verify the signed token request against registered keys.

What ``ollama pull``/``push`` does on a 401 (ollama ``server/auth.go`` + ``auth/auth.go``): it takes
the ``realm`` of the ``WWW-Authenticate: Bearer`` challenge, adds ``service``, each ``scope``, ``ts``
(unix seconds) and ``nonce`` (16 random bytes, base64url without padding) to its query, encoded the
way Go's ``url.Values.Encode`` does (keys sorted, ``QueryEscape``), and sends ``GET <that URL>``
with the header ``Authorization: <pub>:<sig>`` where ``<pub>`` is the base64 SSH wire blob of the
machine's ``~/.ollama/id_ed25519`` public key (the middle field of ``id_ed25519.pub``) and
``<sig>`` the base64 raw ed25519 signature of ``"GET,<URL>,<base64(hex(sha256(b"")))>"``.

The hub verifies the signature over the URL it was actually asked for, that ``ts`` is fresh, that
the key is one an administrator registered, and that this signed request was not used before: a
request captured on the way (a proxy log, a shared HAR file) cannot be exchanged for a token again
while its ``ts`` is still fresh. The caller remembers each request's :func:`challenge_id` until
``ts + max_skew`` (the server keeps them in its database, so every replica agrees). ``cryptography`` is imported inside functions:
this module is reachable from the CLI, whose start-up must stay light.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from modelward.errors import BadRequest, HubError, Unauthorized

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

KEY_TYPE: Final = "ssh-ed25519"
# base64(hex(sha256(b""))): Ollama signs the hash of an empty body this way.
EMPTY_BODY_HASH: Final = base64.b64encode(hashlib.sha256(b"").hexdigest().encode()).decode()
MAX_SKEW_SECONDS: Final = 300
_MAX_HEADER = 1024


class InvalidKey(BadRequest):
    """A public key that is not an ``ssh-ed25519`` key line or blob."""

    code = "invalid_key"


@dataclass(frozen=True, slots=True)
class OllamaPublicKey:
    """An Ollama (SSH ed25519) public key: its 32 raw bytes and the comment it was registered with."""

    raw: bytes
    comment: str = ""

    @property
    def blob(self) -> bytes:
        """The SSH wire encoding: string "ssh-ed25519", string key."""
        kt = KEY_TYPE.encode()
        return struct.pack(">I", len(kt)) + kt + struct.pack(">I", len(self.raw)) + self.raw

    @property
    def blob_b64(self) -> str:
        return base64.b64encode(self.blob).decode()

    @property
    def authorized_key(self) -> str:
        """The ``ssh-ed25519 AAAA... comment`` line, as in ``~/.ollama/id_ed25519.pub``."""
        line = f"{KEY_TYPE} {self.blob_b64}"
        return f"{line} {self.comment}" if self.comment else line

    @property
    def fingerprint(self) -> str:
        """``SHA256:<base64>``, the form ``ssh-keygen -lf`` prints."""
        digest = hashlib.sha256(self.blob).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _b64decode(text: str, what: str, error: type[HubError]) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise error(f"{what} is not valid base64") from None


def key_from_blob(blob: bytes, comment: str = "") -> OllamaPublicKey:
    """Decode an SSH wire-format ed25519 public key blob."""
    try:
        (n,) = struct.unpack_from(">I", blob, 0)
        kt = blob[4 : 4 + n]
        (m,) = struct.unpack_from(">I", blob, 4 + n)
        raw = blob[8 + n : 8 + n + m]
    except struct.error:
        raise InvalidKey("public key blob is truncated") from None
    if kt != KEY_TYPE.encode():
        shown = kt[:40].decode("ascii", "replace")
        raise InvalidKey(f"public key type is {shown!r}; Ollama keys are {KEY_TYPE}")
    if len(raw) != 32 or len(blob) != 8 + n + m:
        raise InvalidKey("public key blob is not a 32-byte ed25519 key")
    return OllamaPublicKey(raw, comment)


def parse_public_key(text: str) -> OllamaPublicKey:
    """Parse ``ssh-ed25519 AAAA... [comment]`` (the ``.pub`` file) or just the base64 blob."""
    parts = text.strip().split(None, 2)
    if not parts:
        raise InvalidKey("empty public key")
    if parts[0] == KEY_TYPE:
        if len(parts) < 2:
            raise InvalidKey("public key line has no key after 'ssh-ed25519'")
        blob_text, comment = parts[1], parts[2] if len(parts) > 2 else ""
    elif len(parts) == 1:
        blob_text, comment = parts[0], ""
    else:
        raise InvalidKey(f"public key must start with {KEY_TYPE!r} (~/.ollama/id_ed25519.pub)")
    return key_from_blob(_b64decode(blob_text, "public key", InvalidKey), comment.strip())


def parse_authorization(header: str) -> tuple[OllamaPublicKey, bytes]:
    """Split Ollama's ``<base64 key blob>:<base64 signature>`` header into key and signature."""
    if len(header) > _MAX_HEADER:
        raise Unauthorized("Ollama authorization header is too long")
    if ":" not in header or header.count(":") != 1:
        raise Unauthorized("Authorization is not Ollama's '<public key>:<signature>' form")
    key_text, sig_text = header.strip().split(":", 1)
    try:
        key = key_from_blob(_b64decode(key_text, "Ollama public key", InvalidKey))
    except InvalidKey as e:
        raise Unauthorized(e.message) from None
    sig = _b64decode(sig_text, "Ollama signature", Unauthorized)
    if len(sig) != 64:
        raise Unauthorized("Ollama signature is not a 64-byte ed25519 signature")
    return key, sig


def signed_message(url: str) -> bytes:
    """The bytes Ollama signs for a token request to ``url``."""
    return f"GET,{url},{EMPTY_BODY_HASH}".encode()


def _query_ts(url: str) -> int:
    query = urllib.parse.urlsplit(url).query
    values = urllib.parse.parse_qs(query, keep_blank_values=True).get("ts", [])
    if len(values) != 1 or not values[0].isdigit() or len(values[0]) > 12:
        raise Unauthorized("Ollama token request has no valid 'ts' timestamp")
    return int(values[0])


def challenge_id(key: OllamaPublicKey, url: str) -> str:
    """What makes a signed token request unique: its key, ``ts`` and ``nonce`` (sha256 hex).

    Ollama sends a fresh random nonce with every request; one without a nonce is then unique by
    its key and second. Any other change to the URL breaks the signature anyway.
    """
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query, keep_blank_values=True)
    nonce = ",".join(query.get("nonce", []))
    h = hashlib.sha256(key.raw)
    h.update(f"\0{_query_ts(url)}\0{nonce}".encode())
    return h.hexdigest()


Remember = Callable[[str, int], bool]
"""``remember(challenge_id, expires_unix)``: record a used request; False if it was already used."""


def verify_token_request(
    header: str,
    url: str | Sequence[str],
    registered: Iterable[OllamaPublicKey | str],
    *,
    now: float | None = None,
    max_skew: int = MAX_SKEW_SECONDS,
    remember: Remember | None = None,
) -> OllamaPublicKey:
    """Check an Ollama token request and return the registered key that signed it.

    ``url`` is the full URL the request was made to (scheme, host:port, path and the raw query as
    received), or several candidates (e.g. the public URL behind a proxy and the URL as seen). The
    signature must verify for one of them, ``ts`` must be within ``max_skew`` seconds of ``now``,
    and the key must be among ``registered`` (keys or ``.pub`` lines). With ``remember``, the
    request must also be new: it is recorded (until ``ts + max_skew``), and one recorded before is
    a replay. Any failure raises :class:`~modelward.errors.Unauthorized` with a message that says
    which check failed.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key, sig = parse_authorization(header)
    candidates = [url] if isinstance(url, str) else list(url)
    verifier = Ed25519PublicKey.from_public_bytes(key.raw)
    signed_url = None
    for candidate in candidates:
        try:
            verifier.verify(sig, signed_message(candidate))
        except InvalidSignature:
            continue
        signed_url = candidate
        break
    if signed_url is None:
        raise Unauthorized(
            "Ollama signature does not match this request (realm URL changed on the way?)",
            fingerprint=key.fingerprint,
        )
    ts = _query_ts(signed_url)
    now = time.time() if now is None else now
    if abs(now - ts) > max_skew:
        raise Unauthorized(
            f"Ollama token request timestamp is {int(now - ts)} s off the server clock "
            f"(at most {max_skew} s allowed); check the client's clock",
            fingerprint=key.fingerprint,
        )
    for reg in registered:
        known = reg if isinstance(reg, OllamaPublicKey) else _lenient_parse(reg)
        if known is not None and known.raw == key.raw:
            # Recorded only now: requests of unregistered keys never fill the record.
            if remember is not None and not remember(challenge_id(key, signed_url), ts + max_skew):
                raise Unauthorized(
                    "this signed Ollama token request was already used: each one is good for a "
                    "single token (Ollama signs a new one, with a fresh nonce, every time)",
                    fingerprint=key.fingerprint,
                )
            return known
    raise Unauthorized(
        f"this Ollama key ({key.fingerprint}) is not registered: an administrator can add it with "
        "'modelward hub ollama-key add' and the contents of ~/.ollama/id_ed25519.pub",
        fingerprint=key.fingerprint,
        key=key.authorized_key,
    )


def _lenient_parse(line: str) -> OllamaPublicKey | None:
    try:
        return parse_public_key(line)
    except InvalidKey:
        return None


# --------------------------------------------------------------------------- the client side
def go_query_encode(values: Mapping[str, Sequence[str]]) -> str:
    """Go's ``url.Values.Encode``: keys sorted, ``url.QueryEscape`` (space as ``+``)."""
    # Go's QueryEscape leaves only A-Z a-z 0-9 - _ . ~ unescaped, like quote_plus with safe="".
    return "&".join(
        f"{urllib.parse.quote_plus(k, safe='')}={urllib.parse.quote_plus(v, safe='')}"
        for k in sorted(values)
        for v in values[k]
    )


def token_request_url(
    realm: str, service: str, scope: str, *, ts: int | None = None, nonce: str | None = None
) -> str:
    """The URL Ollama requests a token from, built as its ``registryChallenge.URL`` does."""
    import os

    parts = urllib.parse.urlsplit(realm)
    values: dict[str, list[str]] = {}
    for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        values.setdefault(k, []).append(v)
    values.setdefault("service", []).append(service)
    for s in scope.split(" "):
        values.setdefault("scope", []).append(s)
    values.setdefault("ts", []).append(str(int(time.time()) if ts is None else ts))
    if nonce is None:
        nonce = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
    values.setdefault("nonce", []).append(nonce)
    return urllib.parse.urlunsplit(parts._replace(query=go_query_encode(values)))


def make_authorization(private_key: Ed25519PrivateKey, url: str) -> str:
    """The ``Authorization`` header Ollama sends with a token request to ``url`` (for tests)."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    sig = private_key.sign(signed_message(url))
    return f"{OllamaPublicKey(raw).blob_b64}:{base64.b64encode(sig).decode()}"


def public_key_line(private_key: Ed25519PrivateKey, comment: str = "") -> str:
    """The ``id_ed25519.pub`` line of a private key."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return OllamaPublicKey(raw, comment).authorized_key
