"""HTTP client (httpx) for the hub's JSON API under ``/api/v1/hub/``, used by ``modelward hub``.

Every error answer of the server is the one JSON envelope ``{"error": {"status", "code", "message",
"detail"}}``; :class:`HubClient` raises it as the matching :class:`modelward.errors.HubError`
subclass (by ``code``, else by status), so callers see the same errors as the library API. A server
that cannot be reached is :class:`HubUnreachable`, naming the URL.
"""

from __future__ import annotations

import base64
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from modelward.errors import (
    BadRequest,
    Conflict,
    Error,
    Forbidden,
    HubError,
    NotFound,
    TooLarge,
    Unauthorized,
)
from modelward.hub.ingest import CHUNK, IngestFile, IngestPlan
from modelward.hub.names import validate_repo, validate_tag

if TYPE_CHECKING:
    import httpx

API = "/api/v1/hub"
DEFAULT_SERVER = "http://127.0.0.1:8000"
Update = Callable[[str, int, int], None]
"""``update(label, done_bytes, total_bytes)``."""


class HubUnreachable(Error):
    """The hub server could not be reached (connection refused, DNS, TLS, timeout)."""


class ServerError(HubError):
    """The server failed with a status or code this client does not know."""

    status = 500
    code = "server_error"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did: the revision the server created and how many bytes went over the wire."""

    revision: dict[str, Any]
    uploaded: int
    present: int
    bytes_uploaded: int


@dataclass(frozen=True, slots=True)
class Signature:
    """A revision's OpenSSF model-signing bundle and the hub's public key (PEM)."""

    repo: str
    commit: str
    bundle: bytes
    public_pem: bytes
    state: str = "approved"
    """The revision's state when the signature was fetched: a revoked revision keeps its signature,
    so a caller checking a copy must also check this is ``approved``."""


def _error_classes() -> dict[str, type[HubError]]:
    """Every ``HubError`` subclass by its stable code (the ingest module adds ``upstream_failed``)."""
    import modelward.hub.ingest  # noqa: F401  (registers UpstreamError)

    out: dict[str, type[HubError]] = {}
    stack: list[type[HubError]] = [HubError]
    while stack:
        cls = stack.pop()
        out.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return out


_BY_STATUS: dict[int, type[HubError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: BadRequest,
}


_BY_HF_CODE: dict[str, str] = {
    "RepoNotFound": "repo_not_found",
    "RevisionNotFound": "revision_not_found",
    "EntryNotFound": "entry_not_found",
    "GatedRepo": "not_approved",
}
"""The Hugging Face ``X-Error-Code`` values the hub sends, as the hub's own codes."""


def error_from_response(response: httpx.Response, had_token: bool) -> HubError:
    """The :class:`HubError` an error response stands for.

    Its JSON envelope, else (a HEAD answer has no body) its ``X-Error-Code`` and
    ``X-Error-Message`` headers, else its status.
    """
    status = response.status_code
    code = ""
    message = ""
    detail: dict[str, Any] = {}
    try:
        doc = response.json()
    except ValueError:
        doc = None
    err = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(err, dict):
        code = str(err.get("code") or "")
        message = str(err.get("message") or "")
        if isinstance(err.get("detail"), dict):
            detail = dict(err["detail"])
    if not message:
        message = response.headers.get("x-error-message", "").strip()[:1000]
        header_code = response.headers.get("x-error-code", "").strip()
        if not code and status != 401:  # a 401 says RepoNotFound for huggingface_hub's sake
            code = _BY_HF_CODE.get(header_code, "")
    if not message:
        text = "" if response.request.method == "HEAD" else response.text.strip()[:300]
        message = f"HTTP {status} from {response.request.method} {response.request.url}" + (
            f": {text}" if text else ""
        )
    cls = _error_classes().get(code) or _BY_STATUS.get(status, ServerError)
    if status == 401 and not had_token:
        message += " (no token given: pass --token or set MODELWARD_TOKEN)"
    exc = cls(message)
    exc.detail = {**detail, "http_status": status}
    return exc


def open_session(
    server: str | None, token: str | None, timeout: float, transport: Any, user_agent: str
) -> tuple[str, str | None, httpx.Client]:
    """The server URL, the token and an httpx client for them (``MODELWARD_SERVER``/``_TOKEN``)."""
    import httpx

    url = (server or os.environ.get("MODELWARD_SERVER") or DEFAULT_SERVER).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise HubUnreachable(f"--server {url!r} must start with http:// or https://")
    tok = token if token is not None else os.environ.get("MODELWARD_TOKEN") or None
    headers = {"User-Agent": user_agent}
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    client = httpx.Client(
        base_url=url,
        headers=headers,
        timeout=httpx.Timeout(timeout, connect=15.0),
        transport=transport,
        follow_redirects=False,
    )
    return url, tok, client


