"""Revision value types and the deterministic 40-hex commit id of a revision's file list."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

REVISION_STATES = ("submitted", "scanning", "in_review", "approved", "rejected", "revoked")


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of a revision: its path in the repository and the blob that holds its bytes."""

    path: str
    size: int
    sha256: str
    git_sha1: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "git_sha1": self.git_sha1,
        }


def commit_id(files: Iterable[FileEntry]) -> str:
    """sha1 over ``path\\0sha256\\0size\\n`` lines sorted by path: same files, same commit."""
    h = hashlib.sha1(b"modelward-revision-v1\n", usedforsecurity=False)
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.sha256}\0{f.size}\n".encode())
    return h.hexdigest()


def git_blob_sha1_prefix(size: int) -> bytes:
    """The header git hashes before a blob's bytes (``blob <size>\\0``)."""
    return b"blob %d\0" % size


@dataclass(frozen=True, slots=True)
class RevisionView:
    """A revision as the hub's library API returns it (read-only snapshot of the database row)."""

    repo: str
    commit: str
    state: str
    files: tuple[FileEntry, ...]
    created_at: datetime
    created_by: str
    provenance: dict[str, Any] = field(default_factory=dict)
    license: dict[str, Any] = field(default_factory=dict)
    scan: dict[str, Any] = field(default_factory=dict)
    max_severity: str | None = None
    reason: str = ""
    decided_by: str = ""
    decided_at: datetime | None = None
    tags: tuple[str, ...] = ()
    signature: dict[str, Any] | None = None
    is_main: bool = False

    def file(self, path: str) -> FileEntry | None:
        for f in self.files:
            if f.path == path:
                return f
        return None

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {
            "repo": self.repo,
            "commit": self.commit,
            "state": self.state,
            "files": [f.to_dict() for f in self.files],
            "created_at": utc_iso(self.created_at),
            "created_by": self.created_by,
            "provenance": self.provenance,
            "license": self.license,
            "scan_summary": self.scan.get("summary", {}),
            "max_severity": self.max_severity,
            "reason": self.reason,
            "decided_by": self.decided_by,
            "decided_at": utc_iso(self.decided_at) if self.decided_at else None,
            "tags": list(self.tags),
            "signature": self.signature,
            "main": self.is_main,
        }


@dataclass(frozen=True, slots=True)
class RepoView:
    """A repository in the catalog: its approved head and tags."""

    name: str
    main: str | None
    updated_at: datetime
    license: dict[str, Any]
    tags: tuple[str, ...]
    max_severity: str | None = None
    signed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "main": self.main,
            "updated_at": utc_iso(self.updated_at),
            "license": self.license,
            "tags": list(self.tags),
            "max_severity": self.max_severity,
            "signed": self.signed,
        }


@dataclass(frozen=True, slots=True)
class AuditView:
    """One append-only audit record: who did what to which revision, when and why."""

    id: int
    at: datetime
    actor: str
    action: str
    repo: str
    commit: str
    reason: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": utc_iso(self.at),
            "actor": self.actor,
            "action": self.action,
            "repo": self.repo,
            "commit": self.commit,
            "reason": self.reason,
            "detail": self.detail,
        }


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file that stands for a blob in a Hugging Face repository."""
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def git_oid(sha256: str, size: int) -> str:
    """Git blob id of the file's LFS pointer: the hub marks every file LFS, so this is its ``oid``."""
    pointer = lfs_pointer(sha256, size)
    h = hashlib.sha1(git_blob_sha1_prefix(len(pointer)), usedforsecurity=False)
    h.update(pointer)
    return h.hexdigest()


def utc_iso(at: datetime) -> str:
    """ISO 8601 in UTC with its offset (SQLite hands back naive datetimes, which are UTC)."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()
