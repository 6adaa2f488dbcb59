"""Fixtures for hub tests: a hub on SQLite and on PostgreSQL, an in-process client, a live server.

PostgreSQL tests use the server on 127.0.0.1:5432 (trust auth, database ``test``), one fresh schema
per test. They are skipped when it is not reachable, unless MODELWARD_REQUIRE_POSTGRES=1 (set by
``.ci/run``), which turns that into a failure.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PG_BASE = os.environ.get(
    "MODELWARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ADMIN_TOKEN = "mw_test-admin-token-0123456789abcdefghijklmnopqrs"


def _pg_schema_url() -> Iterator[str]:
    import sqlalchemy as sa

    schema = "t_" + uuid.uuid4().hex[:12]
    try:
        engine = sa.create_engine(PG_BASE)
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # OperationalError and friends: the server is not there
        if os.environ.get("MODELWARD_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required (MODELWARD_REQUIRE_POSTGRES=1) but: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_BASE}: {exc}")
    try:
        yield f"{PG_BASE}?options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL: a file in tmp_path (SQLite) or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'hub.db'}"
    else:
        yield from _pg_schema_url()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Any:
    from modelward.server.settings import ServerSettings

    return ServerSettings(data_dir=tmp_path / "data", database_url=db_url, admin_token=ADMIN_TOKEN)


@pytest.fixture
def app(settings: Any) -> Iterator[Any]:
    from modelward.server.app import create_app

    application = create_app(settings)
    yield application
    application.state.db.dispose()


@pytest.fixture
def hub(app: Any) -> Any:
    return app.state.hub


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def auth(token: str = ADMIN_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class LiveServer:
    url: str
    app: Any
    admin_token: str = ADMIN_TOKEN

    @property
    def hub(self) -> Any:
        return self.app.state.hub

    def token(self, role: str, name: str | None = None) -> str:
        from modelward.server.auth import create_token

        return create_token(self.app.state.db, name or f"test-{role}", role, "tests")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_live(app: Any) -> tuple[LiveServer, Any, threading.Thread]:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", app), server, thread


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    """uvicorn serving ``app`` on a free loopback port in a thread."""
    live, server, thread = start_live(app)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(10)


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int], bytes]]) -> None:
    """A real safetensors file written by hand (header + data), no numpy needed."""
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {
            "dtype": dtype,
            "shape": shape,
            "data_offsets": [offset, offset + len(data)],
        }
        offset += len(data)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)) + raw)
        for _dtype, _shape, data in tensors.values():
            fh.write(data)


def make_model_dir(root: Path, name: str = "model", weights: bytes | None = None) -> Path:
    """A tiny but real Hugging Face model folder: safetensors, config, tokenizer, card, license."""
    d = root / name
    (d / "sub").mkdir(parents=True, exist_ok=True)
    data = weights if weights is not None else struct.pack("<16f", *range(16))
    write_safetensors(d / "model.safetensors", {"w": ("F32", [len(data) // 4], data)})
    (d / "config.json").write_text(
        json.dumps({"model_type": "bert", "hidden_size": 4, "architectures": ["BertModel"]})
    )
    (d / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 16}))
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# tiny test model\n")
    (d / "sub" / "notes.txt").write_text("nested file\n")
    return d


def publish(
    hub: Any,
    repo: str,
    folder: Path,
    approve: bool = True,
    tag: str | None = None,
    actor: str = "tests",
) -> Any:
    """Store every file of ``folder`` as blobs, create a revision and (by default) approve it."""
    from modelward.hub.service import NewFile

    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with hub.blobs.writer() as w, p.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    w.write(chunk)
                info = w.commit()
            hub.register_blob(info.sha256, info.size)
            files.append(NewFile(p.relative_to(folder).as_posix(), info.sha256, info.size))
    rev = hub.create_revision(repo, files, {"kind": "upload", "uploader": actor}, actor, tag=tag)
    if approve:
        rev = hub.approve(repo, rev.commit, "reviewer", "tests approve", override=True)
    return rev
