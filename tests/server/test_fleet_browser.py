"""The fleet console pages in real headless Chromium against a live server (see test_web_browser.py).

The fleet is made over real HTTP through the agent and console APIs (``seed_fleet``); the browser
logs in, reads the overview's trend chart and walks overview -> violations -> host -> artifact ->
the hosts holding it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.server.test_fleet_web import SHARED, seed_fleet
from tests.server.test_web_browser import (  # noqa: F401  (fixtures: sqlite-only db_url, browser)
    browser,
    db_url,
    log_in,
    png_pixels,
    watched_page,
)


def test_fleet_console_in_chromium(live_server: Any, browser: Any, tmp_path: Path) -> None:  # noqa: F811
    import httpx

    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        seeded = seed_fleet(http, live_server.hub, tmp_path)
    ids = seeded["ids"]
    reviewer = live_server.token("reviewer", "rita")
    base = live_server.url

    page, errors = watched_page(browser)
    # Not logged in: the overview sends the browser to the log-in form, and back after it.
    log_in(page, base + "/fleet", reviewer)
    assert page.get_by_role("heading", name="Fleet overview").is_visible()
    assert (
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Fleet").is_visible()
    )

    # The trend chart: drawn (styled under the CSP, visible boxes), one point per reported day.
    chart = page.get_by_role("img", name="Open violations per day, last 30 days")
    assert chart.is_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 600 and box["height"] > 150
    points = page.locator("svg.trend circle.point")
    assert points.count() == 4
    totals = [int(points.nth(i).get_attribute("data-total") or -1) for i in range(4)]
    assert totals == [1, 1, 2, 5]
    centres = []
    for i in range(4):
        b = points.nth(i).bounding_box()
        assert b is not None and b["width"] > 4 and b["height"] > 4
        centres.append((b["x"] + b["width"] / 2, b["y"] + b["height"] / 2))
    assert [c[0] for c in centres] == sorted(c[0] for c in centres)  # left to right in time
    assert centres[3][1] < centres[2][1] < centres[0][1]  # more violations: higher
    line = page.locator("svg.trend polyline.line")
    assert line.evaluate("e => getComputedStyle(e).stroke") != "none"
    assert line.evaluate("e => e.getTotalLength()") > 100
    overview_shot = page.screenshot(full_page=True)

    # overview -> violations (the critical ones) -> host-0
    page.get_by_role("link", name="1 critical").click()
    page.wait_for_url(base + "/fleet/violations?severity=critical")
    assert page.get_by_role("heading", name="Violations").is_visible()
    rows = page.locator("table.violations tbody tr")
    assert rows.count() == 1
    violations_shot = page.screenshot(full_page=True)
    rows.first.get_by_role("link", name="host-0").click()
    page.wait_for_url(f"{base}/fleet/hosts/{ids[0]}")
    assert page.get_by_role("heading", name="host-0", exact=True).is_visible()
    assert page.get_by_role("link", name="CycloneDX 1.6 (JSON)").is_visible()
    host_shot = page.screenshot(full_page=True)

    # host -> artifact (the file every host holds) -> the hosts holding it -> one of them
    page.locator(f'a[href="/fleet/artifacts/{SHARED}"]').first.click()
    page.wait_for_url(f"{base}/fleet/artifacts/{SHARED}")
    holders = page.locator("table.holders tbody tr")
    assert holders.count() == 5
    names = {holders.nth(i).locator("th a").inner_text() for i in range(5)}
    assert names == {"host-0", "host-1", "host-2", "host-3", '<script>alert("h")</script>'}
    assert page.get_by_text("Unapproved: no approved hub revision holds this file.").is_visible()
    artifact_shot = page.screenshot(full_page=True)
    page.get_by_role("link", name="host-3").click()
    page.wait_for_url(f"{base}/fleet/hosts/{ids[3]}")
    assert page.get_by_text("has not reported for more than 15 minutes").is_visible()

    # the sub-navigation marks where we are
    page.get_by_role("navigation", name="Fleet").get_by_role("link", name="Hosts").click()
    page.wait_for_url(base + "/fleet/hosts")
    current = page.get_by_role("navigation", name="Fleet").locator('[aria-current="page"]')
    assert current.inner_text() == "Hosts"
    assert page.locator("table.hosts tbody tr").count() == 5
    hosts_shot = page.screenshot(full_page=True)
    assert not errors, errors
    page.context.close()

    shots = {
        "fleet-overview.png": overview_shot,
        "fleet-violations.png": violations_shot,
        "fleet-host.png": host_shot,
        "fleet-artifact.png": artifact_shot,
        "fleet-hosts.png": hosts_shot,
    }
    for data in shots.values():
        width, height, colours = png_pixels(data)
        assert width == 1280 and height >= 600
        assert 20_000 < len(data) < 5_000_000
        assert len(colours) > 20, "the screenshot looks blank"
    if out := os.environ.get("MODELWARD_SCREENSHOTS"):
        Path(out).mkdir(parents=True, exist_ok=True)
        for name, data in shots.items():
            (Path(out) / name).write_bytes(data)
