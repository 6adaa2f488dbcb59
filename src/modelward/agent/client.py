"""HTTP client (httpx) of the agent API ``/api/v1/agent/``: enroll, report, policy.

TLS certificates are verified by default (``ca_bundle`` adds a private CA). Error answers carry the
server's JSON envelope ``{"error": {"status", "code", "message", "detail"}}`` and are raised as
:class:`modelward.errors.HubError` subclasses by ``code``; a server that cannot be reached (or
answers 5xx/429) is :class:`ServerUnavailable`, which the runner treats as "spool and retry later".
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    import httpx

API = "/api/v1/agent"


class ServerUnavailable(Error):
    """The server could not be reached or is failing (connection, TLS, timeout, 5xx, 429)."""


class HostKeyRevoked(Unauthorized):
    """The server revoked this host's key (``host_key_revoked``)."""

    code = "host_key_revoked"


class ResyncRequired(Conflict):
    """The server wants a full report: the delta's base is not its last acknowledged report."""

    code = "resync_required"


class ServerFailed(HubError):
    """The server answered an error this client does not know."""

    status = 500
    code = "server_error"


_BY_CODE: dict[str, type[HubError]] = {
    "unauthorized": Unauthorized,
    "host_key_revoked": HostKeyRevoked,
    "resync_required": ResyncRequired,
    "forbidden": Forbidden,
    "conflict": Conflict,
    "bad_request": BadRequest,
    "too_large": TooLarge,
    "not_found": NotFound,
}
_BY_STATUS: dict[int, type[HubError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: BadRequest,
}


def error_from_response(response: httpx.Response) -> HubError:
    """The :class:`HubError` an error answer stands for (its envelope's code, else its status)."""
    status = response.status_code
    code, message, detail = "", "", {}
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
        text = response.text.strip()[:300]
        message = f"HTTP {status} from {response.request.method} {response.request.url}" + (
            f": {text}" if text else ""
        )
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, ServerFailed)
    exc = cls(message)
    exc.detail = {**detail, "http_status": status, "code": code or cls.code}
    return exc


@dataclass(frozen=True, slots=True)
class Enrollment:
    host_id: str
    host_key: str
    report_interval: int
    bundle_public_key: str | None


@dataclass(frozen=True, slots=True)
class Ack:
    seq: int
    applied: bool


class AgentClient:
    """One connection pool to one server: ``with AgentClient(url, key) as c: c.report(doc)``."""

    def __init__(
        self,
        server: str,
        host_key: str | None = None,
        *,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        import httpx

        self.server = server.rstrip("/")
        self.host_key = host_key
        try:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=ca_bundle) if ca_bundle else True
            )
        except (OSError, ssl.SSLError) as exc:
            raise Error(f"--ca-bundle {ca_bundle}: cannot load the CA bundle: {exc}") from None
        self._http = httpx.Client(
            base_url=self.server,
            verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            headers={"User-Agent": _user_agent()},
            trust_env=True,
        )

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ routes
    def enroll(self, secret: str, host: dict[str, Any]) -> Enrollment:
        doc = self._json("POST", "/enroll", json={"secret": secret, "host": host}, auth=False)
        key = doc.get("host_key")
        host_id = doc.get("host_id")
        if not isinstance(key, str) or not isinstance(host_id, str):
            raise ServerFailed(f"{self.server}: the enroll answer has no host_id/host_key")
        pem = doc.get("bundle_public_key")
        interval = doc.get("report_interval")
        return Enrollment(
            host_id=host_id,
            host_key=key,
            report_interval=interval if isinstance(interval, int) and interval > 0 else 3600,
            bundle_public_key=pem if isinstance(pem, str) else None,
        )

    def report(self, doc: dict[str, Any]) -> Ack:
        answer = self._json("POST", "/report", json=doc)
        seq = answer.get("ack")
        if not isinstance(seq, int):
            raise ServerFailed(f"{self.server}: the report answer has no 'ack'")
        return Ack(seq=seq, applied=bool(answer.get("applied", True)))

    def policy(self, etag: str | None) -> dict[str, Any] | None:
        """The policy bundle, or ``None`` when it has not changed since ``etag`` (304)."""
        headers = {"If-None-Match": etag} if etag else {}
        response = self._send("GET", "/policy", headers=headers)
        if response.status_code == 304:
            return None
        doc = _json_body(response, self.server)
        if not doc.get("etag") and response.headers.get("etag"):
            doc["etag"] = response.headers["etag"]
        return doc

    # ------------------------------------------------------------------ plumbing
    def _json(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        return _json_body(self._send(method, path, **kw), self.server)

    def _send(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        import httpx

        hdrs = dict(headers or {})
        if auth:
            if not self.host_key:
                raise Unauthorized("this agent is not enrolled: run `modelward agent enroll`")
            hdrs["Authorization"] = f"Bearer {self.host_key}"
        try:
            response = self._http.request(method, API + path, headers=hdrs, json=json)
        except httpx.HTTPError as exc:
            raise ServerUnavailable(f"{self.server}: cannot reach the server: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(
                f"{self.server}: the server answered {response.status_code}; will retry later"
            )
        if response.status_code >= 400:
            raise error_from_response(response)
        return response


def _json_body(response: httpx.Response, server: str) -> dict[str, Any]:
    try:
        doc = response.json()
    except ValueError:
        raise ServerFailed(f"{server}: the answer is not JSON") from None
    if not isinstance(doc, dict):
        raise ServerFailed(f"{server}: the answer is not a JSON object")
    return doc


def _user_agent() -> str:
    from modelward import __version__

    return f"modelward-agent/{__version__}"
