"""Fleet console pages under ``/fleet``: overview and trend, hosts, artifacts, violations, runtimes.

The same stack as the hub pages (:mod:`modelward.server.web`): its Jinja2 environment (autoescaped:
host names, paths and messages come from agents and are hostile input), its page and error-page
helpers, the one stylesheet; no script. The trend chart is inline SVG laid out server-side
(:mod:`modelward.server.web_chart`).
Reading a page needs the ``review`` right, as the fleet API (``api/fleet.py``) does; other roles get
the 403 page, browsers without a session the log-in page.

Data comes from :mod:`modelward.fleet.queries` (cursor pagination, ``{"items", "next"}``) and
:mod:`modelward.server.web_fleet_data` (overview counts, filter choices, cross-links). Routes
are plain ``def``: FastAPI runs them, and so every query, in its thread pool, off the event loop.
Filters are read as text and checked here, so a bad one is the HTML error page (400), never a JSON
422.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from modelward.errors import BadRequest, HubError, NotFound
from modelward.fleet import queries
from modelward.fleet.report import SEVERITIES
from modelward.fleet.service import Fleet
from modelward.server import web_fleet_data as data
from modelward.server.api.agent import fleet_of
from modelward.server.auth import check
from modelward.server.web import _env, _error_page, _page
from modelward.server.web_chart import trend_chart
from modelward.store.db import utcnow

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50
"""Rows per page of a list (``?limit=`` changes it, up to ``queries.MAX_LIMIT``)."""
HOST_ROWS = 50
"""Artifacts and violations shown on a host page; the rest are a link to the filtered list."""
OVERVIEW_ROWS = 20
"""Exposed runtimes listed on the overview."""
TREND_DAYS = 30
_SHA256 = re.compile(r"(?:sha256:)?([0-9a-fA-F]{64})\Z")
_MAX_TEXT = 300


# ------------------------------------------------------------------------------------- helpers
def fleet_url(path: str, **params: Any) -> str:
    """``path`` with the non-empty ``params`` as its query string (values percent-encoded)."""
    kept = {k: v for k, v in params.items() if v is not None and v is not False and v != ""}
    return f"{path}?{urlencode(kept)}" if kept else path


def _when(value: str | None) -> str:
    """An ISO timestamp from the queries as ``YYYY-MM-DD HH:MM UTC``."""
    if not value:
        return ""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC)
    return parsed.strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: int) -> str:
    """``900`` as "15 minutes", ``7200`` as "2 hours"."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _counted(n: int, one: str, many: str | None = None) -> str:
    """``1 host``, ``2 hosts`` (``many``: an irregular plural)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


_env.filters["fleet_when"] = _when
_env.filters["counted"] = _counted
_env.filters["duration"] = _duration
_env.globals["fleet_url"] = fleet_url
_env.globals["FLEET_SEVERITIES"] = SEVERITIES


def _fleet(request: Request) -> Fleet:
    return fleet_of(request.app)


def _text(request: Request, name: str, limit: int = _MAX_TEXT) -> str:
    value = request.query_params.get(name, "").strip()
    if len(value) > limit:
        raise BadRequest(f"the {name} filter is longer than {limit} characters", field=name)
    if "\0" in value:
        raise BadRequest(f"the {name} filter contains a NUL character", field=name)
    return value


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise BadRequest(f"{name} must be a whole number from {low} to {high}", field=name)
    return int(raw)


def _flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise BadRequest(f"{name} must be 1 or 0 (true or false)", field=name)


def _sha256(value: str, name: str = "sha256") -> str:
    found = _SHA256.match(value)
    if found is None:
        raise BadRequest(
            f"{name} must be a SHA-256 digest: 64 hexadecimal characters (sha256: prefix allowed)",
            field=name,
        )
    return found.group(1).lower()


def _list_args(request: Request) -> tuple[int, str | None]:
    limit = _int(request, "limit", PAGE_SIZE, 1, queries.MAX_LIMIT)
    return limit, _text(request, "cursor", 100) or None


@dataclass(frozen=True, slots=True)
class Pager:
    """Links of a cursor-paginated list: the next page, and back to the first one."""

    next: str | None
    first: str | None
    shown: int


def _pager(path: str, page: queries.Page, filters: Mapping[str, Any], cursor: str | None) -> Pager:
    return Pager(
        next=fleet_url(path, **filters, cursor=page.next) if page.next else None,
        first=fleet_url(path, **filters) if cursor else None,
        shown=len(page.items),
    )


@router.get("/fleet")
def overview(request: Request) -> Response:
    """Counts, violations by severity and rule, the trend, exposed runtimes, vulnerable versions,
    licenses."""
    try:
        check(request, "review")
        days = _int(request, "days", TREND_DAYS, 1, 366)
        fleet = _fleet(request)
        db = fleet.db
        counts = data.overview_counts(db, fleet.settings.offline_window)
        summary = queries.violation_summary(db)
        trend = queries.trend(db, days)
        exposed = queries.runtimes(db, exposed=True, limit=OVERVIEW_ROWS)
        vulnerable = queries.vulnerable_versions(db)
        licenses = queries.licenses(db)
    except HubError as exc:
        return _error_page(request, exc)
    by_severity = {s: 0 for s in SEVERITIES}
    for row in summary:
        by_severity[row["severity"]] = by_severity.get(row["severity"], 0) + int(row["count"])
    return _page(
        request,
        "fleet_overview.html",
        counts=counts,
        by_severity=by_severity,
        open_violations=sum(by_severity.values()),
        summary=summary,
        trend=trend,
        chart=trend_chart(trend, days, utcnow().date()),
        days=days,
        exposed=exposed,
        vulnerable=vulnerable,
        licenses=licenses,
        offline_after=fleet.settings.offline_window,
        cap=data.UNAPPROVED_CAP,
    )


# --------------------------------------------------------------------------------------- hosts
@router.get("/fleet/hosts")
def hosts_page(request: Request) -> Response:
    """Enrolled hosts, filtered by state, team and a part of the host name."""
    try:
        check(request, "review")
        state = _text(request, "state")
        if state and state not in queries.HOST_STATES:
            raise BadRequest(
                f"state must be one of {', '.join(queries.HOST_STATES)}", field="state"
            )
        team = _text(request, "team", 200)
        search = _text(request, "q", 255)
        limit, cursor = _list_args(request)
        fleet = _fleet(request)
        page = queries.hosts(
            fleet.db,
            window=fleet.settings.offline_window,
            state=state or None,
            team=team or None,
            hostname=search or None,
            limit=limit,
            cursor=cursor,
        )
        teams = data.teams(fleet.db)
    except HubError as exc:
        return _error_page(request, exc)
    filters = {
        "state": state,
        "team": team,
        "q": search,
        "limit": limit if limit != PAGE_SIZE else None,
    }
    return _page(
        request,
        "fleet_hosts.html",
        hosts=page.items,
        pager=_pager("/fleet/hosts", page, filters, cursor),
        state=state,
        team=team,
        search=search,
        teams=teams,
        states=queries.HOST_STATES,
        filtered=bool(state or team or search),
        offline_after=fleet.settings.offline_window,
    )


def _agent_rows(status: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The agent's self-reported status as (label, text) rows, known fields first."""
    known = {
        "version": "Agent version",
        "collected_at": "Inventory collected",
        "rss_bytes": "Memory (peak RSS)",
        "cpu_percent": "CPU",
        "spool_dropped": "Reports dropped from the spool",
    }
    rows: list[tuple[str, str]] = []
    for key, label in known.items():
        value = status.get(key)
        if value is None:
            continue
        if key == "rss_bytes" and isinstance(value, int):
            text = str(_env.filters["filesizeformat"](value, binary=True))
        elif key == "cpu_percent" and isinstance(value, int | float):
            text = f"{value:g} %"
        elif key == "collected_at":
            text = _when(str(value))
        else:
            text = str(value)
        rows.append((label, text))
    for key, value in list(status.items())[:30]:
        if key not in known and isinstance(value, str | int | float | bool):
            rows.append((str(key)[:100], str(value)[:_MAX_TEXT]))
    return rows


