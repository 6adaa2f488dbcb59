"""The first start's admin token: printed once, stored only as its hash, never recoverable.

``modelward server`` runs in-process with ``uvicorn.run`` replaced by a stub that keeps the app,
on SQLite and on PostgreSQL (the ``db_url`` fixture).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main

TOKEN_LINE = re.compile(r"^\s+(mw_\S+)$", re.M)


class Started:
    def __init__(self, stderr: str, app: Any) -> None:
        self.stderr = stderr
        self.app = app


@pytest.fixture
def start(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Any]:
    """``start(db_url)``: run ``modelward server`` up to serving; returns its stderr and app."""
    import uvicorn

    apps: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: apps.append(app))
    monkeypatch.delenv("MODELWARD_ADMIN_TOKEN", raising=False)
    # nothing listens (uvicorn.run is stubbed): the default port 8000 may be taken on this machine
    monkeypatch.setattr("modelward.cli.server.check_listen", lambda host, port: None)

    def run(db_url: str) -> Started:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_:
            main(["server", "--data", str(tmp_path / "data"), "--database", db_url])
        assert exit_.value.code == 0
        app = apps[-1]
        app.state.db.dispose()  # the pool; the TestClient below reopens connections as needed
        return Started(capsys.readouterr().err, app)

    yield run
    for app in apps:
        app.state.db.dispose()


def _whoami(app: Any, token: str) -> int:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        r = c.post(
            "/api/v1/hub/tokens",
            json={"role": "reader"},
            headers={"Authorization": f"Bearer {token}"},
        )
        return r.status_code


def _database_text(db_url: str) -> str:
    """Every row of every table of the database, as text."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(
                repr(tuple(row)) for t in meta.sorted_tables for row in conn.execute(sa.select(t))
            )
    finally:
        engine.dispose()


def test_first_start_prints_a_token_once_and_stores_only_its_hash(start: Any, db_url: str) -> None:
    from modelward.server.auth import hash_token

    first = start(db_url)
    found = TOKEN_LINE.findall(first.stderr)
    assert len(found) == 1, first.stderr
    token = found[0]
    assert "shown once" in first.stderr
    assert _whoami(first.app, token) == 201
    text = _database_text(db_url)
    assert hash_token(token) in text  # the scan reads the rows of tokens and server_keys
    assert token not in text and token[3:] not in text
    second = start(db_url)
    assert "mw_" not in second.stderr and "admin token" not in second.stderr
    assert _whoami(second.app, token) == 201


def test_a_clear_token_of_an_earlier_build_is_hashed_at_start(start: Any, db_url: str) -> None:
    from modelward.server.app import BOOTSTRAP_MARKER
    from modelward.server.auth import hash_token
    from modelward.store.db import Database, ServerKey, Token

    first = start(db_url)
    token = TOKEN_LINE.findall(first.stderr)[0]
    # what the earlier build left: the token itself in server_keys (and its hash in tokens)
    db = Database(db_url)
    try:
        with db.session() as s:
            s.get_one(ServerKey, BOOTSTRAP_MARKER).value = token
        assert token in _database_text(db_url)
        second = start(db_url)
        assert "mw_" not in second.stderr
        assert token not in _database_text(db_url)
        with db.session() as s:
            assert s.get_one(ServerKey, BOOTSTRAP_MARKER).value == hash_token(token)
            rows = s.query(Token).filter(Token.token_hash == hash_token(token)).all()
            assert [r.role for r in rows] == ["admin"]
        assert _whoami(second.app, token) == 201  # the operator's token still works
    finally:
        db.dispose()


def test_a_clear_token_without_its_row_keeps_working(start: Any, db_url: str) -> None:
    """An earlier build stopped between writing the marker and the token: the token is kept."""
    from modelward.server.app import BOOTSTRAP_MARKER
    from modelward.server.auth import new_token
    from modelward.store.db import Database, ServerKey

    first = start(db_url)
    assert TOKEN_LINE.findall(first.stderr)
    old = new_token()
    db = Database(db_url)
    try:
        with db.session() as s:
            s.get_one(ServerKey, BOOTSTRAP_MARKER).value = old
    finally:
        db.dispose()
    second = start(db_url)
    assert "mw_" not in second.stderr
    assert old not in _database_text(db_url)
    assert _whoami(second.app, old) == 201
