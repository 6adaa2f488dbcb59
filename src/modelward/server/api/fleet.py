"""The fleet console API (``/api/v1/fleet/``), the SIEM event stream and Prometheus metrics.

Roles: reading any fleet view (hosts, artifacts, violations, ..., events, metrics) needs the
``review`` right (reviewer or admin: the security team); changing anything (enrollment secrets,
revoking a host, pushing a policy bundle) needs ``admin``. The work is done by
:mod:`modelward.fleet`; lists are ``{"items": [...], "next": cursor}`` (see fleet/queries.py).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from modelward.errors import BadRequest, PolicyError, UsageError
from modelward.fleet import bundle, queries
from modelward.fleet.check import check_folder
from modelward.fleet.service import Fleet
from modelward.server.api.agent import fleet_of
from modelward.server.auth import Principal, require

router = APIRouter(tags=["fleet"])
API = "/api/v1/fleet"

Viewer = Annotated[Principal, Depends(require("review"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Limit = Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=100)]


class Paging:
    """``?limit=&cursor=`` of every list (a dependency, so each route states only its filters)."""

    def __init__(self, limit: Limit = 100, cursor: Cursor = None) -> None:
        self.limit, self.cursor = limit, cursor


Paged = Annotated[Paging, Depends()]


def _fleet(request: Request) -> Fleet:
    return fleet_of(request.app)


def _list(request: Request, query: Any, paging: Paging, **filters: Any) -> dict[str, Any]:
    """One page of a :mod:`~modelward.fleet.queries` list as ``{"items", "next"}``."""
    page: queries.Page = query(
        _fleet(request).db, **filters, limit=paging.limit, cursor=paging.cursor
    )
    return page.to_dict()


class SecretIn(BaseModel):
    team: str | None = Field(default=None, max_length=200)


class PolicyIn(BaseModel):
    files: dict[str, str]
    settings: dict[str, Any] = Field(default_factory=dict)
    waivers: list[Any] = Field(default_factory=list)


# ------------------------------------------------------------------------------------ hosts
@router.get(f"{API}/hosts")
def list_hosts(
    request: Request,
    _who: Viewer,
    paging: Paged,
    state: str | None = None,
    team: str | None = None,
    hostname: str | None = None,
) -> dict[str, Any]:
    window = _fleet(request).settings.offline_window
    page = _list(
        request, queries.hosts, paging, window=window, state=state, team=team, hostname=hostname
    )
    return {**page, "offline_after": window}


@router.get(f"{API}/hosts/{{host_id}}")
def get_host(request: Request, host_id: str, _who: Viewer) -> dict[str, Any]:
    fleet = _fleet(request)
    return queries.host(fleet.db, host_id, window=fleet.settings.offline_window)


@router.post(f"{API}/hosts/{{host_id}}/revoke")
def revoke_host(request: Request, host_id: str, who: Admin) -> dict[str, Any]:
    fleet = _fleet(request)
    fleet.revoke_host(host_id, who.name)
    return queries.host(fleet.db, host_id, window=fleet.settings.offline_window)


CYCLONEDX = "application/vnd.cyclonedx+json; version=1.6"


@router.get(f"{API}/hosts/{{host_id}}/cyclonedx")
def host_bom(request: Request, host_id: str, _who: Viewer) -> Response:
    """The host's CycloneDX 1.6 AI-BOM (models, runtimes, libraries)."""
    from modelward.fleet.export import host_bom_json

    return Response(host_bom_json(_fleet(request).db, host_id), media_type=CYCLONEDX)


@router.get(f"{API}/cyclonedx")
def fleet_bom(request: Request, _who: Viewer, team: str | None = None) -> Response:
    """The fleet's CycloneDX 1.6 AI-BOM: every (not revoked) host with its components."""
    from modelward.fleet.export import fleet_bom_json

    return Response(fleet_bom_json(_fleet(request).db, team), media_type=CYCLONEDX)


# ---------------------------------------------------------------------------------- secrets
@router.get(f"{API}/secrets")
def list_secrets(request: Request, _who: Admin) -> dict[str, Any]:
    return {"items": [s.to_dict() for s in _fleet(request).secrets()]}


@router.post(f"{API}/secrets", status_code=201)
def create_secret(request: Request, body: SecretIn, who: Admin) -> dict[str, Any]:
    return _fleet(request).create_secret(body.team, who.name).to_dict()


@router.post(f"{API}/secrets/{{secret_id}}/revoke")
def revoke_secret(request: Request, secret_id: int, who: Admin) -> dict[str, Any]:
    return _fleet(request).revoke_secret(secret_id, who.name).to_dict()