@router.get("/fleet/hosts/{host_id}")
def host_page(request: Request, host_id: str) -> Response:
    """One host: agent status, runtimes, packages, its artifacts and open violations."""
    try:
        check(request, "review")
        fleet = _fleet(request)
        if len(host_id) > 64:
            raise NotFound(f"no host {host_id[:64]}…")
        doc = queries.host(fleet.db, host_id, window=fleet.settings.offline_window)
        arts = queries.artifacts(fleet.db, host_id=host_id, limit=HOST_ROWS)
        viols = queries.violations(fleet.db, host_id=host_id, limit=HOST_ROWS)
        violations = data.with_artifacts(fleet.db, viols.items)
    except HubError as exc:
        return _error_page(request, exc)
    return _page(
        request,
        "fleet_host.html",
        host=doc,
        agent=_agent_rows(doc.get("agent") or {}),
        artifacts=arts.items,
        more_artifacts=arts.next is not None,
        violations=violations,
        more_violations=viols.next is not None,
        open_violations=sum(int(n) for n in doc["violations"].values()),
        offline_after=fleet.settings.offline_window,
    )


# ----------------------------------------------------------------------------------- artifacts
@router.get("/fleet/artifacts")
def artifacts_page(request: Request) -> Response:
    """Model files across the fleet: by SHA-256, unapproved only, on one host, under a license."""
    try:
        check(request, "review")
        raw_sha = _text(request, "sha256", 71)
        sha = _sha256(raw_sha) if raw_sha else ""
        unapproved = _flag(request, "unapproved")
        host_id = _text(request, "host", 64)
        license_id = _text(request, "license", 100)
        limit, cursor = _list_args(request)
        db = _fleet(request).db
        hostname = data.host_name(db, host_id) if host_id else ""
        page = queries.artifacts(
            db,
            sha256=sha or None,
            unapproved=unapproved,
            host_id=host_id or None,
            license_id=license_id or None,
            limit=limit,
            cursor=cursor,
        )
    except HubError as exc:
        return _error_page(request, exc)
    filters = {
        "sha256": sha,
        "unapproved": "1" if unapproved else "",
        "host": host_id,
        "license": license_id,
        "limit": limit if limit != PAGE_SIZE else None,
    }
    return _page(
        request,
        "fleet_artifacts.html",
        artifacts=page.items,
        pager=_pager("/fleet/artifacts", page, filters, cursor),
        sha=sha,
        unapproved=unapproved,
        host_id=host_id,
        hostname=hostname,
        license_id=license_id,
        filtered=bool(sha or unapproved or host_id or license_id),
    )


