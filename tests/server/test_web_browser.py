"""The web UI in real headless Chromium (Debian's package, driven by Playwright) against a live hub.

Playwright never downloads a browser here: it launches /usr/bin/chromium. Without it the test skips,
unless MODELWARD_REQUIRE_BROWSER=1 (set in CI) turns that into a failure.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import make_model_dir, publish

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: the pages are the same on every database (test_web.py covers both)."""
    yield f"sqlite:///{tmp_path / 'hub.db'}"


def _need_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright Python package is not installed"
    if problem:
        if os.environ.get("MODELWARD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MODELWARD_REQUIRE_BROWSER=1 but {problem}")
        pytest.skip(f"no headless browser: {problem}")


@pytest.fixture
def browser() -> Iterator[Any]:
    _need_browser()
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def png_pixels(data: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and a sample of distinct pixels of an 8-bit RGB(A) PNG (stdlib only)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6), (depth, color)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = width * channels + 1
    colours: set[bytes] = set()
    for row in range(0, height, 7):  # filtered bytes still differ wherever the pixels do
        line = raw[row * stride + 1 : (row + 1) * stride]
        colours.update(line[i : i + 3] for i in range(0, len(line), channels * 5))
    return width, height, colours


def watched_page(browser: Any) -> tuple[Any, list[str]]:
    """A new page and the list its errors land in: script errors, console errors (CSP
    violations and failed loads, e.g. a missing stylesheet, show up there) and 4xx/5xx answers."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on(
        "response",
        lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    return page, errors


def log_in(page: Any, url: str, token: str) -> None:
    """Open ``url`` logged out: it must send the browser to the log-in form, and back after it."""
    page.goto(url)
    assert "/login" in page.url
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(url)


def test_log_in_browse_and_approve_in_chromium(
    live_server: Any, browser: Any, tmp_path: Path
) -> None:
    hub = live_server.hub
    approved = publish(hub, "acme/tiny", make_model_dir(tmp_path, "tiny"), tag="v1")
    pending = publish(
        hub, "acme/pending", make_model_dir(tmp_path, "pending", b"\1" * 16), approve=False
    )
    reviewer = live_server.token("reviewer", "rita")
    base = live_server.url

    page, errors = watched_page(browser)
    # Not logged in: the catalog sends the browser to the log-in form.
    log_in(page, base + "/models", reviewer)
    assert page.get_by_role("heading", name="Approved models").is_visible()
    assert page.get_by_text("Signed in as").is_visible()
    assert reviewer not in page.content()
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert (
        cookies["modelward_session"]["httpOnly"]
        and cookies["modelward_session"]["sameSite"] == "Strict"
    )
    assert page.evaluate("document.cookie") == ""  # nothing readable from scripts

    # The model page: files, pull commands, copy button.
    page.get_by_role("link", name="acme/tiny").click()
    page.wait_for_url(base + "/models/acme/tiny")
    assert page.get_by_role("heading", name="acme/tiny", exact=True).is_visible()
    hf = page.locator("#cmd-hf")
    assert hf.inner_text().startswith(f"HF_ENDPOINT={base} hf download acme/tiny")
    assert page.get_by_text(approved.files[0].sha256).is_visible()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    page.locator('button[data-copy="cmd-hf"]').click()
    page.get_by_text("Copied to the clipboard.").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == hf.inner_text()
    shot = page.screenshot(full_page=True)

    # The review queue: approve with a reason.
    page.get_by_role("link", name="Review queue").click()
    page.wait_for_url(base + "/review")
    assert page.get_by_role("heading", name="acme/pending").is_visible()
    page.get_by_role("button", name="Approve acme/pending").click()  # empty reason: blocked
    assert page.url == base + "/review"
    assert hub.revision("acme/pending", pending.commit).state == "in_review"
    page.get_by_label("Reason for approving").fill("scan clean, license ok")
    page.get_by_role("button", name="Approve acme/pending").click()
    page.get_by_text(f"Approved acme/pending @ {pending.commit[:12]}.").wait_for()
    assert page.get_by_text("Nothing to review.").is_visible()
    got = hub.revision("acme/pending", pending.commit)
    assert (got.state, got.decided_by, got.reason) == ("approved", "rita", "scan clean, license ok")
    review_shot = page.screenshot(full_page=True)

    page.goto(base + "/models")
    assert page.get_by_role("link", name="acme/pending").is_visible()
    assert not errors, errors
    page.context.close()

    for data in (shot, review_shot):
        width, height, colours = png_pixels(data)
        assert width == 1280 and height >= 600
        assert 20_000 < len(data) < 5_000_000
        assert len(colours) > 20, "the screenshot looks blank"
    if out := os.environ.get("MODELWARD_SCREENSHOTS"):
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "model-page.png").write_bytes(shot)
        (Path(out) / "review-page.png").write_bytes(review_shot)
