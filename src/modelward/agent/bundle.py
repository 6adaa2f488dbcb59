"""Policy bundles from the server: verify the ed25519 signature, keep the last good one, unpack it.

A bundle is ``{"etag", "version", "files": {"name.rego": text}, "settings": {...}, "waivers": [...],
"signature": base64}``; the signature covers the canonical JSON (sorted keys, no spaces) of the
bundle without ``signature``, made with the key the agent pinned at enrollment. An unsigned,
forged or malformed bundle is refused and the last good one stays in use.

Agent-only settings (not fed to the policy): ``agent_enforce: true`` lets the agent carry out
quarantine (and, with ``stop_exposed_runtimes``, stop) decisions; without it the agent only reports
what it would do.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelward.agent.files import ensure_dir, read_json, write_bytes_atomic, write_json
from modelward.errors import Error

AGENT_SETTINGS = ("agent_enforce",)
_REGO_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*\.rego\Z")


class BundleRejected(Error):
    """A policy bundle failed verification or validation; the last good bundle stays in use."""


def canonical(doc: dict[str, Any]) -> bytes:
    """The signed bytes: the bundle without ``signature``, sorted keys, no spaces."""
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def verify(doc: Any, public_pem: str | None) -> dict[str, Any]:
    """``doc`` when its signature verifies with ``public_pem`` and its shape is right."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    if not isinstance(doc, dict):
        raise BundleRejected("the policy bundle is not a JSON object")
    if not public_pem:
        raise BundleRejected("no bundle signing key was pinned at enrollment; enroll again")
    try:
        key = load_pem_public_key(public_pem.encode())
    except ValueError as exc:
        raise BundleRejected(f"the pinned bundle key is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleRejected("the pinned bundle key is not an ed25519 key")
    sig = doc.get("signature")
    if not isinstance(sig, str):
        raise BundleRejected("the policy bundle is not signed")
    try:
        raw = base64.b64decode(sig, validate=True)
        key.verify(raw, canonical(doc))
    except (binascii.Error, ValueError, InvalidSignature):
        raise BundleRejected("the policy bundle's signature does not verify: refused") from None
    _check_shape(doc)
    return doc


def _check_shape(doc: dict[str, Any]) -> None:
    files = doc.get("files", {})
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise BundleRejected("'files' must map .rego names to text")
    bad = [k for k in files if not _REGO_NAME.match(k) or ".." in k.split("/")]
    if bad:
        raise BundleRejected(f"bundle file name {bad[0]!r} is not a relative .rego path")
    if not isinstance(doc.get("settings", {}), dict):
        raise BundleRejected("'settings' must be a mapping")
    if not isinstance(doc.get("waivers", []), list):
        raise BundleRejected("'waivers' must be a list")


@dataclass(frozen=True, slots=True)
class Policy:
    """A verified bundle unpacked for :func:`modelward.policy.engine.evaluate`."""

    etag: str | None
    version: int | None
    folder: Path | None
    """The .rego files (``None``: the bundled pack)."""
    settings_file: Path
    waivers_file: Path
    enforce: bool


class BundleStore:
    """The last good bundle in ``<state_dir>/bundle/`` (``bundle.json`` + unpacked ``current/``)."""

    def __init__(self, state_dir: Path) -> None:
        self.root = ensure_dir(state_dir / "bundle")
        self.doc_path = self.root / "bundle.json"

    def current(self) -> dict[str, Any] | None:
        doc = read_json(self.doc_path)
        return doc if isinstance(doc, dict) else None

    @property
    def etag(self) -> str | None:
        doc = self.current()
        etag = doc.get("etag") if doc else None
        return etag if isinstance(etag, str) else None

    def accept(self, doc: dict[str, Any], public_pem: str | None) -> None:
        """Verify ``doc`` and make it the current bundle (raises :class:`BundleRejected`)."""
        verify(doc, public_pem)
        self._unpack(doc, self.root / "next")  # validates settings and waivers before switching
        write_json(self.doc_path, doc)
        self.policy()

    def policy(self) -> Policy:
        """The current bundle unpacked (the defaults when no bundle was ever received)."""
        doc = self.current() or {"files": {}, "settings": {}, "waivers": []}
        return self._unpack(doc, self.root / "current")

    def _unpack(self, doc: dict[str, Any], folder: Path) -> Policy:
        import yaml

        from modelward.policy.settings import SettingsError, load_settings
        from modelward.policy.waivers import WaiverError, load_waivers

        if folder.exists():
            shutil.rmtree(folder)
        ensure_dir(folder)
        files: dict[str, str] = doc.get("files") or {}
        rego = folder / "policy"
        for name, text in files.items():
            target = rego / name
            ensure_dir(target.parent)
            write_bytes_atomic(target, text.encode(), mode=0o644)
        settings = dict(doc.get("settings") or {})
        enforce = settings.pop("agent_enforce", False) is True
        for k in AGENT_SETTINGS:
            settings.pop(k, None)
        settings_file = folder / "settings.yaml"
        waivers_file = folder / "waivers.yaml"
        write_bytes_atomic(settings_file, yaml.safe_dump(settings).encode())
        write_bytes_atomic(
            waivers_file, yaml.safe_dump({"waivers": list(doc.get("waivers") or [])}).encode()
        )
        try:
            load_settings(settings_file)
            load_waivers(waivers_file)
        except (SettingsError, WaiverError) as exc:
            raise BundleRejected(f"the policy bundle is not valid: {exc}") from None
        version = doc.get("version")
        etag = doc.get("etag")
        return Policy(
            etag=etag if isinstance(etag, str) else None,
            version=version if isinstance(version, int) else None,
            folder=rego if files else None,
            settings_file=settings_file,
            waivers_file=waivers_file,
            enforce=enforce,
        )