@router.get("/fleet/artifacts/{digest}")
def artifact_page(request: Request, digest: str) -> Response:
    """One artifact by SHA-256: the hosts holding it (paths, formats, licenses) and its approval."""
    try:
        check(request, "review")
        sha = _sha256(digest[:80], "the artifact digest")
        limit, cursor = _list_args(request)
        db = _fleet(request).db
        page = queries.artifacts(db, sha256=sha, limit=limit, cursor=cursor)
        if not page.items and not cursor:
            raise NotFound(f"no host holds an artifact with SHA-256 {sha}")
        hub_files = data.hub_files(db, sha)
    except HubError as exc:
        return _error_page(request, exc)
    filters = {"limit": limit if limit != PAGE_SIZE else None}
    return _page(
        request,
        "fleet_artifact.html",
        sha=sha,
        holders=page.items,
        first=page.items[0] if page.items else None,
        hub_files=hub_files,
        pager=_pager(f"/fleet/artifacts/{sha}", page, filters, cursor),
    )


# ------------------------------------------------------------------------------------ runtimes
def _tristate(request: Request, name: str) -> bool | None:
    """An optional yes/no filter: absent or empty is None (either)."""
    return _flag(request, name) if request.query_params.get(name, "").strip() else None


@router.get("/fleet/runtimes")
def runtimes_page(request: Request) -> Response:
    """Inference runtimes across the fleet: exposed on the network, vulnerable, by name, by host."""
    try:
        check(request, "review")
        exposed = _tristate(request, "exposed")
        vulnerable = _tristate(request, "vulnerable")
        name = _text(request, "name", 100)
        host_id = _text(request, "host", 64)
        limit, cursor = _list_args(request)
        db = _fleet(request).db
        hostname = data.host_name(db, host_id) if host_id else ""
        page = queries.runtimes(
            db,
            exposed=exposed,
            vulnerable=vulnerable,
            name=name or None,
            host_id=host_id or None,
            limit=limit,
            cursor=cursor,
        )
    except HubError as exc:
        return _error_page(request, exc)
    yes_no = {None: "", True: "1", False: "0"}
    filters = {
        "exposed": yes_no[exposed],
        "vulnerable": yes_no[vulnerable],
        "name": name,
        "host": host_id,
        "limit": limit if limit != PAGE_SIZE else None,
    }
    return _page(
        request,
        "fleet_runtimes.html",
        runtimes=page.items,
        pager=_pager("/fleet/runtimes", page, filters, cursor),
        exposed=yes_no[exposed],
        vulnerable=yes_no[vulnerable],
        name=name,
        host_id=host_id,
        hostname=hostname,
        filtered=bool(exposed is not None or vulnerable is not None or name or host_id),
    )


# ---------------------------------------------------------------------------------- violations
@router.get("/fleet/violations")
def violations_page(request: Request) -> Response:
    """Open violations across the fleet, filtered by rule, severity (comma list) and host."""
    try:
        check(request, "review")
        rule = _text(request, "rule", 100)
        severity = _text(request, "severity", 100)
        host_id = _text(request, "host", 64)
        limit, cursor = _list_args(request)
        db = _fleet(request).db
        hostname = data.host_name(db, host_id) if host_id else ""
        page = queries.violations(
            db,
            rule=rule or None,
            severity=severity or None,
            host_id=host_id or None,
            limit=limit,
            cursor=cursor,
        )
        rows = data.with_artifacts(db, page.items)
    except HubError as exc:
        return _error_page(request, exc)
    filters = {
        "rule": rule,
        "severity": severity,
        "host": host_id,
        "limit": limit if limit != PAGE_SIZE else None,
    }
    return _page(
        request,
        "fleet_violations.html",
        violations=rows,
        pager=_pager("/fleet/violations", page, filters, cursor),
        rule=rule,
        severity=severity,
        host_id=host_id,
        hostname=hostname,
        filtered=bool(rule or severity or host_id),
    )
