"""HTTP client (httpx) of the fleet console API, used by ``modelward fleet``.

It shares the hub client's plumbing: the same ``--server``/``--token`` defaults and environment
variables, and the server's JSON error envelope raised as the matching ``HubError``
(:func:`modelward.hub.client.error_from_response`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modelward.hub.client import HubUnreachable, ServerError, error_from_response

API = "/api/v1/fleet"


class FleetClient:
    """``with FleetClient(server, token) as fleet: fleet.hosts()``."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 120.0,
        transport: Any = None,
    ) -> None:
        from modelward.hub.client import open_session

        self.server, self.token, self._http = open_session(
            server, token, timeout, transport, "modelward-fleet-client"
        )

    def __enter__(self) -> FleetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.close()

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        url = f"{API}/{path}"
        try:
            response = self._http.request(method, url, **kw)
        except httpx.TransportError as exc:
            raise HubUnreachable(
                f"cannot reach the server at {self.server}{url}: {exc or type(exc).__name__} "
                "(is `modelward server` running there? set --server or MODELWARD_SERVER)"
            ) from None
        if response.status_code not in (200, 201):
            raise error_from_response(response, bool(self.token))
        try:
            return response.json()
        except ValueError:
            raise ServerError(f"the server answered {method} {url} with non-JSON content") from None

    def page(self, path: str, **params: Any) -> dict[str, Any]:
        query = {k: v for k, v in params.items() if v is not None and v is not False}
        doc: dict[str, Any] = self._json("GET", path, params=query)
        return doc

    def every(self, path: str, **params: Any) -> Iterator[dict[str, Any]]:
        """Every item of a paginated list, following ``next`` cursors."""
        cursor = None
        while True:
            doc = self.page(path, **params, cursor=cursor)
            yield from doc["items"]
            cursor = doc.get("next")
            if not cursor:
                return

    def create_secret(self, team: str | None) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("POST", "secrets", json={"team": team})
        return doc

    def revoke_secret(self, secret_id: int) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("POST", f"secrets/{int(secret_id)}/revoke")
        return doc

    def host(self, host_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("GET", f"hosts/{_segment(host_id)}")
        return doc

    def revoke_host(self, host_id: str) -> dict[str, Any]:
        doc: dict[str, Any] = self._json("POST", f"hosts/{_segment(host_id)}/revoke")
        return doc

    def push_policy(self, folder: Path) -> dict[str, Any]:
        """Validate ``folder`` here (errors name file and line), then push it as a new bundle."""
        from modelward.fleet.bundle import read_folder

        doc: dict[str, Any] = self._json("POST", "policy", json=read_folder(folder))
        return doc


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
