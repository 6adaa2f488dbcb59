"""OpenSSF model signing: sign a folder or a revision's files, verify downloaded copies."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from modelward.errors import Error
from modelward.hub.signing import (
    SignatureError,
    Signer,
    VerifyResult,
    inspect_bundle,
    verify_folder,
)


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate()


def make_model(root: Path) -> Path:
    """A tiny real model folder: safetensors weights, config, tokenizer config, a nested file."""
    d = root / "model"
    (d / "sub").mkdir(parents=True)
    save_file({"w": np.arange(16, dtype=np.float32).reshape(4, 4)}, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 4}))
    (d / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    (d / "sub" / "notes.txt").write_text("nested file\n")
    return d


def hf_cache_snapshot(model: Path, root: Path) -> Path:
    """The layout huggingface_hub's cache uses: snapshot files are relative symlinks into blobs/."""
    repo = root / "models--org--tiny"
    snap = repo / "snapshots" / ("a" * 40)
    (repo / "blobs").mkdir(parents=True)
    for f in sorted(p for p in model.rglob("*") if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, repo / "blobs" / digest)
        link = snap / f.relative_to(model)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(repo / "blobs" / digest, link.parent))
    return snap


def problems(result: VerifyResult) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in result.problems]


def test_sign_and_verify_roundtrip(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)

    doc = json.loads(bundle)
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"]["publicKey"]["hint"] == signer.fingerprint
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    assert statement["predicateType"] == "https://model_signing/signature/v1.0"
    info = inspect_bundle(bundle)
    assert info.hash_type == "sha256"
    weights = (model / "model.safetensors").read_bytes()
    assert info.files["model.safetensors"] == hashlib.sha256(weights).hexdigest()
    assert sorted(info.files) == [
        "config.json",
        "model.safetensors",
        "sub/notes.txt",
        "tokenizer_config.json",
    ]

    result = verify_folder(model, bundle, signer.public_pem)
    assert result.ok, result.summary()
    assert (result.files_checked, result.files_signed, result.problems) == (4, 4, ())
    assert result.key_fingerprint == signer.fingerprint


def test_one_flipped_byte_fails_naming_the_file(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)
    weights = bytearray((model / "model.safetensors").read_bytes())
    weights[-1] ^= 0x01
    (model / "model.safetensors").write_bytes(bytes(weights))

    result = verify_folder(model, bundle, signer.public_pem)
    assert not result.ok
    assert problems(result) == [("model.safetensors", "modified")]
    assert "model.safetensors" in result.summary()
    assert result.files_checked == 4


def test_missing_and_extra_files_are_named(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)
    (model / "sub" / "notes.txt").unlink()
    (model / "extra.py").write_text("print('not signed')\n")

    result = verify_folder(model, bundle, signer.public_pem)
    assert problems(result) == [("extra.py", "unexpected"), ("sub/notes.txt", "missing")]
    assert result.files_checked == 3
    # an explicit ignore lets a known extra file through
    assert problems(verify_folder(model, bundle, signer.public_pem, ignore=["extra.py"])) == [
        ("sub/notes.txt", "missing")
    ]


def test_hf_cache_snapshot_of_symlinks_verifies(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)
    snap = hf_cache_snapshot(model, tmp_path / "hub")
    assert (snap / "model.safetensors").is_symlink()

    assert verify_folder(snap, bundle, signer.public_pem).ok

    # a changed blob is reported under the snapshot's file name, not the blob's digest
    blob = (snap / "config.json").resolve()
    blob.write_text(blob.read_text().replace("bert", "gpt2"))
    assert problems(verify_folder(snap, bundle, signer.public_pem)) == [("config.json", "modified")]
    # a deleted blob leaves a dangling link: missing
    (snap / "sub" / "notes.txt").resolve().unlink()
    assert ("sub/notes.txt", "missing") in problems(verify_folder(snap, bundle, signer.public_pem))


