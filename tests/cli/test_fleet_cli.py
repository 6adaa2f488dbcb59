"""``modelward fleet ...`` against a live server: secrets, hosts, artifacts, violations, policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from modelward.cli import main
from tests.fleet.conftest import artifact, decision, host_info, report
from tests.fleet.test_bundle import policy_dir
from tests.server.conftest import ADMIN_TOKEN


def _run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, token: str, *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()
    monkeypatch.setenv("MODELWARD_TOKEN", token)
    try:
        main(["fleet", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_fleet_cli(
    live_server: Any,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("MODELWARD_SERVER", live_server.url)

    def cli(*args: str, token: str = ADMIN_TOKEN) -> tuple[int, str, str]:
        return _run(capsys, monkeypatch, token, *args)

    def cli_json(*args: str, token: str = ADMIN_TOKEN) -> Any:
        code, out, err = cli(*args, "--format", "json", token=token)
        assert code == 0, err
        return json.loads(out)

    code, out, _ = cli("secret", "create", "--team", "laptops")
    assert code == 0 and out.strip().startswith("mwe_")
    secret = out.strip()
    with httpx.Client(base_url=live_server.url) as http:
        e = http.post("/api/v1/agent/enroll", json={"secret": secret, "host": host_info(1)}).json()
        body = report(1, artifacts=[artifact("/m/a", "cd" * 32)], decisions=[decision("r", "/m/a")])
        r = http.post(
            "/api/v1/agent/report",
            json=body,
            headers={"Authorization": f"Bearer {e['host_key']}"},
        )
        assert r.json()["applied"]

    hosts = cli_json("hosts")
    assert [h["hostname"] for h in hosts["items"]] == ["host-1"]
    code, out, _ = cli("hosts")
    assert code == 0 and "host-1" in out and "online" in out
    arts = cli_json("artifacts", "--sha256", "cd" * 32)
    assert arts["items"][0]["path"] == "/m/a"
    assert len(cli_json("artifacts", "--unapproved", "--all")["items"]) == 1
    code, out, _ = cli("violations")
    assert code == 0 and "host-1" in out and "high" in out
    assert cli_json("violations", "--summary")["items"][0]["hosts"] == 1

    pushed = cli_json("policy", "push", str(policy_dir(tmp_path)))
    assert pushed["version"] == 1
    code, out, _ = cli("policy", "push", str(policy_dir(tmp_path)))
    assert code == 0 and "version 1" in out  # unchanged folder: same version
    code, _, err = cli("policy", "push", str(tmp_path / "missing"))
    assert code == 2 and "policy folder" in err

    reviewer = live_server.token("reviewer")
    code, _, err = cli("host", "revoke", e["host_id"], token=reviewer)
    assert code == 2 and "may not admin" in err
    code, out, _ = cli("host", "revoke", e["host_id"])
    assert code == 0 and "revoked host" in out
    assert cli_json("hosts", "--state", "revoked", token=reviewer)["items"][0]["id"] == e["host_id"]
