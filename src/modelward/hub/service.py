"""The hub's library API: ingest revisions, scan them, review, sign, resolve refs, audit, collect garbage.

The HTTP routes and the CLI are thin layers over :class:`Hub`. Every state change of a revision is one
database transaction that also appends its audit event, so the log and the state never disagree.

Names clients pull by (``ollama pull x:tag``, ``oras pull x:tag``, ``/resolve/<tag>/``):

- ``main`` names the newest approved revision and moves only when a reviewer approves (or revokes).
  ``latest`` is another name for ``main``, never a tag of its own: a repeated ``ollama push x`` or
  ``oras push x:latest`` puts the new content in review and ``latest`` keeps serving the approved
  revision until a reviewer approves the new one.
- Any other tag given with a push names the pushed revision while it waits for review (served only
  once approved), and a later push may move it while it names nothing approved. Once it names an
  approved (or revoked) revision it never moves: pushing other content under it is a 409.
- A publisher cannot tag a revision that is already approved (say, by pushing the same content
  again with a new tag): that would make it servable under a new name without a decision, or roll
  a name back to an older approved revision. That is a reviewer's act (:meth:`Hub.tag`).
"""

from __future__ import annotations

import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelward.errors import (
    ApprovalRefused,
    BadRequest,
    BlobNotFound,
    Conflict,
    NeedsReview,
    NotApproved,
    RepoNotFound,
    RevisionNotFound,
    Revoked,
)
from modelward.hub.names import is_commit, validate_path, validate_repo, validate_tag
from modelward.hub.revision import AuditView, FileEntry, RepoView, RevisionView, commit_id, git_oid
from modelward.store.blobs import BlobStore, check_digest
from modelward.store.db import (
    Attachment,
    AuditEvent,
    Blob,
    Database,
    Ref,
    Repo,
    Revision,
    RevisionFile,
    Upload,
    utcnow,
)

SEVERITY_ORDER = ("info", "low", "medium", "high", "critical")
SIGNATURE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SCAN_MEDIA_TYPE = "application/vnd.modelward.scan.v1+json"
APPROVAL_MEDIA_TYPE = "application/vnd.modelward.approval.v1+json"
MAX_FILES = 10_000
LATEST = "latest"
"""Another name for ``main`` (the newest approved revision), never stored as a tag."""