def test_sign_files_uses_revision_paths_and_signs_by_content(
    signer: Signer, tmp_path: Path
) -> None:
    """What the hub does on approval: content-addressed blobs signed under their revision paths."""
    model = make_model(tmp_path)
    (model / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    files = []
    for f in sorted(p for p in model.rglob("*") if p.is_file()):
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, blobs / digest)
        files.append((f.relative_to(model).as_posix(), blobs / digest))

    bundle = signer.sign_files(files, name="org--tiny")
    signed = inspect_bundle(bundle).files
    assert sorted(signed) == sorted(path for path, _ in files)  # .gitattributes is signed too
    assert all(signed[path] == blob.name for path, blob in files)  # digest = blob sha256

    # the plain copy (no links) verifies, .gitattributes included; its change is caught
    assert verify_folder(model, bundle, signer.public_pem).ok
    (model / ".gitattributes").write_text("*.bin -text\n")
    assert problems(verify_folder(model, bundle, signer.public_pem)) == [
        (".gitattributes", "modified")
    ]

    with pytest.raises(Error, match="given twice"):
        signer.sign_files([files[0], files[0]])
    with pytest.raises(Error, match=r"invalid|path|\.\."):
        signer.sign_files([("../escape", files[0][1])])


def test_hf_local_dir_bookkeeping_and_git_files_are_ignored(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)
    # what `hf download --local-dir` leaves behind, plus a git checkout and the signature itself
    meta = model / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "model.safetensors.metadata").write_text("a\nb\n1.0\n")
    (model / ".cache" / "huggingface" / ".gitignore").write_text("*\n")
    (model / ".git").mkdir()
    (model / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (model / ".gitattributes").write_text("* text=auto\n")
    (model / "model.sig").write_bytes(bundle)
    assert verify_folder(model, bundle, signer.public_pem).ok

    # but other hidden files are not ignored
    (model / ".cache" / "other").write_text("x")
    assert problems(verify_folder(model, bundle, signer.public_pem)) == [
        (".cache/other", "unexpected")
    ]


def test_wrong_key_or_forged_signature_fails(signer: Signer, tmp_path: Path) -> None:
    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)

    other = Signer.generate()
    result = verify_folder(model, bundle, other.public_pem)
    assert not result.ok
    assert problems(result) == [("", "signature")]
    assert result.files_checked == 0

    # right key hint, but the payload was swapped for one listing a tampered digest
    doc = json.loads(bundle)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"]["resources"][0]["digest"] = "00" * 32
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = verify_folder(model, json.dumps(doc).encode(), signer.public_pem)
    assert problems(forged) == [("", "signature")]


@pytest.mark.parametrize(
    "bundle",
    [b"", b"not json", b"{}", b'{"dsseEnvelope": {"payload": "!!"}}', b"[1, 2]"],
)
def test_garbage_bundle_is_a_clear_error(signer: Signer, tmp_path: Path, bundle: bytes) -> None:
    model = make_model(tmp_path)
    with pytest.raises(SignatureError, match="not a model signature bundle"):
        verify_folder(model, bundle, signer.public_pem)


def test_bad_keys_are_clear_errors(signer: Signer, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    model = make_model(tmp_path)
    bundle = signer.sign_folder(model)
    with pytest.raises(SignatureError, match="public key"):
        verify_folder(model, bundle, b"-----BEGIN PUBLIC KEY-----\nnope\n")
    with pytest.raises(SignatureError, match="private key"):
        Signer(b"garbage")
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(SignatureError, match="P-256"):
        Signer(ed)
    with pytest.raises(SignatureError, match="not a folder"):
        verify_folder(model / "config.json", bundle, signer.public_pem)
    assert issubclass(SignatureError, Error)


def test_key_roundtrip(signer: Signer) -> None:
    again = Signer.from_pem(signer.private_pem)
    assert again.public_pem == signer.public_pem
    assert again.fingerprint == signer.fingerprint
    assert signer.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert Signer.generate().fingerprint != signer.fingerprint


def test_upstream_cli_verifies_hub_signatures(signer: Signer, tmp_path: Path) -> None:
    """The command the module docstring gives, on an `hf download --local-dir` style copy."""
    model = make_model(tmp_path)
    (model / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    bundle = signer.sign_folder(model)
    meta = model / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    (meta / "config.json.metadata").write_text("x\n")
    (tmp_path / "model.sig").write_bytes(bundle)
    (tmp_path / "hub.pub").write_bytes(signer.public_pem)
    cli = Path(sys.executable).parent / "model_signing"
    cmd = [
        str(cli),
        "verify",
        "key",
        str(model),
        "--signature",
        str(tmp_path / "model.sig"),
        "--public_key",
        str(tmp_path / "hub.pub"),
        "--no-ignore-git-paths",
        "--allow_symlinks",
        "--ignore-paths",
        str(model / ".cache"),
    ]
    ok = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr

    (model / "config.json").write_text("{}")
    bad = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0
    assert "config.json" in bad.stdout + bad.stderr
