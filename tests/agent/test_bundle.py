"""Policy bundles: a signed bundle is accepted; a forged, unsigned or foreign-signed one is refused
and the last good bundle stays in use."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from modelward.agent.bundle import BundleRejected, BundleStore, canonical, verify


def _keys() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def signed(key: Any, **doc: Any) -> dict[str, Any]:
    doc.setdefault("files", {})
    doc.setdefault("settings", {})
    doc.setdefault("waivers", [])
    doc["signature"] = base64.b64encode(key.sign(canonical(doc))).decode()
    return doc


REGO = """package modelward.custom
import rego.v1
deny contains d if {
  some a in input.artifacts
  endswith(a.path, ".bin")
  d := {"rule": "no-bin", "severity": "high", "subject": {"kind": "artifact", "path": a.path,
        "sha256": a.sha256}, "message": "no .bin files"}
}
"""


def test_signed_bundle_is_accepted_and_unpacked(tmp_path: Path) -> None:
    key, pem = _keys()
    store = BundleStore(tmp_path)
    doc = signed(
        key,
        etag='"v1"',
        version=1,
        files={"custom/no_bin.rego": REGO},
        settings={"agent_enforce": True, "commercial": True},
        waivers=[
            {"sha256": "a" * 64, "reason": "ok", "approved_by": "sec", "expires": "2099-01-01"}
        ],
    )
    store.accept(doc, pem)
    policy = store.policy()
    assert policy.enforce is True and policy.version == 1 and store.etag == '"v1"'
    assert (
        policy.folder is not None and (policy.folder / "custom" / "no_bin.rego").read_text() == REGO
    )
    assert "agent_enforce" not in policy.settings_file.read_text()


def test_forged_bundle_is_refused_and_last_good_kept(tmp_path: Path) -> None:
    key, pem = _keys()
    other, _ = _keys()
    store = BundleStore(tmp_path)
    good = signed(key, etag='"v1"', version=1, settings={"commercial": True})
    store.accept(good, pem)

    forged = dict(signed(key, etag='"v2"', version=2, settings={"commercial": True}))
    forged["settings"] = {"agent_enforce": True}  # changed after signing
    with pytest.raises(BundleRejected, match="does not verify"):
        store.accept(forged, pem)
    with pytest.raises(BundleRejected, match="does not verify"):
        store.accept(signed(other, etag='"v3"', version=3), pem)  # signed by another key
    unsigned = {k: v for k, v in good.items() if k != "signature"}
    with pytest.raises(BundleRejected, match="not signed"):
        store.accept(unsigned, pem)
    with pytest.raises(BundleRejected, match="no bundle signing key"):
        verify(good, None)
    assert store.etag == '"v1"' and store.policy().enforce is False


def test_signed_but_invalid_bundles_are_refused(tmp_path: Path) -> None:
    key, pem = _keys()
    store = BundleStore(tmp_path)
    with pytest.raises(BundleRejected, match=r"relative \.rego"):
        store.accept(signed(key, files={"../escape.rego": REGO}), pem)
    with pytest.raises(BundleRejected, match="not valid"):
        store.accept(signed(key, settings={"comercial": True}), pem)
    assert store.current() is None
    assert not (tmp_path.parent / "escape.rego").exists()
    assert store.policy().folder is None  # no bundle yet: the bundled pack, defaults
