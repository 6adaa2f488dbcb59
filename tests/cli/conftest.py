"""The hub fixtures (a live server on SQLite and PostgreSQL) for the CLI tests."""

from tests.server.conftest import app, client, db_url, hub, live_server, settings

__all__ = ["app", "client", "db_url", "hub", "live_server", "settings"]
