"""The fleet's server settings: report interval and offline window, validated and used."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelward.server.settings import ServerSettings, SettingsError, load_settings


def test_defaults_and_the_offline_window(tmp_path: Path) -> None:
    from modelward.fleet.service import FleetSettings

    s = ServerSettings(data_dir=tmp_path)
    assert (s.fleet_report_interval, s.fleet_offline_after) == (300, None)
    assert FleetSettings(s.fleet_report_interval, s.fleet_offline_after).offline_window == 900
    s = load_settings(None, data_dir=tmp_path, fleet_report_interval=60, fleet_offline_after=600)
    assert FleetSettings(s.fleet_report_interval, s.fleet_offline_after).offline_window == 600


@pytest.mark.parametrize(
    ("values", "bad"),
    [
        ({"fleet_report_interval": 0}, "fleet_report_interval"),
        ({"fleet_report_interval": 86_401}, "fleet_report_interval"),
        ({"fleet_offline_after": -1}, "fleet_offline_after"),
        ({"fleet_offline_after": 31 * 86_400}, "fleet_offline_after"),
        ({"fleet_report_interval": 600, "fleet_offline_after": 300}, "at least"),
    ],
)
def test_bad_values_are_named(tmp_path: Path, values: dict[str, Any], bad: str) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("".join(f"{k}: {v}\n" for k, v in values.items()))
    with pytest.raises(SettingsError, match=bad):
        load_settings(config, data_dir=tmp_path)


def test_environment_and_the_apis_use_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from modelward.server.app import create_app
    from tests.fleet.conftest import host_info
    from tests.server.conftest import ADMIN_TOKEN, auth

    monkeypatch.setenv("MODELWARD_FLEET_REPORT_INTERVAL", "120")
    monkeypatch.setenv("MODELWARD_FLEET_OFFLINE_AFTER", "1000")
    settings = load_settings(None, data_dir=tmp_path / "data", admin_token=ADMIN_TOKEN)
    app = create_app(settings)
    try:
        with TestClient(app) as client:
            from modelward.server.api.agent import fleet_of

            secret = fleet_of(app).create_secret("blue", "tests").secret
            r = client.post("/api/v1/agent/enroll", json={"secret": secret, "host": host_info()})
            assert r.status_code == 201 and r.json()["report_interval"] == 120
            r = client.get("/api/v1/fleet/hosts", headers=auth())
            assert r.json()["offline_after"] == 1000
    finally:
        app.state.db.dispose()
