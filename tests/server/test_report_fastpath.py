"""``POST /api/v1/agent/report`` is served by ``ReportFastPath`` (pure ASGI, past FastAPI's
routing); the FastAPI route behind it must answer exactly the same, request for request."""

from __future__ import annotations

import re
from typing import Any

from tests.fleet.conftest import artifact, report
from tests.server.conftest import auth
from tests.server.test_fleet_api import AGENT, _enroll


def _exchange(client: Any, key: dict[str, str], base: int) -> list[tuple[int, Any]]:
    """The same kinds of requests, good and bad; (status, body) of each answer."""
    url = f"{AGENT}/report"
    sent = [
        client.post(url, json=report(base + 1, artifacts=[artifact("/m/a")]), headers=key),
        client.post(url, json=report(base + 1, artifacts=[artifact("/m/a")]), headers=key),
        client.post(url, json=report(base + 3, base=base + 2), headers=key),
        client.post(url, content=b"{oops", headers=key),
        client.post(url, json=[1], headers=key),
        client.post(url, json=report(base + 2), headers=auth("mwh_forged")),
        client.post(url, json=report(base + 2), headers={}),
        client.post(url, content=b"x" * 10, headers={**key, "Content-Length": str(65 << 20)}),
        client.get(url, headers=key),
    ]
    return [(r.status_code, r.json()) for r in sent]


def _normalise(answers: list[tuple[int, Any]], base: int) -> list[tuple[int, Any]]:
    out = []
    for status, body in answers:
        if isinstance(body, dict) and isinstance(body.get("ack"), int):
            body = {**body, "ack": body["ack"] - base}
        if isinstance(body, dict) and "error" in body:
            detail = body["error"].get("detail", {})
            message = re.sub(r"\d+", "#", body["error"]["message"])  # the seqs differ
            body = {
                **body,
                "error": {**body["error"], "detail": sorted(detail), "message": message},
            }
            body.pop("errors", None)
        out.append((status, body))
    return out


def test_fast_path_and_route_answer_alike(client: Any, app: Any) -> None:
    from modelward.server.api.agent import ReportFastPath

    assert any(m.cls is ReportFastPath for m in app.user_middleware)
    key = auth(_enroll(client, app)["host_key"])
    fast = _exchange(client, key, 0)
    assert [s for s, _ in fast] == [200, 200, 409, 400, 400, 401, 401, 413, 405]
    assert fast[0][1] == {"ack": 1, "applied": True}
    assert fast[1][1] == {"ack": 1, "applied": False}

    app.user_middleware = [m for m in app.user_middleware if m.cls is not ReportFastPath]
    app.middleware_stack = None  # rebuilt without the fast path on the next request
    # the route continues the same host's chain, one seq further
    routed = _exchange(client, key, 1)
    assert _normalise(routed, 1) == _normalise(fast, 0)
