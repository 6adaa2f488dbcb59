"""The endpoint agents' API under ``/api/v1/agent/``: enroll, report, policy (see fleet-spec).

Every route but ``enroll`` authenticates the host key (``Authorization: Bearer mwh_...``) BEFORE
reading the body, so a forged or revoked key gets 401 (``unauthorized`` / ``host_key_revoked``)
and nothing is parsed or stored. The work is done by :class:`modelward.fleet.service.Fleet`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Final

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from modelward.errors import BadRequest, HubError, TooLarge, Unauthorized
from modelward.fleet import bundle
from modelward.fleet.report import Report, parse_report
from modelward.fleet.service import Fleet, FleetSettings
from modelward.server.errors import error_response

router = APIRouter(prefix="/api/v1/agent", tags=["agent"])

MAX_REPORT_BYTES: Final = 64 << 20
INLINE_PARSE_BYTES: Final = 16 << 10
BUNDLE_KEY_NAME: Final = "fleet-bundle-signing-key"


def fleet_of(app: FastAPI) -> Fleet:
    """The app's :class:`Fleet`, made on first use (its signing key is shared by replicas)."""
    fleet: Fleet | None = getattr(app.state, "fleet", None)
    if fleet is None:
        from modelward.server.app import shared_secret

        settings = app.state.settings
        pem = shared_secret(app.state.db, BUNDLE_KEY_NAME, bundle.new_private_pem)
        fleet = Fleet(
            app.state.db,
            pem,
            FleetSettings(
                report_interval=settings.fleet_report_interval,
                offline_after=settings.fleet_offline_after,
            ),
        )
        app.state.fleet = fleet
    return fleet


def _bearer(authorization: str) -> str:
    """The host key of an ``Authorization`` header value, or 401."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("a host key is required: Authorization: Bearer mwh_...")
    return value.strip()


async def _host_id(fleet: Fleet, key: str, *, cached: bool = False) -> str:
    """The host a key belongs to (``cached``: a key seen valid lately passes without a query)."""
    host_id = fleet.cached_host(key) if cached else None
    if host_id is None:
        host_id = await run_in_threadpool(fleet.authenticate, key)
    return host_id


async def _host(request: Request) -> tuple[Fleet, str]:
    fleet = await _fleet(request.app)
    return fleet, await _host_id(fleet, _bearer(request.headers.get("authorization", "")))


class HostIn(BaseModel):
    hostname: str = Field(max_length=255)
    machine_id: str = Field(max_length=200)
    os: str = Field(default="", max_length=64)
    os_version: str = Field(default="", max_length=200)
    user: str = Field(default="", max_length=200)
    agent_version: str = Field(default="", max_length=64)


class EnrollIn(BaseModel):
    secret: str = Field(max_length=200)
    host: HostIn


@router.post("/enroll", status_code=201)
def enroll(body: EnrollIn, request: Request) -> dict[str, Any]:
    fleet = fleet_of(request.app)
    return fleet.enroll(body.secret, body.host.model_dump()).to_dict()


REPORT_PATH: Final = "/api/v1/agent/report"


@router.post("/report", response_model=dict[str, Any])
async def report(request: Request) -> Response:
    """Apply an agent's report exactly once. Served by :class:`ReportFastPath` in the app; this
    route is what the OpenAPI schema shows and what answers if the fast path is not installed."""
    fleet = await _fleet(request.app)
    body = await _apply_report(
        fleet,
        request.headers.get("authorization", ""),
        request.headers.get("content-length"),
        request.receive,
    )
    return Response(body, media_type="application/json")


async def _fleet(app: Any) -> Fleet:
    fleet: Fleet | None = getattr(app.state, "fleet", None)
    if fleet is None:
        fleet = await run_in_threadpool(fleet_of, app)
    return fleet


async def _apply_report(
    fleet: Fleet, authorization: str, declared: str | None, receive: Receive
) -> bytes:
    """Check the key, read the body, have the report applied; the answer's JSON body."""
    key = _bearer(authorization)
    # The key is checked again inside the report's transaction: a cached pass here only
    # decides whether the body is worth reading.
    host_id = await _host_id(fleet, key, cached=True)
    if declared is not None and declared.isdigit() and int(declared) > MAX_REPORT_BYTES:
        raise TooLarge(f"a report may be at most {MAX_REPORT_BYTES} bytes")
    raw = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":  # the agent went away mid-body: nothing stored
            raise BadRequest("the client closed the connection before the report was sent")
        raw += message.get("body", b"")
        if len(raw) > MAX_REPORT_BYTES:
            raise TooLarge(f"a report may be at most {MAX_REPORT_BYTES} bytes")
        if not message.get("more_body", False):
            break

    def parse() -> Report:
        try:
            doc = json.loads(raw)
        except ValueError:
            raise BadRequest("the report is not valid JSON") from None
        if not isinstance(doc, dict):
            raise BadRequest("the report must be a JSON object")
        return parse_report(doc)

    # A small report (a delta) is parsed on the event loop: a thread hop would cost more than
    # the parsing; a big one in a worker thread, so the loop never stalls on it.
    parsed = parse() if len(raw) <= INLINE_PARSE_BYTES else await run_in_threadpool(parse)
    # Applied by the group-commit writer with the reports of other agents sent meanwhile; the
    # answer comes after its transaction committed.
    ack = await asyncio.wrap_future(fleet.submit(host_id, parsed, host_key=key))
    return json.dumps(ack.to_dict(), separators=(",", ":")).encode()


class ReportFastPath:
    """``POST /api/v1/agent/report`` straight from the ASGI server, past FastAPI's routing,
    request objects and dependency machinery: with thousands of agents this is the server's
    hottest request, and that machinery cost about as much CPU as applying a delta report.
    Same behaviour as the route (which stays for the OpenAPI schema): errors in the envelope.
    Hand-written (pure ASGI) because no library offers a per-route bypass of the framework.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != REPORT_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            fleet = await _fleet(scope["app"])
            body = await _apply_report(
                fleet,
                headers.get(b"authorization", b"").decode("latin-1"),
                (headers.get(b"content-length") or b"").decode("latin-1") or None,
                receive,
            )
        except HubError as exc:
            response: Response = error_response(exc)
        else:
            response = Response(body, media_type="application/json")
        await response(scope, receive, send)


def _etag_value(header: str) -> set[str]:
    return {t.strip().removeprefix("W/").strip('"') for t in header.split(",") if t.strip()}


@router.get("/policy")
async def policy(request: Request) -> Response:
    fleet, _ = await _host(request)
    wanted = _etag_value(request.headers.get("if-none-match", ""))
    if wanted:
        etag = await run_in_threadpool(bundle.current_etag, fleet.db)
        if etag is not None and etag in wanted:
            return Response(status_code=304, headers={"ETag": f'"{etag}"'})
    current = await run_in_threadpool(bundle.current, fleet.db)
    return JSONResponse(current.document, headers={"ETag": f'"{current.etag}"'})