class HubClient:
    """A session with one hub server: ``with HubClient(url, token) as hub: hub.push(plan, repo)``."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 900.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server, self.token, self._http = open_session(
            server, token, timeout, transport, "modelward-hub-client"
        )

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ---------------------------------------------------------------------------------- plumbing
    def _request(
        self, method: str, path: str, *, ok: Sequence[int] = (200, 201), **kw: Any
    ) -> httpx.Response:
        import httpx

        url = f"{API}/{path}"
        try:
            response = self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            raise HubUnreachable(
                f"cannot reach the hub at {self.server}{url}: {exc or type(exc).__name__} "
                "(is `modelward server` running there? set --server or MODELWARD_SERVER)"
            ) from None
        if response.status_code not in ok:
            response.read()
            raise error_from_response(response, bool(self.token))
        return response

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        response = self._request(method, path, **kw)
        try:
            return response.json()
        except ValueError:
            raise ServerError(
                f"the hub at {self.server} answered {method} {API}/{path} with non-JSON content"
            ) from None

    @staticmethod
    def _repo_path(repo: str) -> str:
        validate_repo(repo)
        return f"repos/{repo}"

    @staticmethod
    def _rev(rev: str) -> str:
        return quote(rev, safe="")

    # ---------------------------------------------------------------------------------- blobs
    def has_blob(self, sha256: str) -> bool:
        """True when the server already stores a blob with this SHA-256."""
        response = self._request("HEAD", f"blobs/{sha256}", ok=(200, 404))
        return response.status_code == 200

    def upload_blob(self, f: IngestFile, progress: Callable[[int], None] | None = None) -> None:
        """Stream one file's bytes to ``PUT blobs/<sha256>``; the server verifies the digest."""

        def body() -> Iterator[bytes]:
            try:
                with open(f.source, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        yield chunk
                        if progress is not None:
                            progress(len(chunk))
            except OSError as exc:
                raise Error(f"cannot read {f.source}: {exc.strerror or exc}") from None

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(f.size)}
        self._request("PUT", f"blobs/{f.sha256}", content=body(), headers=headers)

    def push(
        self,
        plan: IngestPlan,
        repo: str,
        tag: str | None = None,
        progress: Update | None = None,
    ) -> PushResult:
        """Upload the blobs the server lacks (HEAD first), then create the revision."""
        validate_repo(repo)
        if tag is not None:
            validate_tag(tag)
        missing: list[IngestFile] = []
        seen: set[str] = set()
        present = 0
        for f in plan.files:
            if f.sha256 in seen:
                continue
            seen.add(f.sha256)
            if self.has_blob(f.sha256):
                present += 1
            else:
                missing.append(f)
        total = sum(f.size for f in missing)
        done = 0
        for f in missing:
            label = f.path if len(f.path) <= 40 else "…" + f.path[-39:]

            def step(n: int, label: str = label) -> None:
                nonlocal done
                done += n
                if progress is not None:
                    progress(label, done, total)

            self.upload_blob(f, step)
        revision = self.create_revision(repo, plan.files, plan.provenance, tag)
        return PushResult(
            revision=revision, uploaded=len(missing), present=present, bytes_uploaded=total
        )

    # ------------------------------------------------------------------------------- revisions
    def create_revision(
        self,
        repo: str,
        files: Sequence[IngestFile],
        provenance: dict[str, Any],
        tag: str | None = None,
    ) -> dict[str, Any]:
        body = {"files": [f.to_dict() for f in files], "provenance": provenance, "tag": tag}
        doc: dict[str, Any] = self._json("POST", f"{self._repo_path(repo)}/revisions", json=body)
        return doc

    def revision(self, repo: str, rev: str = "main") -> dict[str, Any]:
        doc: dict[str, Any] = self._json(
            "GET", f"{self._repo_path(repo)}/revisions/{self._rev(rev)}"
        )
        return doc

    def repos(self) -> list[dict[str, Any]]:
        doc = self._json("GET", "repos")
        return list(doc.get("repos", [])) if isinstance(doc, dict) else []

    def review_queue(self) -> list[dict[str, Any]]:
        doc = self._json("GET", "review")
        return list(doc.get("revisions", [])) if isinstance(doc, dict) else []

    def _decide(self, action: str, repo: str, rev: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"{self._repo_path(repo)}/revisions/{self._rev(rev)}/{action}"
        doc: dict[str, Any] = self._json("POST", path, json=body)
        return doc

    def approve(self, repo: str, rev: str, reason: str, override: bool = False) -> dict[str, Any]:
        return self._decide("approve", repo, rev, {"reason": reason, "override": override})

    def reject(self, repo: str, rev: str, reason: str) -> dict[str, Any]:
        return self._decide("reject", repo, rev, {"reason": reason})

    def revoke(self, repo: str, rev: str, reason: str) -> dict[str, Any]:
        return self._decide("revoke", repo, rev, {"reason": reason})

    def tag(self, repo: str, rev: str, tag: str, reason: str) -> dict[str, Any]:
        """Name an approved revision with a tag (reviewer or admin)."""
        return self._decide("tags", repo, rev, {"tag": tag, "reason": reason})

    def signature(self, repo: str, rev: str = "main") -> Signature:
        """The signature bundle and public key of a signed revision, with its state (a revoked
        revision keeps its signature: :attr:`Signature.state` says whether it is still approved)."""
        path = f"{self._repo_path(repo)}/revisions/{self._rev(rev)}/signature"
        doc = self._json("GET", path)
        try:
            return Signature(
                repo=repo,
                commit=str(doc["commit"]),
                bundle=base64.b64decode(doc["bundle"], validate=True),
                public_pem=str(doc["public_key"]).encode(),
                state=str(doc.get("state") or "approved"),
            )
        except (KeyError, TypeError, ValueError):
            raise ServerError(f"the hub at {self.server} sent a malformed signature") from None

    def import_upstream(
        self,
        endpoint: str,
        repo_id: str,
        repo: str,
        revision: str | None = None,
        tag: str | None = None,
        upstream_token: str | None = None,
    ) -> dict[str, Any]:
        """Ask the server to fetch ``repo_id`` from a Hugging Face-compatible endpoint into ``repo``."""
        validate_repo(repo)
        if tag is not None:
            validate_tag(tag)
        body = {
            "endpoint": endpoint,
            "repo_id": repo_id,
            "revision": revision,
            "repo": repo,
            "tag": tag,
            "token": upstream_token,
        }
        doc: dict[str, Any] = self._json("POST", "import", json=body)
        return doc

    # ------------------------------------------------------------------------------------ admin
    def create_token(self, role: str, name: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("POST", "tokens", json={"role": role, "name": name})
        return doc

    def add_ollama_key(self, public_key: str, name: str, role: str = "reader") -> dict[str, Any]:
        body = {"public_key": public_key, "name": name, "role": role}
        doc: dict[str, Any] = self._json("POST", "ollama-keys", json=body)
        return doc

    def tokens(self) -> list[dict[str, Any]]:
        """Every API token (never the token itself): id, name, role, created, revoked."""
        doc = self._json("GET", "tokens")
        return list(doc.get("tokens", [])) if isinstance(doc, dict) else []

    def revoke_token(self, token_id: int, reason: str = "") -> dict[str, Any]:
        """Revoke API token ``token_id`` at once (``already_revoked`` says it was before)."""
        params = {"reason": reason} if reason else {}
        doc: dict[str, Any] = self._json("DELETE", f"tokens/{int(token_id)}", params=params)
        return doc

    def ollama_keys(self) -> list[dict[str, Any]]:
        """Every registered Ollama key: id, name, role, fingerprint, created, revoked."""
        doc = self._json("GET", "ollama-keys")
        return list(doc.get("keys", [])) if isinstance(doc, dict) else []

    def revoke_ollama_key(self, key: str, reason: str = "") -> dict[str, Any]:
        """Revoke an Ollama key by id or fingerprint (``SHA256:...``)."""
        params = {"reason": reason} if reason else {}
        path = f"ollama-keys/{quote(key.strip(), safe='')}"
        doc: dict[str, Any] = self._json("DELETE", path, params=params)
        return doc

    def gc(self, apply: bool = False) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("POST", "gc", json={"apply": apply})
        return doc

    def audit(self, repo: str | None = None) -> list[dict[str, Any]]:
        params = {"repo": repo} if repo else {}
        doc = self._json("GET", "audit", params=params)
        return list(doc.get("events", [])) if isinstance(doc, dict) else []


@contextlib.contextmanager
def transfer_progress(title: str) -> Iterator[Update | None]:
    """A transient byte progress bar (rich) on stderr when it is a terminal, else ``None``."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    progress = Progress(
        TextColumn(title),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.description}"),
        console=Console(stderr=True),
        transient=True,
        auto_refresh=False,
    )
    task = progress.add_task("", total=None)
    last = 0.0

    def update(label: str, done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last < 0.1 and done != total:
            return
        last = now
        progress.update(task, completed=done, total=total or None, description=label)
        progress.refresh()

    with progress:
        yield update
