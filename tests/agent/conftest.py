"""Fixtures for agent tests: tiny real model folders and a live server the test can stop and start
again on the same port (to take the agent offline and bring it back)."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import free_port, make_model_dir


class Restartable:
    """uvicorn serving ``app`` on a fixed loopback port in a thread; ``stop()`` / ``start()``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
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

    def make(app: Any) -> Restartable:
        srv = Restartable(app)
        srv.start()
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.stop()


def model(root: Path, name: str, seed: int = 0) -> Path:
    """A tiny real Hugging Face-style model folder whose weights differ by ``seed``."""
    return make_model_dir(root, name, weights=struct.pack("<16f", *range(seed, seed + 16)))