class Signer(Protocol):
    """Signs a revision's files (OpenSSF model signing); see :mod:`modelward.hub.signing`."""

    @property
    def public_pem(self) -> bytes: ...

    def sign_folder(self, path: Path) -> bytes: ...


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file of a revision to create; its bytes must already be in the blob store."""

    path: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class HubSettings:
    max_files: int = MAX_FILES
    scan_jobs: int = 1  # the server is threaded: scan in-process, never fork from it


class Hub:
    """The curated model hub over a database and a blob store."""

    def __init__(
        self,
        db: Database,
        blobs: BlobStore,
        settings: HubSettings | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.settings = settings or HubSettings()
        self.signer = signer

    # ------------------------------------------------------------------ blobs
    def register_blob(self, sha256: str, size: int) -> None:
        """Record a blob that was committed to the store (idempotent).

        A blob committed again (same bytes uploaded anew) gets its time refreshed: gc's grace
        counts from the last commit, so bytes an upload just re-used are not collected under it.
        """
        with self.db.session() as s:
            row = s.get(Blob, sha256)
            if row is None:
                s.add(Blob(sha256=sha256, size=size))
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
            elif _aware(row.created_at) < utcnow() - _REFRESH:
                row.created_at = utcnow()

    def put_bytes(self, data: bytes) -> str:
        """Store a small document (manifest, bundle, report) and return its digest."""
        with self.blobs.writer() as w:
            w.write(data)
            info = w.commit()
        self.blobs.make_durable([info.sha256])  # these documents are recorded with revisions
        self.register_blob(info.sha256, info.size)
        return info.sha256

    # -------------------------------------------------------------- revisions
    def create_revision(
        self,
        repo: str,
        files: Sequence[NewFile],
        provenance: dict[str, Any],
        actor: str,
        tag: str | None = None,
    ) -> RevisionView:
        """Create (or return the identical existing) revision, scan it and put it in review."""
        validate_repo(repo)
        if tag is not None:
            validate_tag(tag)
        entries = self._entries(files)
        commit = commit_id(entries)
        with self.db.session() as s:
            row = self._find_revision(s, repo, commit)
            stalled = row is not None and row.state in ("submitted", "scanning")
            if row is not None and not stalled:
                if tag is not None:
                    self._set_tag(s, row, tag, actor)
                return self._view(s, row)
            stalled_id = row.id if row is not None else None
        if stalled_id is not None:  # a crash interrupted its scan: finish it now
            return self._finish_scan(stalled_id, repo, commit, entries, tag, actor)
        # On disk before the database records the revision (blob_fsync: "revision").
        self.blobs.make_durable(e.sha256 for e in entries)
        with self.db.session() as s:
            repo_row = s.scalar(select(Repo).where(Repo.name == repo))
            if repo_row is None:
                repo_row = Repo(name=repo)
                s.add(repo_row)
                try:
                    s.flush()
                except IntegrityError:
                    s.rollback()
                    repo_row = s.scalars(select(Repo).where(Repo.name == repo)).one()
            row = Revision(
                repo_id=repo_row.id,
                commit=commit,
                state="submitted",
                created_by=actor,
                provenance=dict(provenance),
            )
            row.files = [
                RevisionFile(path=e.path, size=e.size, sha256=e.sha256, git_sha1=e.git_sha1)
                for e in entries
            ]
            s.add(row)
            try:
                s.flush()
            except IntegrityError:
                s.rollback()
                existing = self._find_revision(s, repo, commit)
                if existing is None:
                    raise
                return self._view(s, existing)
            self._audit(s, actor, "submit", repo, commit, "", {"provenance": provenance})
            row.state = "scanning"
            self._audit(s, "modelward", "scan-start", repo, commit)
            rev_id = row.id
        return self._finish_scan(rev_id, repo, commit, entries, tag, actor)

    def _finish_scan(
        self,
        rev_id: int,
        repo: str,
        commit: str,
        entries: Sequence[FileEntry],
        tag: str | None,
        actor: str,
    ) -> RevisionView:
        """Scan the revision's files and put it in review (also resumes a scan a crash cut short)."""
        try:
            scan_doc, license_doc = self._scan(entries)
        except Exception as exc:  # the scanner could not run: review must see that, not "clean"
            scan_doc = {
                "schema": "modelward.scan/v1",
                "files": [],
                "summary": {"files": 0, "max_severity": "high", "errors": 1},
                "error": f"the scan could not run: {exc}",
            }
            license_doc = {"declared": None, "detected": None, "id": "unknown"}
        report = json.dumps(scan_doc, sort_keys=True).encode()
        # Stored before the session below writes: SQLite has one writer, put_bytes opens its own.
        report_digest = self.put_bytes(report)
        with self.db.session() as s:
            row = s.get_one(Revision, rev_id)
            row.scan = scan_doc
            row.license = license_doc
            row.max_severity = scan_doc.get("summary", {}).get("max_severity")
            row.state = "in_review"
            self._audit(
                s,
                "modelward",
                "scan-done",
                repo,
                commit,
                "",
                {"summary": scan_doc.get("summary", {})},
            )
            self._attach(s, row, "scan-report", report_digest, SCAN_MEDIA_TYPE, len(report))
            if tag is not None:
                self._set_tag(s, row, tag, actor)
            return self._view(s, row)

    def _entries(self, files: Sequence[NewFile]) -> list[FileEntry]:
        if not files:
            raise BadRequest("a revision needs at least one file")
        if len(files) > self.settings.max_files:
            raise BadRequest(f"a revision may hold at most {self.settings.max_files} files")
        seen: set[str] = set()
        out: list[FileEntry] = []
        folded: set[str] = set()
        folders: dict[str, str] = {}  # every folder of a listed file -> that file
        for f in files:
            validate_path(f.path)
            digest = check_digest(f.sha256)
            if f.path in seen:
                raise BadRequest(f"file {f.path!r} is listed twice", path=f.path)
            # Case-insensitive and normalising (macOS) file systems would merge such paths.
            key = unicodedata.normalize("NFC", f.path).casefold()
            if key in folded:
                raise BadRequest(
                    f"file {f.path!r} differs from another only by case or Unicode normalisation",
                    path=f.path,
                )
            parts = f.path.split("/")
            parents = ["/".join(parts[:i]) for i in range(1, len(parts))]
            clash = folders.get(f.path) or next((p for p in parents if p in seen), None)
            if clash is not None:
                raise BadRequest(f"file {f.path!r} is also a folder of {clash!r}", path=f.path)
            seen.add(f.path)
            folded.add(key)
            for parent in parents:
                folders.setdefault(parent, f.path)
            if not self.blobs.exists(digest):
                raise BlobNotFound(
                    f"blob sha256:{digest} of {f.path!r} has not been uploaded", digest=digest
                )
            size = self.blobs.size(digest)
            if size != f.size:
                raise BadRequest(
                    f"{f.path!r} declares {f.size} bytes but blob sha256:{digest} has {size}",
                    path=f.path,
                )
            out.append(FileEntry(f.path, size, digest, git_oid(digest, size)))
        return sorted(out, key=lambda e: e.path)

    @contextmanager
    def materialize(self, files: Sequence[FileEntry]) -> Iterator[Path]:
        """A temporary folder whose files are links to the blobs, named by their revision paths."""
        with tempfile.TemporaryDirectory(prefix="modelward-rev-") as tmp, ExitStack() as stack:
            root = Path(tmp)
            for f in files:
                target = root / f.path
                target.parent.mkdir(parents=True, exist_ok=True)
                src = stack.enter_context(self.blobs.local_copy(f.sha256))
                os.symlink(src, target)
            yield root

    def _scan(self, entries: Sequence[FileEntry]) -> tuple[dict[str, Any], dict[str, Any]]:
        from modelward.report.json import to_document
        from modelward.scan import ScanOptions, scan

        with self.materialize(entries) as root:
            report = scan([root], ScanOptions(hash=False, jobs=self.settings.scan_jobs))
            doc = to_document(report)
            by_path = {f.path: f for f in entries}
            prefix = str(root) + os.sep
            for item in doc.get("files", []):
                rel = str(item.get("path", "")).removeprefix(prefix)
                item["path"] = rel
                if rel in by_path:
                    item["sha256"] = by_path[rel].sha256
            doc.pop("roots", None)
            license_doc = _detect_license(root, doc)
        return doc, license_doc

    # --------------------------------------------------------------- workflow
    def approve(
        self, repo: str, rev: str, actor: str, reason: str, override: bool = False
    ) -> RevisionView:
        """Approve a revision in review: sign it, move ``main`` to it. Refused on critical findings."""
        if not reason.strip():
            raise BadRequest("an approval needs a reason")
        with self.db.session() as s:
            row = self._revision(s, repo, rev)
            if row.state != "in_review":
                raise Conflict(
                    f"{repo}@{row.commit[:12]} is {row.state}; only revisions in review can be approved",
                    state=row.state,
                )
            sev = row.max_severity
            if sev == "critical":
                raise ApprovalRefused(
                    f"{repo}@{row.commit[:12]} has a critical finding and cannot be approved",
                    max_severity=sev,
                )
            if sev == "high" and not override:
                raise ApprovalRefused(
                    f"{repo}@{row.commit[:12]} has a high finding; approve with override and a reason",
                    max_severity=sev,
                )
            files = [FileEntry(f.path, f.size, f.sha256, f.git_sha1) for f in row.files]
            commit = row.commit
        signature = self._sign(repo, files)
        now = utcnow()
        record = json.dumps(
            {
                "repo": repo,
                "commit": commit,
                "approved_by": actor,
                "approved_at": now.isoformat(),
                "reason": reason,
                "override": override,
                "max_severity": sev,
            },
            sort_keys=True,
        ).encode()
        # Stored outside the session below: SQLite has one writer and put_bytes opens its own.
        record_digest = self.put_bytes(record)
        with self.db.session() as s:
            row = self._locked(s, repo, commit)
            if row.state != "in_review":
                raise Conflict(f"{repo}@{row.commit[:12]} changed state to {row.state}")
            row.state = "approved"
            row.reason = reason
            row.decided_by = actor
            row.decided_at = now
            row.approved_at = now
            if signature is not None:
                row.signature = signature
                self._attach(
                    s,
                    row,
                    "signature",
                    signature["bundle"],
                    SIGNATURE_MEDIA_TYPE,
                    signature["bundle_size"],
                )
            self._attach(s, row, "approval", record_digest, APPROVAL_MEDIA_TYPE, len(record))
            self._set_ref(s, row, "main")
            self._audit(
                s,
                actor,
                "approve",
                repo,
                row.commit,
                reason,
                {"override": override, "max_severity": sev},
            )
            return self._view(s, row)

    def _sign(self, repo: str, files: Sequence[FileEntry]) -> dict[str, Any] | None:
        if self.signer is None:
            return None
        with self.materialize(files) as root:
            bundle = self.signer.sign_folder(root)
        digest = self.put_bytes(bundle)
        return {
            "method": "model-signing/key",
            "bundle": digest,
            "bundle_size": len(bundle),
            "public_key": self.signer.public_pem.decode(),
        }

    def reject(self, repo: str, rev: str, actor: str, reason: str) -> RevisionView:
        if not reason.strip():
            raise BadRequest("a rejection needs a reason")
        with self.db.session() as s:
            row = self._locked(s, repo, rev)
            if row.state != "in_review":
                raise Conflict(
                    f"{repo}@{row.commit[:12]} is {row.state}; only revisions in review can be rejected",
                    state=row.state,
                )
            row.state = "rejected"
            row.reason = reason
            row.decided_by = actor
            row.decided_at = utcnow()
            self._audit(s, actor, "reject", repo, row.commit, reason)
            return self._view(s, row)

    def revoke(self, repo: str, rev: str, actor: str, reason: str) -> RevisionView:
        if not reason.strip():
            raise BadRequest("a revocation needs a reason")
        with self.db.session() as s:
            row = self._locked(s, repo, rev)
            if row.state != "approved":
                raise Conflict(
                    f"{repo}@{row.commit[:12]} is {row.state}; only approved revisions can be revoked",
                    state=row.state,
                )
            row.state = "revoked"
            row.reason = reason
            row.decided_by = actor
            row.decided_at = utcnow()
            main = s.get(Ref, (row.repo_id, "main"))
            if main is not None and main.revision_id == row.id:
                prev = s.scalars(
                    select(Revision)
                    .where(Revision.repo_id == row.repo_id, Revision.state == "approved")
                    .where(Revision.id != row.id)
                    .order_by(Revision.approved_at.desc(), Revision.id.desc())
                ).first()
                if prev is None:
                    s.delete(main)
                else:
                    main.revision_id = prev.id
            self._audit(s, actor, "revoke", repo, row.commit, reason)
            return self._view(s, row)

    def tag(self, repo: str, rev: str, tag: str, actor: str, reason: str) -> RevisionView:
        """A reviewer names an approved revision ``tag`` (a name that is not in use yet).

        Approved tags never move, here neither: a tag already naming another approved or revoked
        revision is a 409. ``main``/``latest`` move by approval only.
        """
        validate_tag(tag)
        if tag in ("main", LATEST):
            raise BadRequest(f"'{tag}' names the newest approved revision and moves by approval")
        if not reason.strip():
            raise BadRequest("tagging an approved revision needs a reason")
        with self.db.session() as s:
            row = self._locked(s, repo, rev)
            if row.state != "approved":
                raise Conflict(
                    f"{repo}@{row.commit[:12]} is {row.state}; reviewers tag approved revisions "
                    "(a tag pushed with a revision in review is decided with it)",
                    state=row.state,
                )
            self._set_tag(s, row, tag, actor, reviewed=True, reason=reason)
            return self._view(s, row)

    # ---------------------------------------------------------------- reading
    def resolve(
        self, repo: str, rev: str = "main", *, approved_only: bool = True, with_scan: bool = True
    ) -> RevisionView:
        """The revision that ``rev`` (commit, ``main`` or tag) names; approved ones only by default.

        ``with_scan=False`` leaves the (possibly large) scan report out, for downloads.
        """
        with self.db.session() as s:
            row = self._revision(s, repo, rev)
            if approved_only:
                _check_servable(repo, row)
            return self._view(s, row, with_scan=with_scan)

    def revision(self, repo: str, rev: str) -> RevisionView:
        """Any revision, whatever its state (for reviewers and the review API)."""
        return self.resolve(repo, rev, approved_only=False)

    def list_repos(self, approved_only: bool = True) -> list[RepoView]:
        with self.db.session() as s:
            out: list[RepoView] = []
            for repo in s.scalars(select(Repo).order_by(Repo.name)):
                main = s.get(Ref, (repo.id, "main"))
                head = s.get(Revision, main.revision_id) if main is not None else None
                if head is None:
                    if approved_only:
                        continue
                    head = s.scalars(
                        select(Revision)
                        .where(Revision.repo_id == repo.id)
                        .order_by(Revision.id.desc())
                    ).first()
                tags = tuple(
                    s.scalars(select(Ref.name).where(Ref.repo_id == repo.id, Ref.name != "main"))
                )
                out.append(
                    RepoView(
                        name=repo.name,
                        main=head.commit if head is not None and main is not None else None,
                        updated_at=_aware(
                            (head.decided_at or head.created_at) if head else repo.created_at
                        ),
                        license=head.license if head else {},
                        tags=tuple(sorted(tags)),
                        max_severity=head.max_severity if head else None,
                        signed=bool(head and head.signature),
                    )
                )
            return out

    def revisions(self, repo: str) -> list[RevisionView]:
        with self.db.session() as s:
            repo_row = self._repo(s, repo)
            rows = s.scalars(
                select(Revision).where(Revision.repo_id == repo_row.id).order_by(Revision.id.desc())
            )
            return [self._view(s, r) for r in rows]

    def review_queue(self) -> list[RevisionView]:
        with self.db.session() as s:
            rows = s.scalars(
                select(Revision)
                .where(Revision.state.in_(("submitted", "scanning", "in_review")))
                .order_by(Revision.id)
            )
            return [self._view(s, r) for r in rows]

    def audit(self, repo: str | None = None, limit: int = 1000) -> list[AuditView]:
        with self.db.session() as s:
            q = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if repo is not None:
                q = q.where(AuditEvent.repo == repo)
            return [
                AuditView(e.id, e.at, e.actor, e.action, e.repo, e.commit, e.reason, dict(e.detail))
                for e in s.scalars(q)
            ]

    def attachments(self, repo: str, rev: str) -> dict[str, tuple[str, str, int]]:
        """``kind -> (sha256, media type, size)`` of the documents attached to a revision."""
        with self.db.session() as s:
            row = self._revision(s, repo, rev)
            return {
                a.kind: (a.sha256, a.media_type, a.size)
                for a in s.scalars(select(Attachment).where(Attachment.revision_id == row.id))
            }

    def attach(self, repo: str, rev: str, kind: str, sha256: str, media_type: str) -> None:
        """Attach a stored document (e.g. a rendered OCI manifest) to a revision, once per kind."""
        size = self.blobs.size(sha256)
        self.blobs.make_durable([sha256])
        self.register_blob(sha256, size)
        with self.db.session() as s:
            row = self._revision(s, repo, rev)
            self._attach(s, row, kind, sha256, media_type, size)

    def has_blob_in_repo(self, repo: str, sha256: str) -> bool:
        """True when an approved revision of ``repo`` (or one of its attachments) holds the blob."""
        with self.db.session() as s:
            repo_row = s.scalar(select(Repo).where(Repo.name == repo))
            if repo_row is None:
                return False
            in_files = s.scalar(
                select(func.count())
                .select_from(RevisionFile)
                .join(Revision, Revision.id == RevisionFile.revision_id)
                .where(Revision.repo_id == repo_row.id, Revision.state == "approved")
                .where(RevisionFile.sha256 == sha256)
            )
            if in_files:
                return True
            in_att = s.scalar(
                select(func.count())
                .select_from(Attachment)
                .join(Revision, Revision.id == Attachment.revision_id)
                .where(Revision.repo_id == repo_row.id, Revision.state == "approved")
                .where(Attachment.sha256 == sha256)
            )
            return bool(in_att)

    def record(
        self, actor: str, action: str, reason: str = "", detail: dict[str, Any] | None = None
    ) -> None:
        """Append an audit event that concerns no revision (tokens, keys, administration)."""
        with self.db.session() as s:
            self._audit(s, actor, action, "", "", reason, detail)

    # --------------------------------------------------------------------- gc
    def gc(self, dry_run: bool = True, actor: str = "modelward") -> list[str]:
        """Blobs no revision or attachment references, and no upload may still need.

        Kept besides the referenced ones: every blob committed (or committed again) within the
        grace hour before the oldest upload still in progress began, or before now when none is.
        An upload in progress is an OCI upload session opened within the last day (its chunks are
        blobs nothing references until the upload is closed, and the blobs pushed before it wait
        for the manifest), or a temporary upload file written within the grace hour. "Committed"
        is the later of the blob's database record and its file time in the store, so a blob
        committed a moment ago but not yet recorded is kept too.
        """
        started = utcnow()
        cutoff = self._gc_cutoff(started)
        with self.db.session() as s:
            live = set(s.scalars(select(RevisionFile.sha256)))
            live.update(s.scalars(select(Attachment.sha256)))
            recent = set(s.scalars(select(Blob.sha256).where(Blob.created_at > cutoff)))
        garbage = [
            d
            for d in self.blobs.iter_digests()
            if d not in live and d not in recent and not self._written_since(d, cutoff)
        ]
        if not dry_run:
            self.blobs.purge_temp(_HOUR * 24)  # temp files of uploads killed mid-way
            deleted = []
            for d in garbage:
                with self.db.session() as s:
                    b = s.get(Blob, d)
                    if b is not None and _aware(b.created_at) > cutoff:
                        continue  # committed again while gc ran
                    if b is not None:
                        s.delete(b)
                    self.blobs.delete(d)
                deleted.append(d)
            garbage = deleted
            with self.db.session() as s:
                self._audit(s, actor, "gc", "", "", "", {"deleted": len(garbage)})
        return garbage

    def _gc_cutoff(self, now: datetime) -> datetime:
        """Blobs committed after this instant are kept (see :meth:`gc`)."""
        since = now
        with self.db.session() as s:
            oldest = s.scalar(
                select(func.min(Upload.created_at)).where(Upload.created_at > now - _UPLOAD_TTL)
            )
        if oldest is not None:
            since = min(since, _aware(oldest))
        tmp_dir = getattr(self.blobs, "tmp_dir", None)
        if isinstance(tmp_dir, Path) and tmp_dir.is_dir():
            busy = now.timestamp() - _HOUR.total_seconds()
            for p in tmp_dir.iterdir():
                try:
                    written = p.stat().st_mtime
                except OSError:
                    continue
                if written > busy:  # an upload still being written: when it began is unknown
                    since = min(since, now - _UPLOAD_TTL)
                    break
        cutoff: datetime = since - _HOUR
        return cutoff

    def _written_since(self, digest: str, cutoff: datetime) -> bool:
        """True when the store's file of ``digest`` was written after ``cutoff`` (local stores)."""
        path = self.blobs.path(digest)
        if path is None:
            return False
        try:
            return os.stat(path).st_mtime > cutoff.timestamp()
        except OSError:
            return False

    # ---------------------------------------------------------------- helpers
    def _repo(self, s: Session, repo: str) -> Repo:
        row = s.scalar(select(Repo).where(Repo.name == repo))
        if row is None:
            raise RepoNotFound(f"repository {repo!r} not found", repo=repo)
        return row

    def _find_revision(self, s: Session, repo: str, commit: str) -> Revision | None:
        return s.scalar(
            select(Revision).join(Repo).where(Repo.name == repo, Revision.commit == commit)
        )

    def _revision(self, s: Session, repo: str, rev: str) -> Revision:
        repo_row = self._repo(s, repo)
        if is_commit(rev):
            row = s.scalar(
                select(Revision).where(Revision.repo_id == repo_row.id, Revision.commit == rev)
            )
        else:
            name = rev.removeprefix("refs/tags/").removeprefix("refs/heads/")
            name = "main" if name == LATEST else name
            ref = s.get(Ref, (repo_row.id, name))
            row = s.get(Revision, ref.revision_id) if ref is not None else None
            if row is None and name == "main":
                # No approved revision yet: say why instead of "not found".
                pending = s.scalars(
                    select(Revision)
                    .where(Revision.repo_id == repo_row.id)
                    .order_by(Revision.id.desc())
                ).first()
                if pending is not None:
                    raise NotApproved(
                        f"blocked by policy: {repo} has no approved revision "
                        f"(latest is {pending.state})",
                        repo=repo,
                        state=pending.state,
                    )
        if row is None:
            raise RevisionNotFound(f"revision {rev!r} of {repo!r} not found", repo=repo, rev=rev)
        return row

    def _locked(self, s: Session, repo: str, rev: str) -> Revision:
        """The revision, with its repository's row and its own locked until the session ends.

        A decision reads the state it changes and moves ``main``: on PostgreSQL two concurrent
        decisions would otherwise both see ``in_review``, or both create ``main``. Locking the
        repository first (always in that order) makes decisions on one repository take turns
        (SQLite's BEGIN IMMEDIATE already serialises them; there FOR UPDATE is a no-op).
        """
        row = self._revision(s, repo, rev)
        s.refresh(row.repo, with_for_update=True)
        s.refresh(row, with_for_update=True)
        return row

    def _set_ref(self, s: Session, row: Revision, name: str) -> None:
        ref = s.get(Ref, (row.repo_id, name))
        if ref is None:
            s.add(Ref(repo_id=row.repo_id, name=name, revision_id=row.id))
        else:
            ref.revision_id = row.id

    def _set_tag(
        self,
        s: Session,
        row: Revision,
        tag: str,
        actor: str,
        *,
        reviewed: bool = False,
        reason: str = "",
    ) -> None:
        """Point ``tag`` at ``row`` (see the module docstring for what may move when)."""
        if tag == "main":
            raise BadRequest("'main' is moved by approval and cannot be set as a tag")
        if tag == LATEST:
            return  # `latest` is `main`: approving the revision is what makes it `latest`
        ref = s.get(Ref, (row.repo_id, tag))
        if ref is not None and ref.revision_id == row.id:
            return
        if ref is not None:
            current = s.get_one(Revision, ref.revision_id)
            if current.state in ("approved", "revoked"):
                raise Conflict(
                    f"tag {tag!r} already names approved revision {current.commit[:12]}; "
                    "approved tags are immutable",
                    tag=tag,
                )
        if row.state in ("approved", "revoked") and not reviewed:
            raise NeedsReview(
                f"{row.repo.name}@{row.commit[:12]} is already {row.state}: naming it {tag!r} "
                f"would serve it as {row.repo.name}:{tag} without review; a reviewer can tag it "
                f"(POST /api/v1/hub/repos/{row.repo.name}/revisions/{row.commit}/tags)",
                tag=tag,
                commit=row.commit,
            )
        if ref is not None:
            ref.revision_id = row.id
        else:
            s.add(Ref(repo_id=row.repo_id, name=tag, revision_id=row.id))
        self._audit(s, actor, "tag", row.repo.name, row.commit, reason, {"tag": tag})

    def _attach(
        self, s: Session, row: Revision, kind: str, sha256: str, media_type: str, size: int
    ) -> None:
        existing = s.scalar(
            select(Attachment).where(Attachment.revision_id == row.id, Attachment.kind == kind)
        )
        if existing is None:
            s.add(
                Attachment(
                    revision_id=row.id, kind=kind, sha256=sha256, media_type=media_type, size=size
                )
            )

    def _audit(
        self,
        s: Session,
        actor: str,
        action: str,
        repo: str,
        commit: str = "",
        reason: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        s.add(
            AuditEvent(
                actor=actor,
                action=action,
                repo=repo,
                commit=commit,
                reason=reason,
                detail=detail or {},
            )
        )

    def _view(self, s: Session, row: Revision, with_scan: bool = True) -> RevisionView:
        tags = tuple(
            sorted(
                s.scalars(
                    select(Ref.name).where(
                        Ref.repo_id == row.repo_id, Ref.revision_id == row.id, Ref.name != "main"
                    )
                )
            )
        )
        main = s.get(Ref, (row.repo_id, "main"))
        return RevisionView(
            repo=row.repo.name,
            commit=row.commit,
            state=row.state,
            files=tuple(FileEntry(f.path, f.size, f.sha256, f.git_sha1) for f in row.files),
            created_at=_aware(row.created_at),
            created_by=row.created_by,
            provenance=dict(row.provenance or {}),
            license=dict(row.license or {}),
            scan=dict(row.scan or {}) if with_scan else {},
            max_severity=row.max_severity,
            reason=row.reason,
            decided_by=row.decided_by,
            decided_at=_aware(row.decided_at) if row.decided_at else None,
            tags=tags,
            signature=dict(row.signature) if row.signature else None,
            is_main=main is not None and main.revision_id == row.id,
        )


def _check_servable(repo: str, row: Revision) -> None:
    if row.state == "approved":
        return
    if row.state == "revoked":
        raise Revoked(
            f"Access to this resource is disabled. {repo}@{row.commit[:12]} was revoked: {row.reason}",
            repo=repo,
            commit=row.commit,
        )
    why = row.reason if row.state == "rejected" else f"revision is {row.state.replace('_', ' ')}"
    raise NotApproved(f"blocked by policy: {why}", repo=repo, commit=row.commit, state=row.state)


def _aware(dt: datetime) -> datetime:
    from datetime import UTC

    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


def _hour() -> Any:
    from datetime import timedelta

    return timedelta(hours=1)


_HOUR = _hour()
_UPLOAD_TTL = _HOUR * 24
"""How long an OCI upload session lives (``server.api.oci_push.UPLOAD_TTL``)."""
_REFRESH = _HOUR / 60
"""A blob's record is refreshed when committed again at least this long after the last time."""


def _detect_license(root: Path, scan_doc: dict[str, Any]) -> dict[str, Any]:
    """Declared (model card, GGUF metadata) and detected (LICENSE text) license of a revision."""
    from modelward.inventory.license import from_gguf_metadata, from_model_card, identify_text

    declared = None
    detected = None
    card = root / "README.md"
    if card.is_file():
        lic = from_model_card(card.read_text("utf-8", "replace")[:262_144])
        if lic is not None:
            declared = lic.to_dict() | {"source": "README.md"}
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING", "ollama/license"):
        p = root / name
        if p.is_file():
            lic = identify_text(p.read_text("utf-8", "replace")[:262_144], name)
            if lic is not None:
                detected = lic.to_dict() | {"source": name}
                break
    if declared is None:
        for item in scan_doc.get("files", []):
            md = item.get("metadata") or {}
            if item.get("format") == "gguf" and md:
                lic = from_gguf_metadata(md)
                if lic is not None:
                    declared = lic.to_dict() | {"source": item.get("path", "")}
                    break
    best = declared or detected
    return {
        "declared": declared,
        "detected": detected,
        "id": best["id"] if best else "unknown",
    }
