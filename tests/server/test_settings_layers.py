"""Server settings: defaults < settings file < environment < command line (the later layer wins)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelward.server.settings import ServerSettings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.upper().startswith("MODELWARD_"):
            monkeypatch.delenv(name)


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(text)
    return path


FILE = """\
max_upload_bytes: 100
signed_url_ttl: 10
data_dir: /from/file
database_url: sqlite:////from/file.db
"""


def test_each_layer_wins_over_the_one_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(tmp_path, FILE)
    only_file = load_settings(config)
    assert only_file.max_upload_bytes == 100 and only_file.signed_url_ttl == 10
    assert only_file.data_dir == Path("/from/file")
    assert only_file.fleet_report_interval == 300  # default: set nowhere

    monkeypatch.setenv("MODELWARD_MAX_UPLOAD_BYTES", "200")
    monkeypatch.setenv("MODELWARD_DATA_DIR", "/from/env")
    env = load_settings(config)
    assert env.max_upload_bytes == 200  # environment beats the file
    assert env.data_dir == Path("/from/env")
    assert env.signed_url_ttl == 10  # the file still beats the default

    cli = load_settings(config, data_dir=Path("/from/cli"), database_url=None)
    assert cli.data_dir == Path("/from/cli")  # the command line beats both
    assert cli.database_url == "sqlite:////from/file.db"  # an option not given changes nothing
    assert cli.max_upload_bytes == 200
    cli_db = load_settings(config, database_url="sqlite:////from/cli.db")
    assert cli_db.database_url == "sqlite:////from/cli.db"


def test_without_a_file_the_environment_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELWARD_SIGNED_URL_TTL", "60")
    assert load_settings().signed_url_ttl == 60
    assert load_settings(None, data_dir=Path("/x")).signed_url_ttl == 60
    assert ServerSettings().signed_url_ttl == 60  # the file layer is only load_settings'


def test_errors_name_the_layer_the_bad_value_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _file(tmp_path, "max_upload_bytes: -1\nsigned_url_ttl: 10\nnot_a_setting: 1\n")
    with pytest.raises(SettingsError) as exc:
        load_settings(config)
    message = str(exc.value)
    assert f"max_upload_bytes: Input should be greater than 0 (in {config})" in message
    assert f"not_a_setting: Extra inputs are not permitted (in {config})" in message
    monkeypatch.setenv("MODELWARD_SIGNED_URL_TTL", "0")
    with pytest.raises(SettingsError) as exc:
        load_settings(_file(tmp_path, "max_upload_bytes: 5\n"))
    assert (
        "signed_url_ttl: Input should be greater than 0 (environment MODELWARD_SIGNED_URL_TTL)"
        in (str(exc.value))
    )
    with pytest.raises(SettingsError) as exc:
        load_settings(None, database_url="nonsense")
    assert "database_url: Value error" in str(exc.value) and "(command line)" in str(exc.value)


def test_the_server_command_applies_the_layers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``modelward server --config F --data D`` with MODELWARD_* set: what the app runs with."""
    import uvicorn

    from modelward.cli import main

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    # nothing listens (uvicorn.run is stubbed): the default port 8000 may be taken on this machine
    monkeypatch.setattr("modelward.cli.server.check_listen", lambda host, port: None)
    config = _file(tmp_path, f"max_upload_bytes: 100\ndata_dir: {tmp_path / 'file'}\n")
    monkeypatch.setenv("MODELWARD_MAX_UPLOAD_BYTES", "200")
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("MODELWARD_ADMIN_TOKEN", "mw_" + "a" * 43)
    with pytest.raises(SystemExit) as exit_:
        main(["server", "--config", str(config), "--data", str(tmp_path / "cli")])
    assert exit_.value.code == 0, capsys.readouterr().err
    try:
        settings = apps[0].state.settings
        assert settings.max_upload_bytes == 200
        assert settings.data_dir == tmp_path / "cli"
        assert (tmp_path / "cli" / "hub.db").is_file()
        assert not (tmp_path / "env").exists() and not (tmp_path / "file").exists()
    finally:
        apps[0].state.db.dispose()
