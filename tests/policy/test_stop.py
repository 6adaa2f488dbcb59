"""The optional ``stop`` action: a real runtime-like process listening on 0.0.0.0 is stopped.

The process is a harmless HTTP server started as ``python -m open_webui`` (a stand-in package in
the test's folder), so that the real inventory finds it as the open-webui runtime with its pid and
its exposed socket. The inventory handed to ``policy enforce`` keeps only that runtime: enforce
never gets the chance to stop anything else running on the machine.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from modelward.cli import main
from modelward.inventory import InventoryOptions, collect
from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.policy.stop import stop_decisions

SERVER = """\
import http.server, sys
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def listening(pid: int, port: int) -> bool:
    try:
        conns = psutil.Process(pid).net_connections(kind="inet")
    except psutil.Error:
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    pkg = tmp_path / "pkgs" / "open_webui"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(SERVER)
    env = dict(os.environ, PYTHONPATH=str(tmp_path / "pkgs"))
    yield from _serving("open_webui", tmp_path, env)


def _serving(
    module: str, cwd: Path, env: dict[str, str] | None = None, after: tuple[str, ...] = ()
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m MODULE PORT AFTER...`` started in ``cwd`` and yielded once it listens on a
    free port; the test's own process, stopped at the end if nothing else did."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", module, str(port), *after],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not listening(proc.pid, port):
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(10)


def inventory_of(proc: subprocess.Popen[bytes], tmp_path: Path) -> Path:
    """The real inventory (processes included), keeping only the runtime of ``proc``."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    options = InventoryOptions(
        probes=False,
        system_packages=False,
        cache=tmp_path / "cache.sqlite",
        env={"HOME": str(home), "PATH": os.environ.get("PATH", "")},
    )
    doc = collect([home], options).to_dict()
    mine = [r for r in doc["runtimes"] if proc.pid in r["pids"]]
    assert [r["name"] for r in mine] == ["open-webui"]
    assert any(x["exposed"] for x in mine[0]["listen"])
    doc["runtimes"] = mine
    doc["packages"] = []
    path = tmp_path / "inv.json"
    path.write_text(json.dumps(doc))
    return path


def enforce(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(["policy", "enforce", *args])
    out, _err = capsys.readouterr()
    assert exc.value.code in (0, None)
    return out


def test_enforce_stops_an_exposed_runtime_only_with_the_flag_and_apply(
    server: tuple[subprocess.Popen[bytes], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "data"))
    proc, port = server
    inv = inventory_of(proc, tmp_path)
    off = tmp_path / "off.yaml"
    off.write_text("stop_exposed_runtimes: false\n")
    on = tmp_path / "on.yaml"
    on.write_text("stop_exposed_runtimes: true\n")
    common = ["--inventory", str(inv), "--vault", str(tmp_path / "vault")]

    out = enforce([*common, "--settings", str(off), "--apply"], capsys)
    assert "stop" not in out
    assert proc.poll() is None and listening(proc.pid, port)

    out = enforce([*common, "--settings", str(on)], capsys)
    assert f"would stop open-webui (pid {proc.pid}, listening on 0.0.0.0:{port})" in out
    assert "[runtime-exposed]" in out
    time.sleep(0.2)
    assert proc.poll() is None and listening(proc.pid, port)

    out = enforce([*common, "--settings", str(on), "--apply"], capsys)
    assert f"stopped open-webui (pid {proc.pid}, listening on 0.0.0.0:{port})" in out
    assert proc.wait(10) is not None and not listening(proc.pid, port)


def stop(name: str = "open-webui") -> Decision:
    return Decision(
        "runtime-exposed", "stop", Severity.HIGH, Subject("runtime", name=name), "exposed"
    )


def runtime(pid: int, port: int) -> dict[str, Any]:
    return {
        "name": "open-webui",
        "pids": [pid],
        "listen": [{"address": "0.0.0.0", "port": port, "exposed": True}],
    }


def test_a_pid_that_no_longer_listens_on_the_port_is_left_alone(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, _port = server
    other = free_port()
    doc = {"runtimes": [runtime(proc.pid, other)]}  # the inventory says another port: pid reused?
    lines = stop_decisions([stop()], doc, apply=True)
    assert lines == [f"left open-webui (pid {proc.pid}) alone: it listens on no network address"]
    assert proc.poll() is None


def test_a_gone_process_and_other_actions_are_reported_not_acted_on(
    server: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = server
    deny = Decision("runtime-exposed", "deny", Severity.HIGH, Subject("runtime", name="x"), "m")
    doc = {"runtimes": [runtime(proc.pid, port)]}
    assert stop_decisions([deny], doc, apply=True) == []
    assert stop_decisions([stop("ollama")], doc, apply=True) == [
        "no process of ollama to stop [runtime-exposed] exposed"
    ]
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lines = stop_decisions([stop()], {"runtimes": [runtime(dead.pid, port)]}, apply=True)
    assert lines == [f"left open-webui (pid {dead.pid}) alone: the process is gone"]
    assert proc.poll() is None


@pytest.fixture
def loopback_server(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """``python -m http.server`` on 127.0.0.1 (never reachable from the network), serving an
    empty folder; the test stops it if nothing else did."""
    served = tmp_path / "served"
    served.mkdir()
    yield from _serving("http.server", served, after=("--bind", "127.0.0.1"))


def listed_as(name: str, pid: int, port: int) -> dict[str, Any]:
    """An inventory that lists ``pid`` as runtime ``name``, exposed on ``port``."""
    return {
        "schema": "modelward.inventory/v1",
        "artifacts": [],
        "runtimes": [
            {
                "name": name,
                "running": True,
                "pids": [pid],
                "listen": [{"address": "0.0.0.0", "port": port, "exposed": True}],
                "findings": [],
            }
        ],
    }


def test_a_process_that_is_not_the_runtime_is_not_stopped(
    loopback_server: tuple[subprocess.Popen[bytes], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An http.server listed under "ollama" (a reused pid, a forged inventory) is left alone, even
    when it listens on the inventory's port on a network address (loopback counts as one here)."""
    monkeypatch.setattr("modelward.policy.stop.is_exposed", lambda ip: True)
    proc, port = loopback_server
    doc = listed_as("ollama", proc.pid, port)
    it_is = f"{sys.executable} -m http.server {port} --bind 127.0.0.1"
    expected = [f"pid {proc.pid} on port {port} is not ollama (it is {it_is}): not stopped"]
    assert stop_decisions([stop("ollama")], doc, apply=False) == expected
    assert stop_decisions([stop("ollama")], doc, apply=True) == expected
    time.sleep(0.2)
    assert proc.poll() is None and listening(proc.pid, port)


def test_enforce_reports_the_refusal_as_not_carried_out(
    loopback_server: tuple[subprocess.Popen[bytes], int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELWARD_DATA_DIR", str(tmp_path / "data"))
    proc, port = loopback_server
    inv = tmp_path / "inv.json"
    inv.write_text(json.dumps(listed_as("ollama", proc.pid, port)))
    on = tmp_path / "on.yaml"
    on.write_text("stop_exposed_runtimes: true\n")
    with pytest.raises(SystemExit) as exc:
        main(["policy", "enforce", "--inventory", str(inv), "--settings", str(on), "--apply",
              "--vault", str(tmp_path / "vault")])  # fmt: skip
    out, err = capsys.readouterr()
    assert exc.value.code == 1
    assert f"pid {proc.pid} on port {port} is not ollama (it is " in out
    assert "1 action(s) could not be carried out" in err
    assert proc.poll() is None and listening(proc.pid, port)


def test_a_process_that_is_the_runtime_is_stopped(
    loopback_server: tuple[subprocess.Popen[bytes], int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same server, with a runtime definition that identifies ``python -m http.server``."""
    from modelward.inventory import runtimes

    fake = runtimes.Spec("fake-http", modules=("http.server",))
    monkeypatch.setattr(runtimes, "SPECS", (*runtimes.SPECS, fake))
    monkeypatch.setattr("modelward.policy.stop.is_exposed", lambda ip: True)
    proc, port = loopback_server
    doc = listed_as("fake-http", proc.pid, port)
    where = f"127.0.0.1:{port}"
    assert stop_decisions([stop("fake-http")], doc, apply=False) == [
        f"would stop fake-http (pid {proc.pid}, listening on {where}) [runtime-exposed] exposed"
    ]
    assert proc.poll() is None
    assert stop_decisions([stop("fake-http")], doc, apply=True) == [
        f"stopped fake-http (pid {proc.pid}, listening on {where}) [runtime-exposed] exposed"
    ]
    assert proc.wait(10) is not None
