"""``modelward server`` and ``server migrate`` that cannot start: one clear line, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modelward.cli import main

REFUSED = "postgresql+psycopg://nobody@127.0.0.1:1/x"


def _fails(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """Run ``modelward *args`` in-process; it must exit 2 with exactly one line on stderr.
    (These are about the database and data folder: port 8000 may be in use on this machine.)"""
    monkeypatch.setattr("modelward.cli.server.check_listen", lambda host, port: None)
    return fails_to_start(capsys, monkeypatch, *args)


def fails_to_start(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> str:
    """``modelward *args`` in-process exits 2 with one line on stderr; the server never starts.
    Returns that line without its ``modelward: error:`` prefix."""
    import uvicorn

    def never(*a: object, **kw: object) -> None:
        raise AssertionError("the server must not start")

    monkeypatch.setattr(uvicorn, "run", never)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    out, err = capsys.readouterr()
    assert exit_.value.code == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("modelward: error: "), err
    assert "Traceback" not in err and out == ""
    return lines[0].removeprefix("modelward: error: ")


@pytest.mark.parametrize("command", [["server"], ["server", "migrate"]])
def test_database_not_reachable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    message = _fails(capsys, monkeypatch, *command, "--data", str(tmp_path), "--database", REFUSED)
    assert message == f"cannot reach the database at {REFUSED}: connection refused"


def test_the_password_is_never_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = "postgresql+psycopg://nobody:s3cr3t@127.0.0.1:1/x"
    for command in (["server"], ["server", "migrate"]):
        message = _fails(capsys, monkeypatch, *command, "--data", str(tmp_path), "--database", url)
        assert "s3cr3t" not in message
        assert message == (
            "cannot reach the database at postgresql+psycopg://nobody:***@127.0.0.1:1/x "
            "(password redacted): connection refused"
        )


def test_database_that_refuses_the_login(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """PostgreSQL answers (127.0.0.1:5432), but no such role: its reason, in one line."""
    from tests.server.conftest import PG_BASE

    host = PG_BASE.rpartition("@")[2].partition("/")[0]
    url = f"postgresql+psycopg://no_such_role_mw@{host}/test"
    message = _fails(capsys, monkeypatch, "server", "--data", str(tmp_path), "--database", url)
    if "connection refused" in message:
        if os.environ.get("MODELWARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required but not running at {host}")
        pytest.skip(f"PostgreSQL is not running at {host}")
    assert message == f'cannot reach the database at {url}: role "no_such_role_mw" does not exist'


@pytest.mark.parametrize("command", [["server"], ["server", "migrate"]])
def test_database_driver_not_installed(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    message = _fails(
        capsys, monkeypatch, *command, "--data", str(tmp_path), "--database", "mysql://x@y/z"
    )
    assert message.startswith(
        "cannot use the database at mysql://x@y/z: its driver MySQLdb is not installed"
    )
    message = _fails(
        capsys, monkeypatch, *command, "--data", str(tmp_path), "--database", "bogus://x"
    )
    assert message.startswith("cannot use the database at bogus://x: 'bogus' is not a database")


@pytest.mark.parametrize("command", [["server"], ["server", "migrate"]])
def test_data_folder_cannot_be_made(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    command: list[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    message = _fails(capsys, monkeypatch, *command, "--data", str(blocker / "data"))
    assert message == f"cannot create the data folder {blocker / 'data'}: Not a directory"


def test_sqlite_file_cannot_be_opened(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'hub.db'}"
    message = _fails(capsys, monkeypatch, "server", "--data", str(tmp_path), "--database", url)
    assert message == f"cannot open the database at {url}: unable to open database file"


def test_as_a_process(tmp_path: Path) -> None:
    """The console script itself: exit 2, one line, no traceback (the README's first command)."""
    from tests.server.conftest import free_port

    port = str(free_port())
    cmd = [sys.executable, "-m", "modelward", "server", "--data", "/proc/nope", "--port", port]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "modelward: error: cannot create the data folder /proc/nope: No such file or directory"
    ]
