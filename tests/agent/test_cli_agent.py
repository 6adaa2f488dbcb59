"""``modelward agent enroll|run --once|status`` against the real server, TLS verification with a
private CA (--ca-bundle), and the error messages a person sees (exit code 2, no traceback)."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from tests.agent.conftest import model, tls_files
from tests.server.conftest import ADMIN_TOKEN


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Any]:
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    application = create_app(
        ServerSettings(
            data_dir=tmp_path / "data",
            database_url=f"sqlite:///{tmp_path / 'hub.db'}",
            admin_token=ADMIN_TOKEN,
        )
    )
    yield application
    application.state.db.dispose()


def secret_file(app: Any, tmp_path: Path) -> Path:
    from modelward.server.api.agent import fleet_of

    path = tmp_path / "secret.txt"
    path.write_text(str(fleet_of(app).create_secret("eng", "tests").secret))
    return path


def test_enroll_run_once_status(
    app: Any, restartable: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = restartable(app)
    state = tmp_path / "state"
    roots = tmp_path / "models"
    model(roots, "a")
    secret = secret_file(app, tmp_path)

    code, out, err = run(capsys, "agent", "status", "--state-dir", str(state), "-f", "json")
    assert code == 0 and json.loads(out)["enrolled"] is False
    assert not state.exists()  # asking created nothing

    code, out, err = run(
        capsys, "agent", "enroll", "--server", server.url, "--secret-file", str(secret),
        "--state-dir", str(state),
    )  # fmt: skip
    assert code == 0, err
    assert "enrolled as host" in out
    assert stat.S_IMODE((state / "agent.json").stat().st_mode) == 0o600

    argv = ["agent", "run", "--once", "--roots", str(roots), "--state-dir", str(state)]
    argv += ["--nice", "0"]  # in-process: leave this test process's priority alone
    priority = os.getpriority(os.PRIO_PROCESS, 0)
    code, out, err = run(capsys, *argv, "--no-processes", "--hash-rate", "0")
    assert code == 0, err
    assert os.getpriority(os.PRIO_PROCESS, 0) == priority
    assert "report 1 (full)" in out and "1 sent, 0 pending" in out

    code, out, err = run(capsys, "agent", "status", "--state-dir", str(state), "-f", "json")
    status = json.loads(out)
    assert status["enrolled"] and status["last_ack"] == 1 and status["spooled"] == 0
    assert status["spool_dropped"] == 0 and status["server"] == server.url

    server.stop()
    code, out, err = run(capsys, *argv, "--no-processes")
    assert code == 0, err
    assert "0 sent, 1 pending (server offline, kept in the spool)" in out
    code, out, err = run(capsys, "agent", "status", "--state-dir", str(state))
    assert "spooled: 1" in out and "last ack: 1" in out


def test_errors_are_one_clear_line(
    app: Any, restartable: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    server = restartable(app)
    state = str(tmp_path / "state")
    bad = tmp_path / "bad-secret.txt"
    bad.write_text("mwe_not-a-real-secret")
    code, _out, err = run(
        capsys, "agent", "enroll", "--server", server.url, "--secret-file", str(bad),
        "--state-dir", state,
    )  # fmt: skip
    assert code == 2 and "unknown or revoked enrollment secret" in err and "Traceback" not in err
    assert not (tmp_path / "state" / "agent.json").exists()

    code, _out, err = run(capsys, "agent", "run", "--once", "--state-dir", state)
    assert code == 2 and "not enrolled" in err and "modelward agent enroll" in err

    code, _out, err = run(
        capsys, "agent", "enroll", "--server", "modelward.example", "--secret-file", str(bad),
    )  # fmt: skip
    assert code == 2 and "give a URL" in err

    code, _out, err = run(
        capsys, "agent", "enroll", "--server", "http://192.0.2.1:9", "--secret-file",
        str(tmp_path / "missing.txt"), "--state-dir", state,
    )  # fmt: skip
    assert code == 2 and "plain HTTP" in err and "cannot read the enrollment secret" in err


def test_tls_is_verified_and_a_private_ca_can_be_given(
    app: Any, restartable: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ca, cert, key = tls_files(tmp_path)
    server = restartable(app, ssl_certfile=str(cert), ssl_keyfile=str(key))
    assert server.url.startswith("https://")
    secret = secret_file(app, tmp_path)
    state = str(tmp_path / "state")
    enroll = ["agent", "enroll", "--server", server.url, "--secret-file", str(secret)]
    env = {k: os.environ.pop(k) for k in ("SSL_CERT_FILE", "SSL_CERT_DIR") if k in os.environ}
    try:
        code, _out, err = run(capsys, *enroll, "--state-dir", state)
        assert code == 2 and "CERTIFICATE_VERIFY_FAILED" in err
        code, _out, err = run(capsys, *enroll, "--state-dir", state, "--ca-bundle", str(ca))
        assert code == 0, err
    finally:
        os.environ.update(env)
    saved = json.loads((tmp_path / "state" / "agent.json").read_text())
    assert saved["ca_bundle"] == str(ca.resolve())  # later runs verify with the same CA
