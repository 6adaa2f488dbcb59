"""What the server says reaches the user, even when the answer has no body (HEAD requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from modelward.errors import Forbidden, RevisionNotFound, Unauthorized
from modelward.hub.client import HubClient, error_from_response
from tests.cli.test_hub_cli import Cli
from tests.server.conftest import make_model_dir


@pytest.fixture
def cli(
    live_server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(capsys, monkeypatch, live_server.url)


def test_a_reader_pushing_sees_the_servers_reason(
    cli: Cli, live_server: Any, tmp_path: Path
) -> None:
    """``hub push`` starts with HEAD /blobs/...: its 403 has only X-Error-Message to say why."""
    reader = live_server.token("reader")
    code, _out, err = cli("push", str(make_model_dir(tmp_path)), "--repo", "acme/x", token=reader)
    assert code == 2, err
    assert "the reader role may not publish" in err, err
    assert "HTTP 403" not in err and "HEAD" not in err


def test_head_errors_through_the_api_client(live_server: Any) -> None:
    reviewer = live_server.token("reviewer")
    with HubClient(live_server.url, reviewer) as hub, pytest.raises(Forbidden) as exc:
        hub.has_blob("0" * 64)
    assert str(exc.value).startswith("the reviewer role may not publish")
    assert exc.value.detail["http_status"] == 403
    bad = "mw_" + "x" * 43
    with HubClient(live_server.url, bad) as hub, pytest.raises(Unauthorized) as unauthorized:
        hub.has_blob("0" * 64)
    assert str(unauthorized.value) == "invalid or revoked token"


def _head(status: int, headers: dict[str, str]) -> httpx.Response:
    request = httpx.Request("HEAD", "http://hub.example/api/v1/hub/blobs/x")
    return httpx.Response(status, headers=headers, request=request)


def test_header_codes_map_to_the_hubs_errors() -> None:
    err = error_from_response(
        _head(404, {"X-Error-Code": "RevisionNotFound", "X-Error-Message": "no revision v9"}),
        had_token=True,
    )
    assert isinstance(err, RevisionNotFound) and str(err) == "no revision v9"
    # a 401 carries RepoNotFound for huggingface_hub's sake: it stays an Unauthorized
    err = error_from_response(
        _head(401, {"X-Error-Code": "RepoNotFound", "X-Error-Message": "authentication required"}),
        had_token=False,
    )
    assert isinstance(err, Unauthorized)
    assert (
        str(err) == "authentication required (no token given: pass --token or set MODELWARD_TOKEN)"
    )
    bare = error_from_response(_head(403, {}), had_token=True)
    assert isinstance(bare, Forbidden)
    assert str(bare) == "HTTP 403 from HEAD http://hub.example/api/v1/hub/blobs/x"
