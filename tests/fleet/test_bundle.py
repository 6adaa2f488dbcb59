"""Policy bundles: read from a folder, versioned by content, signed and verifiable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelward.errors import UsageError
from modelward.fleet import bundle
from modelward.fleet.errors import NoBundle


def policy_dir(root: Path, deny: str = "pickle") -> Path:
    d = root / "policy"
    d.mkdir(parents=True, exist_ok=True)
    (d / "org.rego").write_text(
        f'package modelward.org\n\ndeny contains "{deny}" if {{ input.x == 1 }}\n'
    )
    (d / "org_test.rego").write_text("package modelward.org_test\n")
    (d / "settings.yaml").write_text("allowed_formats: [safetensors, gguf]\ncommercial: true\n")
    (d / "waivers.yaml").write_text(
        "waivers:\n  - sha256: " + "a" * 64 + "\n    reason: vetted\n"
        "    approved_by: alice\n    expires: 2099-01-01\n"
    )
    return d


def test_push_sign_verify_and_versions(fleet: Any, tmp_path: Path) -> None:
    with pytest.raises(NoBundle):
        bundle.current(fleet.db)
    content = bundle.read_folder(policy_dir(tmp_path))
    assert sorted(content["files"]) == ["org.rego"]  # tests are not shipped
    assert content["settings"] == {"allowed_formats": ["safetensors", "gguf"], "commercial": True}
    assert content["waivers"][0]["expires"] == "2099-01-01"
    b1 = bundle.push(fleet.db, content, fleet.bundle_private_key, "admin")
    assert b1.version == 1 and b1.document["etag"] == b1.etag
    assert bundle.verify(b1.document, fleet.bundle_public_key)
    tampered = {**b1.document, "settings": {"commercial": False}}
    assert not bundle.verify(tampered, fleet.bundle_public_key)
    other_key = bundle.public_pem(bundle.new_private_pem())
    assert not bundle.verify(b1.document, other_key)
    # the same content again: the same version
    assert bundle.push(fleet.db, content, fleet.bundle_private_key, "admin").version == 1
    b2 = bundle.push(
        fleet.db, bundle.read_folder(policy_dir(tmp_path, "other")), fleet.bundle_private_key, "a"
    )
    assert b2.version == 2 and b2.etag != b1.etag
    # going back to the first content is a new version with a new etag (agents move back)
    b3 = bundle.push(fleet.db, content, fleet.bundle_private_key, "admin")
    assert b3.version == 3 and b3.etag not in (b1.etag, b2.etag)
    assert bundle.current(fleet.db).version == 3 and bundle.current_etag(fleet.db) == b3.etag


def test_bad_folders_are_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        bundle.read_folder(tmp_path / "missing")
    d = policy_dir(tmp_path)
    (d / "settings.yaml").write_text("allowed_formatz: [gguf]\n")
    with pytest.raises(UsageError, match="allowed_formats"):
        bundle.read_folder(d)