# ------------------------------------------------------------------------------------ views
@router.get(f"{API}/artifacts")
def list_artifacts(
    request: Request,
    _who: Viewer,
    paging: Paged,
    sha256: str | None = Query(default=None, max_length=71),
    unapproved: bool = False,
    host: str | None = None,
    format: str | None = None,
    license: str | None = None,
    source: str | None = None,
) -> dict[str, Any]:
    return _list(
        request,
        queries.artifacts,
        paging,
        sha256=sha256,
        unapproved=unapproved,
        host_id=host,
        format=format,
        license_id=license,
        source_kind=source,
    )


@router.get(f"{API}/violations")
def list_violations(
    request: Request,
    _who: Viewer,
    paging: Paged,
    rule: str | None = None,
    severity: str | None = None,
    host: str | None = None,
    action: str | None = None,
    waived: bool = False,
) -> dict[str, Any]:
    return _list(
        request,
        queries.violations,
        paging,
        rule=rule,
        severity=severity,
        host_id=host,
        action=action,
        include_waived=waived,
    )


@router.get(f"{API}/violations/summary")
def violation_summary(request: Request, _who: Viewer) -> dict[str, Any]:
    return {"items": queries.violation_summary(_fleet(request).db)}


@router.get(f"{API}/runtimes")
def list_runtimes(
    request: Request,
    _who: Viewer,
    paging: Paged,
    exposed: bool | None = None,
    vulnerable: bool | None = None,
    name: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    return _list(
        request,
        queries.runtimes,
        paging,
        exposed=exposed,
        vulnerable=vulnerable,
        name=name,
        host_id=host,
    )


@router.get(f"{API}/packages")
def list_packages(
    request: Request,
    _who: Viewer,
    paging: Paged,
    vulnerable: bool | None = None,
    name: str | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    return _list(request, queries.packages, paging, vulnerable=vulnerable, name=name, host_id=host)


@router.get(f"{API}/vulnerable")
def vulnerable(request: Request, _who: Viewer) -> dict[str, Any]:
    return {"items": queries.vulnerable_versions(_fleet(request).db)}


@router.get(f"{API}/licenses")
def licenses(request: Request, _who: Viewer) -> dict[str, Any]:
    return {"items": queries.licenses(_fleet(request).db)}


@router.get(f"{API}/trend")
def trend(
    request: Request, _who: Viewer, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> dict[str, Any]:
    return {"items": queries.trend(_fleet(request).db, days)}


# ----------------------------------------------------------------------------------- policy
@router.get(f"{API}/policy")
def current_policy(request: Request, _who: Viewer) -> dict[str, Any]:
    return bundle.current(_fleet(request).db).summary()


@router.post(f"{API}/policy", status_code=201)
def push_policy(request: Request, body: PolicyIn, who: Admin) -> dict[str, Any]:
    """A new bundle version from the posted folder content: refused (400, with ``file:line``) unless
    its Rego compiles and evaluates and its settings and waivers load, as on an agent."""
    import yaml

    fleet = _fleet(request)
    with tempfile.TemporaryDirectory(prefix="modelward-policy-") as tmp:
        root = Path(tmp)
        for name, text in body.files.items():
            path = Path(name)
            if (
                not name.endswith(".rego")
                or path.is_absolute()
                or ".." in path.parts
                or "\\" in name
                or "\0" in name
            ):
                raise BadRequest(f"policy file name {name!r}: relative .rego paths only")
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
        if body.settings:
            (root / bundle.SETTINGS_FILE).write_text(yaml.safe_dump(body.settings))
        if body.waivers:
            (root / bundle.WAIVERS_FILE).write_text(yaml.safe_dump({"waivers": body.waivers}))
        try:  # the Rego must compile as the agents will run it: a broken bundle stops here
            content = check_folder(root)
        except (UsageError, PolicyError) as exc:
            raise BadRequest(exc.diagnostics().replace(tmp + "/", "")) from None
    pushed = bundle.push(fleet.db, content, fleet.bundle_private_key, who.name)
    return {**pushed.summary(), "public_key": fleet.bundle_public_key}


# ----------------------------------------------------------------------------- SIEM, metrics
@router.get("/api/v1/events")
def events(
    request: Request,
    _who: Viewer,
    since: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=queries.MAX_LIMIT)] = 1000,
) -> Response:
    """JSON lines, one OCSF-style event each; ``X-Next-Cursor`` is the ``since`` of the next call."""
    items, cursor = queries.events(_fleet(request).db, since, limit)
    body = "".join(json.dumps(e, separators=(",", ":")) + "\n" for e in items)
    return Response(body, media_type="application/x-ndjson", headers={"X-Next-Cursor": cursor})


@router.get("/metrics")
def metrics(request: Request, _who: Viewer) -> Response:
    fleet = _fleet(request)
    text = queries.metrics(fleet.db, window=fleet.settings.offline_window)
    return Response(text, media_type="text/plain; version=0.0.4; charset=utf-8")
