"""Quarantine decisions become vault entries holding the whole model (Ollama, Hugging Face, files)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.policy.enforce import quarantine_decisions
from modelward.policy.journal import VaultError
from modelward.policy.vault import NOTE_SUFFIX, Vault


def _decision(path: Path, action: str = "quarantine", rule: str = "unsafe-pickle") -> Decision:
    return Decision(rule, action, Severity.HIGH, Subject("artifact", str(path)), "runs code")


def _art(path: Path, kind: str, meta: dict[str, Any] | None = None, **src: Any) -> dict[str, Any]:
    return {
        "path": str(path),
        "size": 1,
        "sha256": None,
        "format": "gguf",
        "source": {"kind": kind, "name": None, "repo": None, "revision": None, **src},
        "metadata": meta or {},
    }


def _ollama(tmp_path: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    models = tmp_path / "ollama" / "models"
    (models / "blobs").mkdir(parents=True)
    blobs = {}
    for name in ("config", "weights", "license", "other-weights", "other-config"):
        data = f"{name} blob".encode()
        hexd = hashlib.sha256(data).hexdigest()
        blobs[name] = models / "blobs" / f"sha256-{hexd}"
        blobs[name].write_bytes(data)

    def manifest(model: str, config: str, layers: list[str]) -> Path:
        p = models / "manifests" / "registry.ollama.ai" / "library" / model / "latest"
        p.parent.mkdir(parents=True)
        digest = {k: "sha256:" + v.name[len("sha256-") :] for k, v in blobs.items()}
        p.write_text(
            json.dumps(
                {
                    "schemaVersion": 2,
                    "config": {"digest": digest[config]},
                    "layers": [{"digest": digest[x]} for x in layers],
                }
            )
        )
        return p

    mine = manifest("evil", "config", ["weights", "license"])
    other = manifest("fine", "other-config", ["other-weights", "license"])
    inventory = {
        "artifacts": [
            _art(
                blobs["weights"],
                "ollama",
                {"ollama": {"role": "model", "names": ["evil:latest"], "manifests": [str(mine)]}},
                name="evil:latest",
            ),
            _art(
                blobs["other-weights"],
                "ollama",
                {"ollama": {"role": "model", "names": ["fine:latest"], "manifests": [str(other)]}},
                name="fine:latest",
            ),
        ]
    }
    return inventory, {"manifest": mine, "other": other, **blobs}


def test_ollama_model_with_its_unshared_blobs(tmp_path: Path) -> None:
    inventory, p = _ollama(tmp_path)
    vault = Vault.open(tmp_path / "vault")
    contents = {k: v.read_bytes() for k, v in p.items()}
    decisions = [_decision(p["weights"]), _decision(p["weights"], rule="second-rule")]
    (line,) = quarantine_decisions(decisions, inventory, vault, apply=False)
    assert line.startswith("would quarantine 3 files of evil:latest [unsafe-pickle]")
    for key in ("manifest", "weights", "config"):
        assert str(p[key]) in line
    assert str(p["license"]) not in line  # the other model uses it
    assert all(v.read_bytes() == contents[k] for k, v in p.items())
    assert vault.list() == []

    (line,) = quarantine_decisions(decisions, inventory, vault, apply=True)
    assert line.startswith("quarantined 3 files of evil:latest as ")
    (entry,) = vault.list()
    assert {f.original_path for f in entry.files} == {
        str(p[k]) for k in ("manifest", "weights", "config")
    }
    assert not p["weights"].exists() and Path(str(p["manifest"]) + NOTE_SUFFIX).is_file()
    assert p["license"].exists() and p["other"].exists() and p["other-weights"].exists()
    vault.restore(entry.id)
    assert all(v.read_bytes() == contents[k] for k, v in p.items())


def test_huggingface_snapshot_with_its_blobs(tmp_path: Path) -> None:
    blobs = tmp_path / "hub" / "models--org--m" / "blobs"
    blobs.mkdir(parents=True)
    paths = {n: blobs / n for n in ("a" * 64, "b" * 64, "c" * 64)}
    for path in paths.values():
        path.write_bytes(path.name.encode())
    a, b, c = paths.values()

    def hf(path: Path, revs: list[str]) -> dict[str, Any]:
        meta = {
            "huggingface": {"revisions": [{"revision": r, "path": "x", "refs": []} for r in revs]}
        }
        return _art(path, "huggingface", meta, repo="org/m", revision=revs[0], name="x")

    inventory = {
        "artifacts": [
            hf(a, ["r1"]),
            hf(b, ["r1"]),
            hf(c, ["r1", "r2"]),  # shared with another revision: stays
            _art(tmp_path / "loose.pt", "file"),
        ]
    }
    vault = Vault.open(tmp_path / "vault")
    (line,) = quarantine_decisions([_decision(a)], inventory, vault, apply=True)
    assert "2 files of x" in line
    (entry,) = vault.list()
    assert {f.original_path for f in entry.files} == {str(a), str(b)}
    assert c.exists()


def test_single_file_dry_run_and_other_actions(tmp_path: Path) -> None:
    loose = tmp_path / "loose.pt"
    loose.write_bytes(b"x")
    inventory = {"artifacts": [_art(loose, "file")]}
    out = quarantine_decisions(
        [_decision(loose, action="deny"), _decision(loose)], inventory, None, apply=False
    )
    assert out == [f"would quarantine {loose} [unsafe-pickle] runs code"]
    with pytest.raises(VaultError, match="vault is needed"):
        quarantine_decisions([_decision(loose)], inventory, None, apply=True)
    vault = Vault.open(tmp_path / "vault")
    link = tmp_path / "link.pt"
    link.symlink_to(loose)
    (line,) = quarantine_decisions([_decision(link)], {"artifacts": []}, vault, apply=True)
    assert line.startswith("could not quarantine") and "symbolic link" in line
    assert loose.read_bytes() == b"x"


def test_huggingface_snapshot_links_get_a_note(tmp_path: Path) -> None:
    repo = tmp_path / "hub" / "models--org--m"
    rev = "0123456789abcdef0123456789abcdef01234567"
    blob = repo / "blobs" / ("d" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_bytes(b"weights")
    snap = repo / "snapshots" / rev / "pytorch_model.bin"
    snap.parent.mkdir(parents=True)
    snap.symlink_to(Path("../../blobs") / blob.name)
    meta = {
        "huggingface": {
            "path_in_repo": "pytorch_model.bin",
            "revisions": [
                {"revision": rev, "path": "pytorch_model.bin", "refs": ["main"]},
                {"revision": rev, "path": "../../../../escape", "refs": []},  # hostile: ignored
            ],
        }
    }
    art = _art(blob, "huggingface", meta, repo="org/m", revision=rev, name="pytorch_model.bin")
    vault = Vault.open(tmp_path / "vault")
    (line,) = quarantine_decisions([_decision(blob)], {"artifacts": [art]}, vault, apply=True)
    assert line.startswith(f"quarantined {blob} as ")
    (entry,) = vault.list()
    assert entry.files[0].aliases == (str(snap),)
    note = Path(str(snap) + NOTE_SUFFIX)
    assert f"restore {entry.id}" in note.read_text()
    assert Path(str(blob) + NOTE_SUFFIX).is_file()
    assert not list(tmp_path.rglob("escape*"))
    vault.restore(entry.id)
    assert snap.read_bytes() == b"weights" and not note.exists()
