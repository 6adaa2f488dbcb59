"""The one JSON error envelope of every route, and the exception handlers that produce it.

Shape (pinned by tests/server/test_errors.py)::

    {"error": {"status": 404, "code": "repo_not_found", "message": "...", "detail": {...}},
     "errors": [{"code": "NAME_UNKNOWN", "message": "...", "detail": {...}}]}

``errors`` is the OCI distribution-spec list, present everywhere so one shape fits every client.
Hugging Face clients read ``X-Error-Code`` / ``X-Error-Message`` headers (research/hub.md 1.5).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelward.errors import (
    EntryNotFound,
    HubError,
    NotApproved,
    RepoNotFound,
    RevisionNotFound,
    Revoked,
    Unauthorized,
)

log = logging.getLogger("modelward.server")

_HF_CODES: list[tuple[type[HubError], str]] = [
    (RepoNotFound, "RepoNotFound"),
    (RevisionNotFound, "RevisionNotFound"),
    (EntryNotFound, "EntryNotFound"),
    (Unauthorized, "RepoNotFound"),  # hf_raise_for_status needs a code on 401 (hub.md 1.5)
    (NotApproved, "GatedRepo"),
]
_OCI_BY_STATUS = {
    400: "UNSUPPORTED",
    401: "UNAUTHORIZED",
    403: "DENIED",
    404: "NAME_UNKNOWN",
    405: "UNSUPPORTED",
    413: "SIZE_INVALID",
    422: "UNSUPPORTED",
}
DISABLED_MESSAGE = "Access to this resource is disabled."


def envelope(
    status: int, code: str, message: str, detail: dict[str, Any] | None = None, oci_code: str = ""
) -> dict[str, Any]:
    """The error body every route returns."""
    detail = detail or {}
    return {
        "error": {"status": status, "code": code, "message": message, "detail": detail},
        "errors": [
            {
                "code": oci_code or _OCI_BY_STATUS.get(status, "UNSUPPORTED"),
                "message": message,
                "detail": detail,
            }
        ],
    }


def error_response(exc: HubError, headers: dict[str, str] | None = None) -> Response:
    """Render a :class:`HubError` (HEAD requests get the headers and no body)."""
    h = dict(getattr(exc, "headers", None) or {})
    h.update(headers or {})
    for cls, hf_code in _HF_CODES:
        if isinstance(exc, cls):
            h.setdefault("X-Error-Code", hf_code)
            break
    h.setdefault(
        "X-Error-Message", DISABLED_MESSAGE if isinstance(exc, Revoked) else _ascii(exc.message)
    )
    body = envelope(exc.status, exc.code, exc.message, _jsonable(exc.detail), exc.oci_code)
    return JSONResponse(body, status_code=exc.status, headers=h)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:1000].replace("\r", " ").replace("\n", " ")


def _jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    return {
        k: v if isinstance(v, (str, int, float, bool, type(None), list, dict)) else str(v)
        for k, v in detail.items()
        if not k.startswith("_")
    }


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the envelope."""

    @app.exception_handler(HubError)
    async def _hub_error(request: Request, exc: HubError) -> Response:
        return _strip_head(request, error_response(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        problems = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        msg = "; ".join(f"{'.'.join(p['loc'])}: {p['msg']}" for p in problems) or "invalid request"
        body = envelope(422, "invalid_request", msg, {"problems": problems})
        return _strip_head(request, JSONResponse(body, status_code=422))

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> Response:
        # Input the database cannot hold (PostgreSQL: a NUL character in text): bad input, not a
        # server fault. The message names no SQL and no value.
        log.info(
            "refused a value the database cannot store on %s %s", request.method, request.url.path
        )
        message = "the request holds a value the database cannot store (e.g. a NUL character)"
        body = envelope(400, "bad_request", message)
        return _strip_head(request, JSONResponse(body, status_code=400))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(
            exc.status_code, "http_error"
        )
        message = str(exc.detail) if exc.detail else code.replace("_", " ")
        body = envelope(exc.status_code, code, message)
        return _strip_head(
            request, JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
        )

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path)
        body = envelope(500, "internal_error", "internal server error; see the server log")
        return JSONResponse(body, status_code=500)


def _strip_head(request: Request, resp: Response) -> Response:
    if request.method == "HEAD":
        headers = {k: v for k, v in resp.headers.items() if k.lower() != "content-length"}
        return Response(status_code=resp.status_code, headers=headers)
    return resp
