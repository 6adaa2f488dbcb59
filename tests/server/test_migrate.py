"""Alembic migrations: the migrated schema equals the ORM's, re-running is a no-op, replicas that
start together migrate once, and a server refuses to start on a schema that is behind."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from modelward.server.settings import ServerSettings
from modelward.store import migrate
from modelward.store.db import Base, Database
from tests.server.conftest import ADMIN_TOKEN


def _diffs(db: Database) -> list[Any]:
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


@pytest.fixture
def db(db_url: str) -> Any:
    database = Database(db_url)
    yield database
    database.dispose()


def test_upgrade_gives_the_orm_schema_and_is_idempotent(db: Database) -> None:
    assert migrate.current(db) is None
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()
    assert _tables(db) == set(Base.metadata.tables)
    assert _diffs(db) == []
    migrate.upgrade(db)  # twice: nothing to do, nothing fails
    assert migrate.current(db) == migrate.head()
    assert _diffs(db) == []


def test_downgrade_and_upgrade_again(db: Database) -> None:
    migrate.upgrade(db)
    from alembic import command

    with db.engine.begin() as conn:
        command.downgrade(migrate._config(conn), "base")
    assert _tables(db) == set()
    migrate.upgrade(db)
    assert _diffs(db) == []


def test_a_create_all_database_is_adopted(db: Database) -> None:
    db.create_all()  # what the hub core did before migrations existed
    with db.session() as s:
        s.execute(sa.text("INSERT INTO server_keys (name, value) VALUES ('k', 'v')"))
    migrate.upgrade(db)
    assert migrate.current(db) == migrate.head()
    with db.session() as s:
        assert s.execute(sa.text("SELECT value FROM server_keys")).scalar_one() == "v"


def test_replicas_starting_together_migrate_once(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("several processes share one database only on PostgreSQL")
    dbs = [Database(db_url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(dbs))

    def start(d: Database) -> None:
        barrier.wait()
        try:
            migrate.upgrade(d)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(d,)) for d in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert errors == []
        assert migrate.current(dbs[0]) == migrate.head()
        assert _diffs(dbs[0]) == []
    finally:
        for d in dbs:
            d.dispose()


def test_a_newer_schema_is_refused(db: Database) -> None:
    migrate.upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrate.SchemaError, match="newer than this modelward"):
        migrate.upgrade(db)


def _cli(*args: str) -> str:
    """Run the real ``modelward`` command line in a child process; its stdout."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelward", *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_server_start_needs_migrate_when_auto_migrate_is_off(db_url: str, tmp_path: Path) -> None:
    from modelward.server.app import create_app

    if not db_url.startswith("postgresql"):
        pytest.skip("the embedded SQLite database is always migrated at start")
    settings = ServerSettings(
        data_dir=tmp_path / "data", database_url=db_url, admin_token=ADMIN_TOKEN, auto_migrate=False
    )
    with pytest.raises(migrate.SchemaError, match="run `modelward server migrate`"):
        create_app(settings)

    out = _cli("server", "migrate", "--database", db_url, "--data", str(tmp_path / "data"))
    assert "is up to date" in out

    app = create_app(settings)
    try:
        assert _diffs(app.state.db) == []
    finally:
        app.state.db.dispose()


def test_migrate_command_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    for _ in range(2):
        assert "is up to date" in _cli("server", "migrate", "--database", url)
    db = Database(url)
    try:
        assert migrate.current(db) == migrate.head()
    finally:
        db.dispose()


def test_migrations_ship_with_the_package() -> None:
    root = importlib.resources.files("modelward.store.migrations")
    assert root.joinpath("env.py").is_file()
    assert root.joinpath("script.py.mako").is_file()
    assert any(p.name.endswith(".py") for p in root.joinpath("versions").iterdir())
