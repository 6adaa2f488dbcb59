"""Fleet console pages (/fleet) through the in-process client, on SQLite and PostgreSQL.

The fleet is made the way agents make it: enrollment secrets and revocation through the console
API, enrollment and reports through the agent API. Reports of past days run with the fleet
service's clock moved back, which is how the trend gets more than one day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest

from modelward.server.auth import create_token
from tests.fleet.conftest import artifact, decision, host_info, report
from tests.server.conftest import ADMIN_TOKEN, auth, make_model_dir, publish
from tests.server.test_web import site_app

HTML = {"Accept": "text/html,application/xhtml+xml"}
AGENT = "/api/v1/agent"
FLEET = "/api/v1/fleet"
HOSTILE = '<script>alert("h")</script>'
SHARED = "ab" * 32
ROLES = ("admin", "reviewer", "publisher", "reader")
PAGES = ["/fleet", "/fleet/hosts", "/fleet/artifacts", "/fleet/violations", "/fleet/runtimes"]


@contextmanager
def days_ago(days: int) -> Iterator[None]:
    """The fleet service's clock moved ``days`` back (reports of past days, for the trend)."""
    from modelward.fleet import service

    real = service.utcnow
    with mock.patch.object(service, "utcnow", lambda: real() - dt.timedelta(days=days)):
        yield


def _enroll(client: Any, secret: str, n: int, **info: Any) -> dict[str, Any]:
    r = client.post(f"{AGENT}/enroll", json={"secret": secret, "host": host_info(n, **info)})
    assert r.status_code == 201, r.text
    doc: dict[str, Any] = r.json()
    return doc


def _report(client: Any, host: dict[str, Any], seq: int, **body: Any) -> None:
    r = client.post(f"{AGENT}/report", json=report(seq, **body), headers=auth(host["host_key"]))
    assert r.status_code == 200 and r.json()["applied"], r.text


def _runtime(n: int) -> dict[str, Any]:
    return {
        "name": "ollama",
        "version": "0.1.0",
        "running": True,
        "listen": [{"address": "0.0.0.0", "port": 11434, "exposed": n % 2 == 0}],
        "findings": [{"rule": "runtime.vulnerable-version", "severity": "high"}] if n == 0 else [],
    }


def seed_fleet(client: Any, hub: Any, root: Path, admin: str = ADMIN_TOKEN) -> dict[str, Any]:
    """Five hosts through the real APIs (``client``: a TestClient or an httpx.Client on a live
    server). host-0..host-3 in team red, the hostile-named one in blue; host-0 holds a file of an
    approved hub revision; host-1 reported on three days (the trend); host-3 reported only three
    days ago (offline); host-2 is revoked."""
    secrets = {}
    for team in ("red", "blue"):
        r = client.post(f"{FLEET}/secrets", json={"team": team}, headers=auth(admin))
        assert r.status_code == 201, r.text
        secrets[team] = r.json()["secret"]
    rev = publish(hub, "acme/tiny", make_model_dir(root, "fleet-tiny"))
    approved = next(f.sha256 for f in rev.files if f.path == "model.safetensors")
    hosts = [_enroll(client, secrets["red"], n) for n in range(4)]
    hosts.append(_enroll(client, secrets["blue"], 4, hostname=HOSTILE))

    def full(n: int, seq: int, decisions: list[dict[str, Any]] | None = None) -> None:
        arts = [
            artifact(f"/m/{n}/shared.safetensors", SHARED, license={"id": "apache-2.0"}),
            artifact(f"/m/{n}/own.gguf", license={"id": "llama3.1"}, format="gguf"),
        ]
        if n == 0:
            arts.append(artifact("/m/0/approved.safetensors", approved))
        sev = "critical" if n == 0 else "high"
        _report(
            client,
            hosts[n],
            seq,
            artifacts=arts,
            decisions=decisions
            if decisions is not None
            else [decision("unapproved-model", f"/m/{n}/own.gguf", sev)],
            runtimes=[_runtime(n)],
            packages=[{"name": "vllm", "version": "0.1", "environment": "/venv", "findings": []}],
        )

    with days_ago(3):
        full(3, 1)
    with days_ago(2):
        full(1, 1, [decision("unapproved-model", "/m/1/own.gguf", "medium")])
    with days_ago(1):
        full(
            1,
            2,
            [
                decision("unapproved-model", "/m/1/own.gguf", "medium"),
                decision("license-not-allowed", "/m/1/shared.safetensors", "low", "warn"),
            ],
        )
    full(
        1,
        3,
        [
            decision("unapproved-model", "/m/1/own.gguf"),
            decision("license-not-allowed", "/m/1/shared.safetensors", "low", "warn"),
        ],
    )
    for n in (0, 2, 4):
        full(n, 1)
    r = client.post(f"{FLEET}/hosts/{hosts[2]['host_id']}/revoke", headers=auth(admin))
    assert r.status_code == 200, r.text
    return {"hosts": hosts, "ids": [h["host_id"] for h in hosts], "approved": approved}


