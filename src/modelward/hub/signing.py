"""OpenSSF Model Signing for the hub: sign an approved revision, verify a downloaded copy.

The hub signs every approved revision with the ``model_signing`` library (OpenSSF Model Signing
v1.0, key method, ECDSA P-256, "files" serialization with SHA-256, no network). The signature is
a detached Sigstore bundle (JSON, usually saved as ``model.sig``) whose file list holds the
revision's paths, each with the SHA-256 of its bytes, so the digests equal the hub's blob digests.
Git files (``.gitattributes`` ...) are signed like any other file of the revision.

Verify a download with modelward (``modelward hub verify DIR``, or :func:`verify_folder`), or with
the upstream CLI alone (``pip install model-signing pyopenssl``)::

    model_signing verify key DIR --signature model.sig --public_key hub.pub \\
        --no-ignore-git-paths --allow_symlinks --ignore-paths DIR/.cache

``--no-ignore-git-paths`` because the hub signs ``.gitattributes`` when the revision has one;
``--allow_symlinks`` for a Hugging Face cache snapshot (``.../snapshots/<commit>/``, whose files are
symlinks into ``blobs/``); ``--ignore-paths DIR/.cache`` for a ``hf download --local-dir DIR``
copy, which keeps its bookkeeping under ``DIR/.cache/huggingface/``. Upstream names only the first
difference class per kind ("Hash mismatch for 'model.safetensors'", "Extra files found ...",
"Missing files ..."); :func:`verify_folder` returns every problem as data.

``model_signing`` (and ``cryptography``) are imported inside the functions: the CLI root imports
this module's callers and must start fast.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from modelward.errors import Error

HashAlgorithm = Literal["sha256", "blake2", "blake3"]

#: Names a downloaded copy may carry that are not part of the model. Each is ignored only when the
#: bundle signs nothing at or under it (a revision may legitimately contain ``.gitattributes``).
NOT_MODEL_PATHS = (
    ".git",  # a git clone of the repository (never a revision path)
    ".gitattributes",
    ".gitignore",
    ".github",
    ".cache/huggingface",  # `hf download --local-dir` bookkeeping (metadata, locks, .gitignore)
    ".huggingface",  # the same, written by huggingface_hub before 0.23
    "model.sig",  # the conventional name of the signature itself
)

# Bundle `hash_type` -> model_signing.hashing algorithm name.
_HASH_TYPES: dict[str, HashAlgorithm] = {
    "sha256": "sha256",
    "blake2b": "blake2",
    "blake3": "blake3",
}


class SignatureError(Error):
    """A key or signature bundle that cannot be used at all (not: a file that fails verification)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a folder does not match its signature.

    ``kind`` is stable: ``modified``, ``missing``, ``unexpected`` (a file the signature does not
    cover), ``unreadable`` or ``signature`` (the bundle does not verify with the key; ``path`` is
    then empty). ``reason`` is a sentence for a person.
    """

    path: str
    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """The outcome of :func:`verify_folder`; ``ok`` only when every signed file matched exactly."""

    ok: bool
    files_checked: int  # signed files found and hashed (matching or not)
    files_signed: int
    problems: tuple[Problem, ...]
    key_fingerprint: str  # sha256 hex of the public key PEM (the bundle's `publicKey.hint`)

    def summary(self) -> str:
        if self.ok:
            return f"OK: {self.files_checked} files match the signature"
        lines = [f"FAILED: {len(self.problems)} problem(s)"]
        lines += [f"  {p.path or '<signature>'}: {p.reason}" for p in self.problems]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class BundleInfo:
    """What a bundle claims, read without checking its signature (display only, never trust)."""

    files: dict[str, str]  # path -> hex digest
    hash_type: str
    allow_symlinks: bool
    ignore_paths: tuple[str, ...]
    key_hint: str | None


class Signer:
    """Signs model folders with an ECDSA private key (P-256 by default) via ``model_signing``."""

    def __init__(self, private_pem: bytes) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            key = serialization.load_pem_private_key(private_pem, password=None)
        except (ValueError, TypeError) as e:
            raise SignatureError(f"not a usable unencrypted PEM private key: {e}") from None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name not in _CURVES:
            raise SignatureError(
                "model signing needs an ECDSA key on P-256, P-384 or P-521 (not Ed25519 or RSA)"
            )
        self._private_pem = private_pem
        self._public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def generate(cls) -> Signer:
        """A signer with a new ECDSA P-256 key."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return cls(pem)

    @classmethod
    def from_pem(cls, private_pem: bytes) -> Signer:
        return cls(private_pem)

    @property
    def private_pem(self) -> bytes:
        return self._private_pem

    @property
    def public_pem(self) -> bytes:
        return self._public_pem

    @property
    def fingerprint(self) -> str:
        """sha256 hex of the public key PEM, as model_signing records it in the bundle."""
        return key_fingerprint(self._public_pem)

    def sign_folder(self, path: Path) -> bytes:
        """The signature bundle (JSON bytes) of every file under ``path``.

        Symlinked files are signed by the content they point to, under their link names; git files
        are included (a revision's ``.gitattributes`` is part of it).
        """
        from model_signing import hashing, signing

        root = Path(path)
        if not root.is_dir():
            raise SignatureError(f"{root} is not a folder")
        with tempfile.TemporaryDirectory(prefix="modelward-sign-") as tmp:
            # model_signing's public API reads the key from a file: a 0600 file in a 0700 folder
            # that lives for the duration of one signature.
            key_file = Path(tmp) / "key.pem"
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self._private_pem)
            sig_file = Path(tmp) / "model.sig"
            try:
                signing.Config().use_elliptic_key_signer(  # type: ignore[no-untyped-call]
                    private_key=key_file
                ).set_hashing_config(_hashing_config(hashing, "sha256")).sign(root, sig_file)
            except (ValueError, OSError) as e:
                raise SignatureError(f"cannot sign {root}: {e}") from e
            return sig_file.read_bytes()

    def sign_files(self, files: Sequence[tuple[str, Path]], name: str = "model") -> bytes:
        """Sign ``(revision path, local file)`` pairs: links named by the revision paths are signed.

        ``name`` becomes the bundle's subject name (informative only).
        """
        from modelward.hub.names import validate_path

        with tempfile.TemporaryDirectory(prefix="modelward-sign-") as tmp:
            root = Path(tmp) / (name or "model")
            root.mkdir()
            wanted: set[str] = set()
            for rel, src in files:
                rel = validate_path(rel)
                if rel in wanted:
                    raise SignatureError(f"{rel!r} is given twice")
                wanted.add(rel)
                source = Path(src).resolve()
                if not source.is_file():
                    raise SignatureError(f"{src} (for {rel!r}) is not a readable file")
                target = root / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(source, target)
            bundle = self.sign_folder(root)
        signed = set(inspect_bundle(bundle).files)
        # a path model_signing would skip or rename: refuse a partial signature
        if signed != wanted:
            raise SignatureError(
                "the signature does not cover exactly the given files: "
                f"missing {sorted(wanted - signed)}, extra {sorted(signed - wanted)}"
            )
        return bundle


