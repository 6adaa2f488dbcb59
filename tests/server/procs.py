"""A real ``modelward server`` in a child process, for the tests that kill it (SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import ADMIN_TOKEN, auth, free_port


class Server:
    """``modelward server`` in a child process on a loopback port; ``kill()`` is SIGKILL."""

    def __init__(self, data: Path, db_url: str, log: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        env = {**os.environ, "MODELWARD_ADMIN_TOKEN": ADMIN_TOKEN}
        cmd = [sys.executable, "-m", "modelward", "server", "--port", str(self.port)]
        cmd += ["--data", str(data), "--database", db_url, "--log-level", "warning"]
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=self._log)
        deadline = time.monotonic() + 60  # a loaded 2-core machine: hang guard only
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text(errors='replace')}")
            try:
                if httpx.get(f"{self.url}/api/v1/hub/repos", headers=auth()).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts; stopped at its end."""
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()
