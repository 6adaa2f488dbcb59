"""Policy bundles: a folder of ``.rego`` + ``settings.yaml`` + ``waivers.yaml``, versioned, signed.

The served document is ``{"etag", "version", "files", "settings", "waivers", "signature"}``; the
signature is ed25519 (the server's bundle key, kept in ``server_keys``) over the canonical JSON of
the document without ``signature`` (sorted keys, no spaces, ASCII). The ETag is derived from the
content only, so pushing the same folder again makes no new version.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from modelward.errors import Conflict, PolicyError, UsageError
from modelward.fleet.errors import NoBundle
from modelward.store.db import Database, PolicyBundle, utcnow

SETTINGS_FILE = "settings.yaml"
WAIVERS_FILE = "waivers.yaml"
MAX_BUNDLE_BYTES = 4 << 20


@dataclass(frozen=True, slots=True)
class Bundle:
    version: int
    etag: str
    document: dict[str, Any]
    """With ``signature``: what an agent receives."""
    created_at: dt.datetime
    created_by: str

    def summary(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "etag": self.etag,
            "files": sorted(self.document["files"]),
            "waivers": len(self.document["waivers"]),
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def new_private_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def sign(document: dict[str, Any], private_pem: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UsageError("the bundle signing key is not an ed25519 key")
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    return base64.b64encode(key.sign(canonical(unsigned))).decode()


def verify(document: dict[str, Any], public_key_pem: str) -> bool:
    """True when ``document["signature"]`` is the bundle key's signature of the rest of it."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(public_key_pem.encode())
        signature = base64.b64decode(str(document.get("signature", "")), validate=True)
    except ValueError:
        return False
    if not isinstance(key, Ed25519PublicKey):
        return False
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    try:
        key.verify(signature, canonical(unsigned))
    except InvalidSignature:
        return False
    return True


def _plain(value: Any) -> Any:
    """YAML values as JSON (dates as ISO strings)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return value


def read_folder(folder: Path) -> dict[str, Any]:
    """``{"files", "settings", "waivers"}`` of a policy folder, checked as ``policy check`` would."""
    import yaml

    from modelward.policy.engine import policy_files
    from modelward.policy.settings import load_settings
    from modelward.policy.waivers import load_waivers

    try:
        rego = policy_files(folder)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    files: dict[str, str] = {}
    total = 0
    for p in rego:
        text = p.read_text(encoding="utf-8")
        total += len(text)
        files[p.relative_to(folder).as_posix()] = text
    settings: dict[str, Any] = {}
    waivers: list[Any] = []
    if (folder / SETTINGS_FILE).is_file():
        load_settings(folder / SETTINGS_FILE)  # validates: errors name file, line and key
        settings = _plain(yaml.safe_load((folder / SETTINGS_FILE).read_text("utf-8")) or {})
    if (folder / WAIVERS_FILE).is_file():
        load_waivers(folder / WAIVERS_FILE)
        raw = yaml.safe_load((folder / WAIVERS_FILE).read_text("utf-8")) or []
        waivers = _plain(raw.get("waivers", []) if isinstance(raw, dict) else raw)
    if total > MAX_BUNDLE_BYTES:
        raise UsageError(f"{folder}: the policy is larger than {MAX_BUNDLE_BYTES} bytes")
    return {"files": files, "settings": settings, "waivers": waivers}


def content_etag(content: dict[str, Any]) -> str:
    body = {k: content[k] for k in ("files", "settings", "waivers")}
    return hashlib.sha256(canonical(body)).hexdigest()[:32]


def push(db: Database, content: dict[str, Any], private_pem: str, actor: str) -> Bundle:
    """Store ``content`` as the next bundle version (the current one if nothing changed)."""
    etag = content_etag(content)
    with db.session() as s:
        same = s.scalar(select(PolicyBundle).where(PolicyBundle.etag == etag))
        latest = s.scalar(select(func.max(PolicyBundle.version))) or 0
        if same is not None and same.version == latest:
            return _bundle(same)
        version = latest + 1
        # A reverted policy gets a new version (and ETag): agents must move back to it.
        if same is not None:
            etag = f"{etag}-v{version}"
        document: dict[str, Any] = {
            "etag": etag,
            "version": version,
            "files": content["files"],
            "settings": content["settings"],
            "waivers": content["waivers"],
        }
        signature = sign(document, private_pem)
        row = PolicyBundle(
            version=version,
            etag=etag,
            document=document,
            signature=signature,
            created_at=utcnow(),
            created_by=actor,
        )
        s.add(row)
        try:
            s.flush()
        except IntegrityError as exc:  # a concurrent push took the version
            raise Conflict("another policy push happened at the same moment; retry") from exc
        return _bundle(row)


def current(db: Database) -> Bundle:
    with db.session() as s:
        row = s.scalar(select(PolicyBundle).order_by(PolicyBundle.version.desc()).limit(1))
        if row is None:
            raise NoBundle("no policy bundle has been pushed yet (modelward fleet policy push DIR)")
        return _bundle(row)


def current_etag(db: Database) -> str | None:
    with db.session() as s:
        return s.scalar(select(PolicyBundle.etag).order_by(PolicyBundle.version.desc()).limit(1))


def _bundle(row: PolicyBundle) -> Bundle:
    return Bundle(
        row.version,
        row.etag,
        {**row.document, "signature": row.signature},
        row.created_at,
        row.created_by,
    )
