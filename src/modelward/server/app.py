"""The FastAPI application factory: settings in, a hub with its routes out.

Server processes keep no state of their own: everything lives in the database and the blob store,
so several replicas can run behind a load balancer (secrets they share are kept in the database).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import url as sa_url
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelward import __version__
from modelward.errors import UsageError
from modelward.hub.service import Hub, HubSettings, Signer
from modelward.server import errors
from modelward.server.auth import TOKEN_PREFIX, create_token, hash_token, new_token
from modelward.server.settings import ServerSettings
from modelward.store.blobs import BlobStore, FsBlobStore
from modelward.store.db import Database, ServerKey, Token

log = logging.getLogger("modelward.server")

MAX_REQUEST_BODY = 32 << 20
"""Bodies that are read whole (JSON, forms), and read before the token is checked: a revision of
10,000 files with the longest paths fits. Routes that stream and bound their bodies themselves
are left alone: uploads (``max_upload_bytes``) and agent reports (``MAX_REPORT_BYTES``)."""
_STREAMED_BODY = re.compile(
    r"/api/v1/hub/blobs/|/v2/[^/]+/[^/]+/blobs/uploads(/|\Z)|/api/v1/agent/report\Z"
)

# Route modules, in matching order: the Hugging Face catch-all paths (/{ns}/{name}/resolve/...) last.
ROUTERS = (
    "modelward.server.api.hub",
    "modelward.server.api.oci",
    "modelward.server.web",
    "modelward.server.web_fleet",
    "modelward.server.api.agent",
    "modelward.server.api.fleet",
    "modelward.server.api.hf",
)


@dataclass
class Startup:
    """What the first start created and must tell the operator once (the admin token)."""

    admin_token: str | None = None


def create_app(settings: ServerSettings, startup: Startup | None = None) -> FastAPI:
    """Build the application; the database and blob store are opened in the lifespan."""
    state = build_state(settings, startup)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state["db"].dispose()

    app = FastAPI(
        title="modelward hub",
        version=__version__,
        description="The curated internal model hub: Hugging Face, OCI and Ollama protocols over "
        "approved, scanned and signed model revisions.",
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimit, limit=MAX_REQUEST_BODY)
    from modelward.server.api.agent import ReportFastPath

    app.add_middleware(ReportFastPath)  # outside BodyLimit: it bounds the report itself
    for key, value in state.items():
        setattr(app.state, key, value)
    errors.install(app)
    for name in ROUTERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        app.include_router(module.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI schema, with one operation id per method.

    FastAPI names a route registered for several methods (GET and HEAD of a download) once, and
    warns about the duplicate for each further method; each method's id gets its method appended.
    """
    if app.openapi_schema:
        return app.openapi_schema
    import warnings

    from fastapi.openapi.utils import get_openapi

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Duplicate Operation ID")
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
    seen: set[str] = set()
    for ops in schema.get("paths", {}).values():
        for method, op in ops.items():
            oid = op.get("operationId")
            if oid is None:
                continue
            if oid in seen:
                op["operationId"] = oid = f"{oid}_{method}"
            seen.add(oid)
    _document_errors(schema)
    app.openapi_schema = schema
    return schema


_ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "The one error envelope of every route (see server/errors.py).",
    "required": ["error", "errors"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "code", "message", "detail"],
            "properties": {
                "status": {"type": "integer", "description": "The HTTP status."},
                "code": {"type": "string", "description": "A stable identifier (repo_not_found)."},
                "message": {"type": "string", "description": "One sentence for a person."},
                "detail": {"type": "object", "description": "Machine-readable specifics."},
            },
        },
        "errors": {
            "type": "array",
            "description": "The same error as the OCI distribution spec's list (one shape for "
            "every client).",
            "items": {
                "type": "object",
                "properties": {
                    "code": {"type": "string", "description": "OCI code (NAME_UNKNOWN ...)."},
                    "message": {"type": "string"},
                    "detail": {"type": "object"},
                },
            },
        },
    },
}
_ERROR_STATUSES = {
    "400": "Bad request",
    "401": "No valid token (a WWW-Authenticate challenge on the registry routes)",
    "403": "The token's role may not do this, or the revision is not approved",
    "404": "Not found",
    "413": "Larger than the server's limits",
}


