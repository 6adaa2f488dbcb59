"""``modelward server`` checks its settings and options before it creates anything: a bad admin
token, port, log level, host or a port in use is one line on stderr and exit 2."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.server.settings import ServerSettings, SettingsError, load_settings
from tests.cli.test_server_cli import fails_to_start as _fails
from tests.server.conftest import ADMIN_TOKEN

MAKE = "python -c 'import secrets; print(\"mw_\" + secrets.token_urlsafe(32))'"


# ------------------------------------------------------------------------------------ admin token
def test_the_tests_and_generated_tokens_are_valid() -> None:
    from modelward.server.auth import new_token

    for token in (ADMIN_TOKEN, new_token(), "mw_bench-admin-token-0123456789abcdefghijklmnopqr"):
        assert ServerSettings(admin_token=token).admin_token == token


@pytest.mark.parametrize(
    "token",
    [
        "a" * 43,  # no prefix: stored, but never looked up
        "mw_short",
        "mw_" + "a" * 31,
        "MW_" + "a" * 43,
        "mw_" + "a" * 20 + " " + "b" * 20,
    ],
)
def test_an_admin_token_the_hub_would_never_accept_is_refused(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    token: str,
) -> None:
    monkeypatch.setenv("MODELWARD_ADMIN_TOKEN", token)
    data = tmp_path / "data"
    message = _fails(capsys, monkeypatch, "server", "--data", str(data))
    assert message.startswith("invalid server settings: admin_token: ")
    assert "'mw_' followed by at least 32" in message and MAKE in message
    assert message.endswith("(environment MODELWARD_ADMIN_TOKEN)")
    assert token not in message  # a secret, even a bad one, is not echoed
    assert not data.exists()  # nothing created before the check


def test_an_admin_token_from_the_settings_file_is_checked(tmp_path: Path) -> None:
    config = tmp_path / "hub.yaml"
    config.write_text("admin_token: hunter2\n")
    with pytest.raises(SettingsError, match=f"admin_token: .*in {config}"):
        load_settings(config, data_dir=tmp_path)
    assert load_settings(None, data_dir=tmp_path, admin_token=ADMIN_TOKEN).admin_token


# ----------------------------------------------------------------------- port, log level, listening
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "--port 70000 is not a TCP port: give one from 1 to 65535"),
        (["--port", "0"], "--port 0 is not a TCP port: give one from 1 to 65535"),
        (["--port", "-1"], "--port -1 is not a TCP port: give one from 1 to 65535"),
        (
            ["--log-level", "LOUD"],
            "--log-level 'LOUD' is not one of: critical, error, warning, info, debug, trace",
        ),
        (["--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid:"),
        (["--host", "203.0.113.7"], "cannot listen on 203.0.113.7:"),  # not an address here
    ],
)
def test_bad_options_stop_before_anything_is_created(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.delenv("MODELWARD_ADMIN_TOKEN", raising=False)
    data = tmp_path / "data"
    got = _fails(capsys, monkeypatch, "server", "--data", str(data), *args)
    assert got.startswith(message), got
    assert not data.exists()  # no database made, no admin token printed


def test_a_port_in_use_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MODELWARD_ADMIN_TOKEN", raising=False)
    data = tmp_path / "data"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        got = _fails(capsys, monkeypatch, "server", "--data", str(data), "--port", str(port))
        assert got.startswith(f"cannot listen on 127.0.0.1:{port}: Address already in use"), got
        # the console script too: exit 2 and that one line, not uvicorn's log
        import subprocess
        import sys

        cmd = [sys.executable, "-m", "modelward", "server", "--port", str(port)]
        cmd += ["--data", str(data)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"modelward: error: cannot listen on 127.0.0.1:{port}: ")
    assert not data.exists()


def test_good_options_reach_uvicorn(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    from tests.server.conftest import free_port

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.setenv("MODELWARD_ADMIN_TOKEN", ADMIN_TOKEN)
    port = free_port()
    args = ["server", "--data", str(tmp_path / "d"), "--port", str(port), "--log-level", "WARNING"]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code in (0, None)
    assert seen["port"] == port and seen["log_level"] == "warning"
    assert f"modelward hub on http://127.0.0.1:{port}" in capsys.readouterr().err