@dataclass
class Site:
    app: Any
    seeded: dict[str, Any]
    tokens: dict[str, str]
    settings: Any


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    from fastapi.testclient import TestClient

    root = tmp_path_factory.mktemp("fleet-web")
    with site_app(request.param, root) as (app, settings):
        with TestClient(app) as c:
            seeded = seed_fleet(c, app.state.hub, root)
        tokens = {r: create_token(app.state.db, f"fw-{r}", r, "tests") for r in ROLES}
        yield Site(app, seeded, tokens, settings)


@pytest.fixture
def client(site: Site) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(site.app) as c:
        yield c


def get(client: Any, url: str, token: str = ADMIN_TOKEN, status: int = 200) -> str:
    r = client.get(url, headers=HTML | auth(token), follow_redirects=False)
    assert r.status_code == status, (url, r.status_code, r.text[:2000])
    text: str = r.text
    return text


def main(html: str) -> str:
    return html.split("<main", 1)[1].split("</main>", 1)[0]


class Links(HTMLParser):
    """Every href of a page (a, link) and the SVG points (circle.point) of the trend chart."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.points: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag in ("a", "link") and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "circle" and "point" in a.get("class", "").split():
            self.points.append(a)


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


def ids(html: str) -> set[str]:
    return set(re.findall(r'href="/fleet/hosts/([0-9a-f]{32})"', main(html)))


# ------------------------------------------------------------------------------- permissions
@pytest.mark.parametrize("page", [*PAGES, "/fleet/artifacts/" + SHARED])
def test_without_a_token_browsers_go_to_login_and_apis_get_the_envelope(
    client: Any, site: Site, page: str
) -> None:
    r = client.get(page, headers=HTML, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/login?next=%2Ffleet")
    r = client.get(page)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("role", ROLES)
def test_only_roles_that_read_the_fleet_api_see_the_pages_and_the_nav_entry(
    client: Any, site: Site, role: str
) -> None:
    token = site.tokens[role]
    allowed = role in ("admin", "reviewer")
    # the same rule as the fleet API
    api = client.get(f"{FLEET}/hosts", headers=auth(token))
    assert api.status_code == (200 if allowed else 403)
    nav = get(client, "/models", token).split("</nav>", 1)[0]
    assert ('href="/fleet"' in nav) is allowed
    host = site.seeded["ids"][0]
    for page in [*PAGES, f"/fleet/hosts/{host}", f"/fleet/artifacts/{SHARED}"]:
        html = get(client, page, token, 200 if allowed else 403)
        if not allowed:
            assert "may not review" in html and "Not allowed" in html
            assert "host-0" not in html
            r = client.get(page, headers=auth(token))
            assert r.json()["error"]["code"] == "forbidden"


def test_the_session_cookie_opens_the_pages(client: Any, site: Site) -> None:
    from tests.server.test_web import login

    assert login(client, site.tokens["reviewer"], "/fleet").headers["location"] == "/fleet"
    r = client.get("/fleet", headers=HTML)
    assert r.status_code == 200 and "fw-reviewer" in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    # the host's CycloneDX link answers with the cookie too
    r = client.get(f"{FLEET}/hosts/{site.seeded['ids'][0]}/cyclonedx")
    assert r.status_code == 200 and r.json()["bomFormat"] == "CycloneDX"


# ------------------------------------------------------------------------------------ overview
def test_overview_counts_tables_and_trend_chart(client: Any, site: Site) -> None:
    html = get(client, "/fleet")
    body = main(html)
    nav = html.split("</nav>", 1)[0]
    assert 'href="/fleet" aria-current="page">Fleet' in nav
    assert '<a href="/fleet" aria-current="page">Overview</a>' in body
    # hosts: 3 online (0, 1, hostile), 1 offline (3), 1 revoked (2)
    assert re.search(r'state=online">3 online<', body)
    assert re.search(r'state=offline">1 offline<', body)
    assert re.search(r'state=revoked">1 revoked<', body)
    # artifacts: 2 per host + the approved one on host-0 = 11, unapproved: 10
    assert '<p class="big">11</p>' in body
    assert 'unapproved=1">10 unapproved<' in body
    # open violations: host-0 critical, host-1 high + low, host-2 high (revoked but kept),
    # host-3 high, hostile high
    assert re.search(r'severity=critical">1 critical<', body)
    assert re.search(r'severity=high">4 high<', body)
    assert re.search(r'severity=low">1 low<', body)
    assert '<p class="big">6</p>' in body
    assert "license-not-allowed" in body and "unapproved-model" in body
    assert 'href="/fleet/violations?rule=unapproved-model&amp;severity=high"' in body
    # exposed runtimes (even hosts: 0, 2, 4), vulnerable versions, licenses
    exposed = body.split('id="h-exposed"', 1)[1].split("</section>", 1)[0]
    assert exposed.count("<tr>") == 1 + 3 and "0.0.0.0:11434" in exposed
    vulnerable = body.split('id="h-vulnerable"', 1)[1].split("</section>", 1)[0]
    assert "ollama" in vulnerable and "0.1.0" in vulnerable
    licenses = body.split('id="h-licenses"', 1)[1].split("</section>", 1)[0]
    assert 'href="/fleet/artifacts?license=apache-2.0"' in licenses and "llama3.1" in licenses

    # the trend: one point per day with reports (3, 2 and 1 days ago, today), oldest first
    points = parse(html).points
    today = dt.datetime.now(dt.UTC).date()
    assert [p["data-day"] for p in points] == [
        (today - dt.timedelta(days=d)).isoformat() for d in (3, 2, 1, 0)
    ]
    # 3 days ago: host-3's high; 2 days ago: host-1's medium; yesterday: host-1's medium + low;
    # today: host-0 critical, host-1 high + low, host-2 and the hostile host high
    assert [int(p["data-total"]) for p in points] == [1, 1, 2, 5]
    xs = [float(p["cx"]) for p in points]
    ys = [float(p["cy"]) for p in points]
    assert xs == sorted(xs) and len(set(xs)) == 4
    assert ys[3] < ys[2] < ys[0] == ys[1]  # more violations: higher up
    assert 'role="img"' in body and '<title id="trend-title">' in body
    assert "4 of the last 30 days have reports" in body
    assert re.search(r'<polyline class="line" fill="none" points="[0-9., ]+"', body)

    week = main(get(client, "/fleet?days=2"))
    assert len(parse(week).points) == 2
    assert '<a href="/fleet?days=7">7 days</a>' in week


def test_the_unapproved_count_is_bounded(
    client: Any, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelward.server import web_fleet_data

    monkeypatch.setattr(web_fleet_data, "UNAPPROVED_CAP", 3)
    assert 'unapproved=1">3+ unapproved<' in main(get(client, "/fleet"))
    monkeypatch.setattr(web_fleet_data, "UNAPPROVED_CAP", 10)
    assert 'unapproved=1">10 unapproved<' in main(get(client, "/fleet"))


def test_the_offline_window_comes_from_the_fleet_settings(site: Site) -> None:
    """With fleet_offline_after at four days, host-3 (last report three days ago) is online."""
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app

    app = create_app(site.settings.model_copy(update={"fleet_offline_after": 4 * 86_400}))
    try:
        with TestClient(app) as c:
            body = main(get(c, "/fleet"))
            assert "has not reported for 4 days" in body
            assert re.search(r'state=online">4 online<', body)
            assert re.search(r'state=offline">0 offline<', body)
            three = site.seeded["ids"][3]
            assert three in ids(get(c, "/fleet/hosts?state=online"))
            assert "has not reported" not in main(get(c, f"/fleet/hosts/{three}"))
    finally:
        app.state.db.dispose()


def test_pages_run_off_the_event_loop() -> None:
    """Plain ``def`` routes: FastAPI runs them, and their queries, in its thread pool."""
    import inspect

    from modelward.server import web_fleet

    endpoints = [r.endpoint for r in web_fleet.router.routes]  # type: ignore[attr-defined]
    assert len(endpoints) == 7
    assert not any(inspect.iscoroutinefunction(e) for e in endpoints)


def test_durations() -> None:
    from modelward.server.web_fleet import _duration

    assert [_duration(s) for s in (1, 45, 60, 900, 3600, 7200, 86400, 90)] == [
        "1 second",
        "45 seconds",
        "1 minute",
        "15 minutes",
        "1 hour",
        "2 hours",
        "1 day",
        "90 seconds",
    ]


def test_trend_chart_layout() -> None:
    from modelward.server.web_chart import trend_chart

    today = dt.date(2026, 11, 26)
    items = [
        {"day": "2026-11-20", "total": 3, "by_severity": {"high": 3}},
        {"day": "2026-11-26", "total": 7, "by_severity": {"critical": 2, "high": 5}},
    ]
    chart = trend_chart(items, 30, today)
    first, last = chart.points
    assert last.x == chart.right and first.x < last.x
    assert chart.y_ticks == [(chart.bottom, "0"), (102.0, "5"), (chart.top, "10")]
    assert last.label == "2026-11-26: 7 open violations (2 critical, 5 high)"
    assert chart.line == f"{first.x},{first.y} {last.x},{last.y}"
    assert chart.area.startswith(f"M{first.x},{chart.bottom} ") and chart.area.endswith("Z")
    one = trend_chart(items[1:], 1, today)
    assert one.points[0].x == (one.left + one.right) / 2
    empty = trend_chart([], 30, today)
    assert empty.points == [] and empty.line == "" and "No reports" in empty.summary


# ---------------------------------------------------------------------------------- hosts
def test_hosts_list_filters_and_pagination(client: Any, site: Site) -> None:
    every = site.seeded["ids"]
    html = get(client, "/fleet/hosts")
    assert ids(html) == set(every)
    assert 'aria-current="page">Hosts</a>' in html
    assert ids(get(client, "/fleet/hosts?state=online")) == {every[0], every[1], every[4]}
    assert ids(get(client, "/fleet/hosts?state=offline")) == {every[3]}
    assert ids(get(client, "/fleet/hosts?state=revoked")) == {every[2]}
    assert ids(get(client, "/fleet/hosts?team=blue")) == {every[4]}
    assert ids(get(client, "/fleet/hosts?q=host-")) == set(every[:4])
    assert ids(get(client, "/fleet/hosts?team=red&state=online&q=host-1")) == {every[1]}
    empty = get(client, "/fleet/hosts?team=nobody")
    assert ids(empty) == set() and "No host matches these filters" in empty
    # the filter form keeps its values
    html = get(client, "/fleet/hosts?state=offline&q=host")
    assert '<option value="offline" selected>' in html and 'value="host"' in html

    # pages of two, following the Next link, keep the filters and never repeat a host
    seen: list[str] = []
    url: str | None = "/fleet/hosts?limit=2&team=red"
    pages = 0
    while url:
        html = get(client, url)
        got = ids(html)
        assert len(got) <= 2 and not got & set(seen)
        seen += got
        pages += 1
        nexts = [h for h in parse(main(html)).hrefs if "cursor=" in h]
        url = nexts[0].replace("&amp;", "&") if nexts else None
        if url:
            q = parse_qs(urlsplit(url).query)
            assert q["team"] == ["red"] and q["limit"] == ["2"]
        if pages > 1:
            assert 'href="/fleet/hosts?team=red&amp;limit=2">First page</a>' in html
    assert sorted(seen) == sorted(every[:4]) and pages == 2


def test_host_page(client: Any, site: Site) -> None:
    h0, h1, h2 = site.seeded["ids"][:3]
    html = get(client, f"/fleet/hosts/{h0}")
    body = main(html)
    assert "<h1>host-0</h1>" in body and "online" in body
    assert 'aria-current="true">Fleet' in html.split("</nav>", 1)[0]
    assert f'href="/api/v1/fleet/hosts/{h0}/cyclonedx"' in body
    # artifacts (3) linking to their artifact pages, the approved one marked so
    assert f'href="/fleet/artifacts/{SHARED}"' in body
    assert f'href="/fleet/artifacts/{site.seeded["approved"]}"' in body
    assert body.count('<span class="ok">approved</span>') == 1
    assert "<caption>3 model files</caption>" in body
    assert body.count('<span class="warn">unapproved</span>') == 2
    # its violation, linked to the artifact it is about (the report gave no digest)
    viol = body.split('id="h-violations"', 1)[1].split("</section>", 1)[0]
    assert "unapproved-model" in viol and "sev-critical" in viol
    assert re.search(r'href="/fleet/artifacts/[0-9a-f]{64}"><code>/m/0/own.gguf', viol)
    # runtimes, packages, agent status
    assert "ollama" in body and "exposed" in body and "vllm" in body
    assert "Agent status" in body and "Memory (peak RSS)" in body and "0.5 %" in body
    assert "<dd>1 Byte</dd>" in body  # rss_bytes
    assert f'href="/fleet/violations?host={h0}"' in body
    # host-1: two violations; host-2: revoked
    body1 = main(get(client, f"/fleet/hosts/{h1}"))
    assert "license-not-allowed" in body1 and "sev-low" in body1
    assert "was revoked" in main(get(client, f"/fleet/hosts/{h2}"))
    offline = main(get(client, f"/fleet/hosts/{site.seeded['ids'][3]}"))
    assert "has not reported for more than 15 minutes" in offline


# ------------------------------------------------------------------------------- artifacts
def test_artifacts_filters_pagination_and_the_artifact_page(client: Any, site: Site) -> None:
    every = site.seeded["ids"]
    html = main(get(client, "/fleet/artifacts"))
    assert html.count("<tr>") == 1 + 11
    shared = main(get(client, f"/fleet/artifacts?sha256=sha256:{SHARED.upper()}"))
    assert shared.count("<tr>") == 1 + 5 and ids(f"<main>{shared}</main>") == set(every)
    unapproved = main(get(client, "/fleet/artifacts?unapproved=1"))
    assert unapproved.count("<tr>") == 1 + 10 and "approved.safetensors" not in unapproved
    assert 'name="unapproved" value="1" checked' in unapproved
    mine = main(get(client, f"/fleet/artifacts?host={every[0]}"))
    assert mine.count("<tr>") == 1 + 3 and "On host" in mine
    assert main(get(client, "/fleet/artifacts?license=llama3.1")).count("<tr>") == 1 + 5
    none = main(get(client, "/fleet/artifacts?license=nope"))
    assert "No artifact matches" in none
    # pagination: 11 artifacts in pages of 4
    paths: list[str] = []
    url: str | None = "/fleet/artifacts?limit=4"
    while url:
        page = main(get(client, url))
        paths += re.findall(r'<th scope="row"><code>([^<]+)</code>', page)
        nexts = [h for h in parse(page).hrefs if "cursor=" in h]
        url = nexts[0].replace("&amp;", "&") if nexts else None
    assert len(paths) == len(set(paths)) == 11

    # the artifact page: every host holding it, and the hub revision that approves it
    page = main(get(client, f"/fleet/artifacts/{SHARED}"))
    assert ids(f"<main>{page}</main>") == set(every) and "Unapproved" in page
    approved = main(get(client, f"/fleet/artifacts/{site.seeded['approved']}"))
    assert re.search(r'href="/models/acme/tiny\?rev=[0-9a-f]{40}">acme/tiny</a>', approved)
    assert ids(f"<main>{approved}</main>") == {every[0]}
    two = main(get(client, f"/fleet/artifacts/{SHARED}?limit=2"))
    assert len(ids(f"<main>{two}</main>")) == 2 and "cursor=" in two


# ------------------------------------------------------------------------------ violations
def test_violations_filters_and_pagination(client: Any, site: Site) -> None:
    every = site.seeded["ids"]

    def rows(url: str) -> int:
        return main(get(client, url)).count("<tr>") - 1

    assert rows("/fleet/violations") == 6
    assert rows("/fleet/violations?severity=high") == 4
    assert rows("/fleet/violations?severity=critical,low") == 2
    assert '<p class="sub">1 violation</p>' in get(client, "/fleet/violations?severity=critical")
    assert rows("/fleet/violations?rule=license-not-allowed") == 1
    assert rows(f"/fleet/violations?host={every[1]}") == 2
    assert rows(f"/fleet/violations?host={every[1]}&severity=low") == 1
    html = main(get(client, "/fleet/violations?rule=nope"))
    assert "No open violation matches" in html
    html = main(get(client, "/fleet/violations?severity=high&limit=3"))
    assert html.count("<tr>") == 1 + 3
    nxt = next(h for h in parse(html).hrefs if "cursor=" in h).replace("&amp;", "&")
    assert parse_qs(urlsplit(nxt).query)["severity"] == ["high"]
    assert main(get(client, nxt)).count("<tr>") == 1 + 1
    # each row links to its host, its rule and the artifact it is about
    html = main(get(client, "/fleet/violations"))
    assert ids(f"<main>{html}</main>") == set(every)
    assert 'href="/fleet/violations?rule=license-not-allowed"' in html
    assert f'href="/fleet/artifacts/{SHARED}"><code>/m/1/shared.safetensors' in html


# -------------------------------------------------------------------------------- runtimes
def test_runtimes_filters_and_pagination(client: Any, site: Site) -> None:
    every = site.seeded["ids"]

    def hosts(url: str) -> set[str]:
        return ids(get(client, url))

    assert hosts("/fleet/runtimes") == set(every)
    assert hosts("/fleet/runtimes?exposed=1") == {every[0], every[2], every[4]}
    assert hosts("/fleet/runtimes?exposed=0") == {every[1], every[3]}
    assert hosts("/fleet/runtimes?vulnerable=1&name=ollama") == {every[0]}
    assert hosts(f"/fleet/runtimes?host={every[3]}") == {every[3]}
    html = get(client, "/fleet/runtimes?name=nope")
    assert "No runtime matches these filters" in html
    html = get(client, "/fleet/runtimes?exposed=1&limit=2")
    assert len(ids(html)) == 2
    nxt = next(h for h in parse(main(html)).hrefs if "cursor=" in h)
    assert parse_qs(urlsplit(nxt).query)["exposed"] == ["1"]
    assert len(ids(get(client, nxt))) == 1
    # the overview and the host page lead here
    overview = main(get(client, "/fleet"))
    assert 'href="/fleet/runtimes?exposed=1"' in overview
    assert 'href="/fleet/runtimes?name=ollama&amp;vulnerable=1"' in overview
    assert f'href="/fleet/runtimes?host={every[0]}"' in main(
        get(client, f"/fleet/hosts/{every[0]}")
    )


# -------------------------------------------------------------------- errors, escaping, links
BAD = [
    ("/fleet?days=0", 400, "days must be"),
    ("/fleet?days=x", 400, "days must be"),
    ("/fleet/hosts?state=sleeping", 400, "state must be one of"),
    ("/fleet/hosts?limit=0", 400, "limit must be"),
    ("/fleet/hosts?q=" + "x" * 300, 400, "longer than"),
    ("/fleet/artifacts?sha256=nothex", 400, "SHA-256"),
    ("/fleet/violations?rule=a%00b", 400, "NUL character"),
    ("/fleet/artifacts?unapproved=maybe", 400, "unapproved must be"),
    ("/fleet/artifacts?cursor=x", 400, "cursor"),
    ("/fleet/artifacts?host=nohost", 404, "no host nohost"),
    ("/fleet/artifacts/" + "0" * 64, 404, "no host holds"),
    ("/fleet/artifacts/xyz", 400, "SHA-256"),
    ("/fleet/violations?severity=huge", 400, "severity must be"),
    ("/fleet/violations?host=nohost", 404, "no host nohost"),
    ("/fleet/violations?cursor=x", 400, "cursor"),
    ("/fleet/hosts/nohost", 404, "no host nohost"),
    ("/fleet/runtimes?exposed=maybe", 400, "exposed must be"),
    ("/fleet/runtimes?host=nohost", 404, "no host nohost"),
    ("/fleet/runtimes?cursor=x", 400, "cursor"),
]


@pytest.mark.parametrize(("url", "status", "message"), BAD)
def test_bad_filters_get_the_error_page(
    client: Any, site: Site, url: str, status: int, message: str
) -> None:
    html = get(client, url, status=status)
    assert message in html and 'role="alert"' in html
    assert "Back to the catalog" in html  # the hub's error page
    r = client.get(url, headers=auth())
    assert r.status_code == status and r.json()["error"]["message"]


def test_hostile_host_names_are_escaped(client: Any, site: Site) -> None:
    hostile = site.seeded["ids"][4]
    for url in (
        "/fleet/hosts",
        f"/fleet/hosts/{hostile}",
        "/fleet/violations",
        f"/fleet/artifacts/{SHARED}",
        "/fleet",
        "/fleet/hosts?q=" + HOSTILE,
    ):
        html = get(client, url)
        assert "<script>alert" not in html, url
    html = get(client, f"/fleet/hosts/{hostile}")
    assert "&lt;script&gt;alert(&#34;h&#34;)&lt;/script&gt;" in html


def test_every_link_on_every_page_resolves(client: Any, site: Site) -> None:
    """Crawl from the overview: every link of every fleet page answers 200."""
    seen: set[str] = set()
    todo = ["http://testserver/fleet"]
    checked = 0
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        r = client.get(url, headers=HTML | auth(), follow_redirects=False)
        assert r.status_code == 200, (url, r.status_code)
        checked += 1
        path = urlsplit(url).path
        if not path.startswith("/fleet") or "html" not in r.headers["content-type"]:
            continue
        for href in parse(r.text).hrefs:
            target = urljoin(url, href)
            if urlsplit(target).path in ("/logout",) or target.startswith("data:"):
                continue
            assert target.startswith("http://testserver/"), target
            if target not in seen and len(seen) < 400:
                todo.append(target)
    assert checked > 30
    assert any("/cyclonedx" in u for u in seen) and any("/models/acme/tiny" in u for u in seen)


# ---------------------------------------------------------------------------------- empty fleet
def test_every_page_renders_on_an_empty_fleet(app: Any) -> None:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        html = get(c, "/fleet")
        assert "No hosts enrolled yet" in html and "No reports in the last 30 days" in html
        assert "<svg" not in html and "No open violations." in html
        assert "No hosts enrolled yet" in get(c, "/fleet/hosts")
        assert "No model files reported yet" in get(c, "/fleet/artifacts")
        assert "No open violations across the fleet" in get(c, "/fleet/violations")
        assert "No inference runtime reported yet" in get(c, "/fleet/runtimes")
        # a host that enrolled but never reported
        secret = c.post(f"{FLEET}/secrets", json={"team": "new"}, headers=auth()).json()
        host = _enroll(c, secret["secret"], 7)["host_id"]
        body = main(get(c, f"/fleet/hosts/{host}"))
        assert "<h1>host-7</h1>" in body and "it never reported" in body
        for empty in ("No report yet.", "No open violations.", "No model files reported."):
            assert empty in body
        assert "No inference runtime found." in body and "No inference library found." in body
        assert ids(get(c, "/fleet/hosts?state=offline")) == {host}
        assert re.search(r'state=offline">1 offline<', get(c, "/fleet"))
        assert "No host matches" in get(c, "/fleet/hosts?state=online")