def _document_errors(schema: dict[str, Any]) -> None:
    """FastAPI documents its own validation error (``HTTPValidationError``) for 422, but every
    error, 422 included, is the one envelope: document that, on every operation, with the bearer
    token scheme the routes accept (``Authorization: Bearer <API token>``, or Basic with the token
    as the password on the registry routes)."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = _ERROR_SCHEMA
    components["securitySchemes"] = {
        "token": {"type": "http", "scheme": "bearer", "description": "An API token (mw_...)."}
    }
    schema["security"] = [{"token": []}, {}]  # anonymous read may be on: a token is optional
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            for status, text in {**_ERROR_STATUSES, "422": "Invalid request"}.items():
                if status == "422" and status not in responses:
                    continue  # no parameters or body to validate
                responses[status] = {"description": text, **ref}


class BodyLimit:
    """Refuse (413, the JSON envelope) a request body over ``limit`` on every route but the uploads.

    FastAPI reads a JSON or form body whole before any dependency (the token check) runs, so
    without this an anonymous client could make the server hold any amount of memory. Hand-written
    (pure ASGI) because FastAPI's own ``max_body_size`` answers a too-large Content-Length in
    plain text, not in the envelope every error has.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _STREAMED_BODY.match(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._too_large()(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:  # a chunked body: FastAPI passes an HTTPException through
                raise StarletteHTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"request body is larger than {self.limit} bytes"

    def _too_large(self) -> JSONResponse:
        body = errors.envelope(413, "too_large", self._message())
        return JSONResponse(body, status_code=413, headers={"Connection": "close"})


class StartupError(UsageError):
    """The server cannot start (database, data folder): one line saying what and where."""


def build_state(settings: ServerSettings, startup: Startup | None = None) -> dict[str, Any]:
    """Open (and migrate) the database and blob store, load shared secrets, bootstrap the admin."""
    make_folder(settings.data_dir, "data folder")
    db = open_database(settings.effective_database_url)
    try:
        with database_errors(db.url):
            migrate(db, settings)
            blobs = open_blob_store(settings)
            signer = load_signer(db)
            hub = Hub(db, blobs, HubSettings(), signer)
            token = bootstrap_admin(db, settings)
            url_key = shared_secret(db, "url-signing", lambda: secrets.token_hex(32))
    except BaseException:
        db.dispose()  # the app will not start: close the pool now
        raise
    if startup is not None:
        startup.admin_token = token
    return {
        "settings": settings,
        "db": db,
        "blobs": blobs,
        "hub": hub,
        "url_key": url_key,
        "token_verifiers": [],
    }


def make_folder(path: Path, what: str) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the {what} {path}: {exc.strerror or exc}") from None


def redact_url(url: str) -> str:
    """``url`` with its password shown as ``***`` (and said so), for messages and logs."""
    try:
        parsed = sa_url.make_url(url)
    except sa_exc.ArgumentError:
        return (
            url if "@" not in url else url.split("://", 1)[0] + "://***@" + url.rpartition("@")[2]
        )
    if parsed.password is None:
        return url
    return parsed.render_as_string(hide_password=True) + " (password redacted)"


def open_database(url: str) -> Database:
    """The database at ``url``; a bad URL or a missing driver is a :class:`StartupError`."""
    shown = redact_url(url)
    try:
        return Database(url)
    except sa_exc.NoSuchModuleError:
        kind = url.partition("://")[0]
        raise StartupError(
            f"cannot use the database at {shown}: {kind!r} is not a database modelward supports "
            "(sqlite:///PATH or postgresql+psycopg://USER@HOST/DB)"
        ) from None
    except ModuleNotFoundError as exc:
        raise StartupError(
            f"cannot use the database at {shown}: its driver {exc.name} is not installed "
            "(supported: sqlite:///PATH, postgresql+psycopg://USER@HOST/DB)"
        ) from None
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise StartupError(f"cannot use the database URL {shown}: {exc}") from None


@contextlib.contextmanager
def database_errors(url: str) -> Iterator[None]:
    """Turn a database that cannot be reached or used into one clear :class:`StartupError`."""
    shown = redact_url(url)
    try:
        yield
    except sa_exc.DBAPIError as exc:
        reason = _db_reason(exc)
        if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
            verb = "open" if url.startswith("sqlite") else "reach"
            raise StartupError(f"cannot {verb} the database at {shown}: {reason}") from None
        raise StartupError(f"the database at {shown} failed: {reason}") from None


def _db_reason(exc: sa_exc.DBAPIError) -> str:
    """The driver's own words, first line, without the driver's prefixes: 'connection refused'."""
    text = str(exc.orig) if exc.orig is not None else str(exc)
    first = next((line.strip() for line in text.splitlines() if line.strip()), "") or repr(exc)
    first = first.rpartition(" failed: ")[2]
    first = re.sub(r"^(FATAL|ERROR):\s*", "", first).strip()
    if first.lower() == "connection refused":
        first = "connection refused"
    return first[:300]


def migrate(db: Database, settings: ServerSettings) -> None:
    """Bring the schema to the current version (Alembic when its migrations are present)."""
    try:
        from modelward.store.migrate import require_current, upgrade
    except ModuleNotFoundError:
        db.create_all()
        return
    if settings.auto_migrate or db.url.startswith("sqlite"):
        upgrade(db)
    else:
        require_current(db)  # SchemaError: "run `modelward server migrate`"


def open_blob_store(settings: ServerSettings) -> BlobStore:
    if settings.blob_backend == "s3":
        from modelward.store.s3 import S3BlobStore

        return S3BlobStore.from_settings(settings)
    return FsBlobStore(settings.effective_blob_dir, fsync=settings.blob_fsync)


def shared_secret(db: Database, name: str, make: Callable[[], str]) -> str:
    """A secret every replica shares: created once (first writer wins), then read."""
    with db.session() as s:
        row = s.get(ServerKey, name)
        if row is not None:
            return row.value
    try:
        with db.session() as s:
            s.add(ServerKey(name=name, value=make()))
    except IntegrityError:
        pass
    with db.session() as s:
        return s.get_one(ServerKey, name).value


def load_signer(db: Database) -> Signer | None:
    """The hub's model-signing key (ECDSA P-256), generated on first start and kept in the database."""
    try:
        from modelward.hub.signing import Signer as ModelSigner
    except ModuleNotFoundError:
        return None
    pem = shared_secret(
        db, "model-signing-key", lambda: ModelSigner.generate().private_pem.decode()
    )
    signer: Signer = ModelSigner.from_pem(pem.encode())
    return signer


BOOTSTRAP_MARKER = "bootstrap-admin"
"""The ``server_keys`` row that records the first start's admin token, as its SHA-256 only: the
first replica to insert it is the one that made (and prints) the token."""


def bootstrap_admin(db: Database, settings: ServerSettings) -> str | None:
    """Ensure an admin token exists; return it in clear only when it was created now.

    The database keeps only the token's hash (like every token), so the token can be shown once,
    on this start, and never recovered later.
    """
    from sqlalchemy import select

    hash_clear_bootstrap_token(db)
    if settings.admin_token:
        create_token(
            db, "admin (MODELWARD_ADMIN_TOKEN)", "admin", "modelward", settings.admin_token
        )
        return None
    with db.session() as s:
        if s.scalar(select(Token).where(Token.role == "admin")) is not None:
            return None
        if s.get(ServerKey, BOOTSTRAP_MARKER) is not None:
            return None  # bootstrapped before (its token since deleted): never make another
    token = new_token()
    digest = hash_token(token)
    try:
        with db.session() as s:  # the marker and the token in one transaction
            s.add(ServerKey(name=BOOTSTRAP_MARKER, value=digest))
            s.flush()  # another replica's marker: IntegrityError, it bootstrapped
            s.add(
                Token(
                    name="admin (first start)",
                    role="admin",
                    token_hash=digest,
                    created_by="modelward",
                )
            )
    except IntegrityError:
        return None
    return token


def hash_clear_bootstrap_token(db: Database) -> None:
    """Replace a first-start admin token stored in clear by its hash.

    Earlier builds kept the token itself in ``server_keys``; the token keeps working (its hashed
    row in ``tokens`` is made if missing, a revoked one stays revoked), only its clear copy goes.
    """
    with db.session() as s:
        row = s.get(ServerKey, BOOTSTRAP_MARKER)
        if row is None or not row.value.startswith(TOKEN_PREFIX):
            return
        clear = row.value
    create_token(db, "admin (first start)", "admin", "modelward", clear)
    with db.session() as s:
        row = s.get(ServerKey, BOOTSTRAP_MARKER)
        if row is not None and row.value == clear:
            row.value = hash_token(clear)
    log.info("the first start's admin token was stored in clear; it is now stored hashed")
