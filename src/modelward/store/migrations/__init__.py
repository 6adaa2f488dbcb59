"""Alembic migrations of the hub database (run by ``modelward.store.migrate``)."""
