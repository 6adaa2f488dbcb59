"""Fixtures for agent tests: tiny real model folders and a live server the test can stop and start
again on the same port (to take the agent offline and bring it back)."""

from __future__ import annotations

import os
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.agent.enroll import enroll, load_state
from modelward.agent.runner import Agent, RunOptions
from tests.server.conftest import ADMIN_TOKEN, db_url, free_port, make_model_dir  # noqa: F401


class Restartable:
    """uvicorn serving ``app`` on a fixed loopback port in a thread; ``stop()`` / ``start()``."""

    def __init__(self, app: Any, **tls: Any) -> None:
        self.app = app
        self.tls = tls
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            **self.tls,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
        self._server = self._thread = None


@pytest.fixture
def restartable() -> Iterator[Any]:
    made: list[Restartable] = []

    def make(app: Any, **tls: Any) -> Restartable:
        srv = Restartable(app, **tls)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def model(root: Path, name: str, seed: int = 0) -> Path:
    """A tiny real Hugging Face-style model folder whose weights differ by ``seed``."""
    return make_model_dir(root, name, weights=struct.pack("<16f", *range(seed, seed + 16)))


def tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate for 127.0.0.1 it signed: ``(ca, cert, key)`` PEMs."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("modelward test CA"))
        .issuer_name(name("modelward test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    paths = (folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


class Env:
    """One live server and one agent with its own state folder, roots and vault."""

    def __init__(self, tmp: Path, server: Any, app: Any) -> None:
        from modelward.server.api.agent import fleet_of

        self.tmp, self.server, self.app = tmp, server, app
        self.fleet = fleet_of(app)
        self.state_dir = tmp / "state"
        self.roots = tmp / "models"
        self.roots.mkdir()
        self.secret = tmp / "secret.txt"
        created = self.fleet.create_secret("eng", "tests")
        self.secret.write_text(created.secret + "\n")
        self.state_dir.mkdir()
        (self.state_dir / "machine-id").write_text(os.urandom(8).hex())

    def agent(self, **options: Any) -> Agent:
        opts = RunOptions(
            roots=(self.roots,),
            processes=False,
            runtimes=False,
            vault=self.tmp / "vault",
            **options,
        )
        return Agent(self.state_dir, opts)

    def enroll(self) -> None:
        enroll(self.server.url, self.secret, self.state_dir)

    @property
    def host_id(self) -> str:
        state = load_state(self.state_dir)
        assert state is not None
        return state.host_id

    def _rows(self, stmt: Any) -> list[Any]:
        with self.app.state.db.session() as s:
            return list(s.execute(stmt).all())

    def server_paths(self) -> set[str]:
        from sqlalchemy import select

        from modelward.store.db import HostArtifact

        stmt = select(HostArtifact.path).where(HostArtifact.host_id == self.host_id)
        return {r.path for r in self._rows(stmt)}

    def applied(self) -> list[int]:
        from sqlalchemy import select

        from modelward.store.db import AppliedReport

        stmt = select(AppliedReport.seq).where(AppliedReport.host_id == self.host_id)
        return [r.seq for r in self._rows(stmt.order_by(AppliedReport.id))]

    def agent_status(self) -> dict[str, Any]:
        from sqlalchemy import select

        from modelward.store.db import Host

        row = self._rows(select(Host.agent_status).where(Host.id == self.host_id))[0]
        return dict(row.agent_status or {})

    def push(self, files: dict[str, str], settings: dict[str, Any]) -> str:
        from modelward.fleet import bundle

        content = {"files": files, "settings": settings, "waivers": []}
        pushed = bundle.push(self.app.state.db, content, self.fleet.bundle_private_key, "tests")
        return str(pushed.etag)

    def forge_current_bundle(self, settings: dict[str, Any]) -> None:
        """What an attacker with write access to the database but not the key could do."""
        from sqlalchemy import select

        from modelward.store.db import PolicyBundle

        with self.app.state.db.session() as s:
            row = s.scalar(select(PolicyBundle).order_by(PolicyBundle.version.desc()).limit(1))
            row.document = {**row.document, "settings": settings}


@pytest.fixture
def env(tmp_path: Path, restartable: Any, db_url: str) -> Any:  # noqa: F811
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    settings = ServerSettings(
        data_dir=tmp_path / "data", database_url=db_url, admin_token=ADMIN_TOKEN
    )
    app = create_app(settings)
    server = restartable(app)
    yield Env(tmp_path, server, app)
    server.stop()
    app.state.db.dispose()
