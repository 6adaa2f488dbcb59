"""Server-side storage: the database (SQLAlchemy + Alembic) and content-addressed blob stores."""
