"""The one error hierarchy of modelward: every failure to run is an ``Error``.

Findings about a model are data (see :mod:`modelward.models`); an exception means modelward itself
could not do what was asked. The CLI catches only :class:`Error`, prints ``diagnostics()`` and exits 2.

::

    Error
    ├── UsageError          bad arguments or options (a path that does not exist, a bad severity)
    ├── ScanError           the scanner could not run at all (not: a file it could not read)
    ├── PolicyError         a policy that does not parse or evaluate (file:line); never an "allow"
    └── HubError            the model hub refused a request; carries an HTTP status and a stable code
        ├── BadRequest, InvalidName, DigestMismatch, TooLarge            (400, 413)
        ├── Unauthorized, Forbidden, NotApproved, NeedsReview, Revoked  (401, 403)
        ├── NotFound: RepoNotFound, RevisionNotFound, EntryNotFound, BlobNotFound  (404)
        ├── Conflict, ApprovalRefused                                    (409)
        └── Corrupt                                                      (500: stored bytes changed)
"""

from __future__ import annotations

from typing import Any, ClassVar


class Error(Exception):
    """Root of every error modelward raises on purpose."""

    def diagnostics(self) -> str:
        """A message for a person: what went wrong and, where known, what to do."""
        return str(self)


class UsageError(Error):
    """The caller asked for something that cannot be done as asked."""


class ScanError(Error):
    """The scanner could not run (not a per-file problem: those go into the report)."""


class PolicyError(Error):
    """A policy could not be parsed or evaluated; the message names the file and line."""


class HubError(Error):
    """The model hub refused a request. ``status`` is the HTTP status, ``code`` a stable identifier.

    The server renders every ``HubError`` as the one JSON error envelope; the hub client raises the
    same classes from that envelope, so a library user sees one set of errors on both sides.
    """

    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    oci_code: ClassVar[str] = "UNSUPPORTED"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail


class BadRequest(HubError):
    """The request is malformed."""


class InvalidName(HubError):
    """A repository name or file path breaks the Hugging Face or OCI/Ollama naming rules."""

    code = "invalid_name"
    oci_code = "NAME_INVALID"


class DigestMismatch(HubError):
    """Uploaded bytes do not hash to the declared SHA-256; nothing was stored."""

    code = "digest_invalid"
    oci_code = "DIGEST_INVALID"


class TooLarge(HubError):
    """An upload exceeds the server's size limit; nothing was stored."""

    status = 413
    code = "too_large"
    oci_code = "SIZE_INVALID"


class Unauthorized(HubError):
    """No valid token: authenticate first."""

    status = 401
    code = "unauthorized"
    oci_code = "UNAUTHORIZED"


class Forbidden(HubError):
    """The token is valid but its role may not do this."""

    status = 403
    code = "forbidden"
    oci_code = "DENIED"


class NotApproved(Forbidden):
    """The revision exists but is not approved; the message says why ("blocked by policy: ...")."""

    code = "not_approved"


class NeedsReview(Forbidden):
    """The change would make content servable under a name without a reviewer's decision
    (e.g. a publisher tagging an already approved revision): a reviewer must make it."""

    code = "needs_review"


class Revoked(Forbidden):
    """The revision was approved once and has been revoked."""

    code = "revoked"


class NotFound(HubError):
    """Something named in the request does not exist."""

    status = 404
    code = "not_found"
    oci_code = "NAME_UNKNOWN"


class RepoNotFound(NotFound):
    code = "repo_not_found"


class RevisionNotFound(NotFound):
    code = "revision_not_found"
    oci_code = "MANIFEST_UNKNOWN"


class EntryNotFound(NotFound):
    code = "entry_not_found"
    oci_code = "BLOB_UNKNOWN"


class BlobNotFound(NotFound):
    code = "blob_unknown"
    oci_code = "BLOB_UNKNOWN"


class Conflict(HubError):
    """The request conflicts with the current state (e.g. moving an immutable tag)."""

    status = 409
    code = "conflict"
    oci_code = "DENIED"


class ApprovalRefused(Conflict):
    """A revision with a critical finding (or a high one without override) cannot be approved."""

    code = "approval_refused"


class Corrupt(HubError):
    """Stored bytes no longer match their digest; they are never served."""

    status = 500
    code = "blob_corrupt"
    oci_code = "BLOB_UNKNOWN"