_CURVES = ("secp256r1", "secp384r1", "secp521r1")


def key_fingerprint(public_pem: bytes) -> str:
    """The sha256 hex model_signing uses as the bundle's ``publicKey.hint`` for this key."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_public_key(public_pem)
    except (ValueError, TypeError) as e:
        raise SignatureError(f"not a usable PEM public key: {e}") from None
    canonical = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(canonical).hexdigest()


def inspect_bundle(bundle: bytes) -> BundleInfo:
    """Read the file list of a bundle WITHOUT verifying it (for display; verify before trusting)."""
    import base64
    import binascii

    try:
        doc = json.loads(bundle)
        payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"], validate=True))
        predicate = payload["predicate"]
        ser = predicate["serialization"]
        files = {str(r["name"]): str(r["digest"]) for r in predicate["resources"]}
        hint = (doc.get("verificationMaterial", {}).get("publicKey") or {}).get("hint")
        return BundleInfo(
            files=files,
            hash_type=str(ser["hash_type"]),
            allow_symlinks=bool(ser.get("allow_symlinks", False)),
            ignore_paths=tuple(str(p) for p in ser.get("ignore_paths", ())),
            key_hint=hint,
        )
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        raise SignatureError(f"not a model signature bundle: {_describe(e)}") from None


def verify_folder(
    path: Path, bundle: bytes, public_pem: bytes, *, ignore: Iterable[str] = ()
) -> VerifyResult:
    """Check a downloaded copy of a model against its signature bundle.

    Every signed file must exist with the same bytes (symlinks are followed, so a Hugging Face
    cache snapshot works), and no other file may be present, except :data:`NOT_MODEL_PATHS` that the
    bundle does not sign, the bundle's own ``ignore_paths`` and ``ignore`` (relative paths).
    Raises :class:`SignatureError` only when the key or bundle cannot be read at all; a signature
    that does not verify with this key is a failed result (``kind="signature"``).
    """
    from model_signing import hashing
    from model_signing._signing import sign_ec_key, sign_sigstore_pb

    root = Path(path)
    if not root.is_dir():
        raise SignatureError(f"{root} is not a folder")
    fingerprint = key_fingerprint(public_pem)
    info = inspect_bundle(bundle)  # clear message for garbage before model_signing parses it

    with tempfile.TemporaryDirectory(prefix="modelward-verify-") as tmp:
        key_file, sig_file = Path(tmp) / "key.pub", Path(tmp) / "model.sig"
        key_file.write_bytes(public_pem)
        sig_file.write_bytes(bundle)
        try:
            verifier = sign_ec_key.Verifier(key_file)
        except ValueError as e:  # e.g. an Ed25519 or P-192 public key
            raise SignatureError(f"unsupported public key: {e}") from None
        try:
            signature = sign_sigstore_pb.Signature.read(sig_file)
        except Exception as e:  # model_signing/sigstore_models raise assorted parse errors
            raise SignatureError(f"not a model signature bundle: {_describe(e)}") from None
        try:
            # model_signing's public verifying.Config only raises one ValueError with the whole
            # diff as text; its Verifier gives the signed manifest so every file can be reported.
            expected_manifest = verifier.verify(signature)
        except Exception as e:  # InvalidSignature, ValueError("Key mismatch"/"inconsistent"...)
            problem = Problem("", "signature", f"the signature does not verify: {_describe(e)}")
            return VerifyResult(False, 0, len(info.files), (problem,), fingerprint)

    args = expected_manifest.serialization_type
    if args.get("method") != "files" or args.get("hash_type") not in _HASH_TYPES:
        raise SignatureError(
            f"unsupported signature serialization {args.get('method')}/{args.get('hash_type')}"
        )
    expected = {
        rd.identifier: rd.digest.digest_hex for rd in expected_manifest.resource_descriptors()
    }

    skip = [p for p in NOT_MODEL_PATHS if not any(_under(f, p) for f in expected)]
    skip += [str(PurePosixPath(p)) for p in args.get("ignore_paths", ())]
    skip += [str(PurePosixPath(p)) for p in ignore]
    present = {f for f in _walk(root) if not any(_under(f, p) for p in skip)}

    problems: list[Problem] = []
    to_hash: list[str] = []
    for rel in sorted(expected):
        file = root / rel
        if not file.exists():  # also a dangling symlink (an HF blob that was deleted)
            problems.append(Problem(rel, "missing", "signed file is missing"))
        elif not file.is_file() or not os.access(file, os.R_OK):
            problems.append(Problem(rel, "unreadable", "signed file is not a readable file"))
        else:
            to_hash.append(rel)
    for rel in sorted(present - set(expected)):
        problems.append(Problem(rel, "unexpected", "file is not covered by the signature"))

    if to_hash:
        config = _hashing_config(hashing, _HASH_TYPES[args["hash_type"]])
        try:
            actual_manifest = config.hash(root, files_to_hash=[root / rel for rel in to_hash])
        except (OSError, ValueError) as e:
            raise SignatureError(f"cannot read {root}: {e}") from e
        actual = {
            rd.identifier: rd.digest.digest_hex for rd in actual_manifest.resource_descriptors()
        }
        for rel in to_hash:
            if actual.get(rel) != expected[rel]:
                problems.append(
                    Problem(
                        rel,
                        "modified",
                        f"content differs from the signed file ({args['hash_type']} "
                        f"{actual.get(rel, '?')[:16]}..., signed {expected[rel][:16]}...)",
                    )
                )
    problems.sort(key=lambda p: (p.path, p.kind))
    return VerifyResult(not problems, len(to_hash), len(expected), tuple(problems), fingerprint)


def _hashing_config(hashing: Any, algorithm: HashAlgorithm) -> Any:
    """The one hashing setup for signing and verifying: files, links followed, nothing ignored."""
    return (
        hashing.Config()
        .use_file_serialization(hashing_algorithm=algorithm, allow_symlinks=True)
        .set_ignored_paths(paths=[], ignore_git_paths=False)
        .set_allow_symlinks(True)
    )


def _walk(root: Path) -> Iterable[str]:
    """Relative POSIX paths of the files under ``root``, file symlinks included.

    Linked folders are not descended into (no loops); signed files behind one are still checked,
    by their path, they only escape the "unexpected file" check.
    """
    for dirpath, _dirnames, filenames in os.walk(root):
        base = Path(dirpath).relative_to(root)
        for name in filenames:
            yield (base / name).as_posix()


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix.rstrip("/") + "/")


def _describe(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 300 else text[:300] + "..."
