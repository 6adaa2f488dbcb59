"""The server restarted in the middle of a report (issue 6): nothing acknowledged is lost, nothing
is applied twice.

The real ``modelward server`` runs in a child process (SQLite and PostgreSQL) and is SIGKILLed at
points of a report sent over a plain socket: (a) while the body is still being sent; (b) after its
last byte: at once (racing the read and parse of a ~1 MB report), and as soon as the report is
committed but before its answer is read. The server is restarted on the same data and database and
the report is resent with the same ``report_id`` and ``seq``, as the agent's spool does. After each
step the host's rows are exactly what the acknowledged reports say, every report id is recorded
once, and later deltas continue.

Then the real agent (with its spool), on PostgreSQL: the server is killed while the agent's report
is inside the server's transaction (held there by a lock on the host's row); the agent's next cycle
resends it from the spool.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from modelward.agent.client import AgentClient
from modelward.agent.enroll import enroll
from modelward.agent.runner import Agent, CycleResult, RunOptions
from modelward.store.db import AppliedReport, Database, Host, HostArtifact, Violation
from tests.agent.conftest import model
from tests.fleet.conftest import artifact, decision, host_info, report
from tests.server.conftest import auth
from tests.server.procs import Server, free_port, servers  # noqa: F401  (servers: a fixture)

BIG = 3000  # artifacts in each (b) report: about 1 MB of JSON, so ingestion takes a while
# When each (b) round kills the server: so many seconds after the last byte of the report was sent,
# or as soon as its id is in the database (committed, its answer not read yet).
KILL_POINTS: tuple[float | str, ...] = (0.0, "on commit")


class Expected:
    """What the acknowledged reports say the host's state is."""

    def __init__(self) -> None:
        self.artifacts: dict[str, str] = {}  # path -> sha256
        self.violations: set[tuple[str, str]] = set()  # (rule, subject)
        self.applied: list[tuple[str, int]] = []  # (report_id, seq) in order
        self.last_ack = 0

    def acknowledge(self, doc: dict[str, Any]) -> None:
        if doc["full"]:
            self.artifacts.clear()
        for path in doc["removed"]["artifacts"]:
            self.artifacts.pop(path, None)
        for a in doc["added"]["artifacts"]:
            self.artifacts[a["path"]] = a["sha256"]
        self.violations = {(d["rule"], d["subject"]["path"]) for d in doc["decisions"]}
        self.applied.append((doc["report_id"], doc["seq"]))
        self.last_ack = doc["seq"]


class Observed:
    """The host's rows as the database holds them (read with the server dead or alive)."""

    def __init__(self, db: Database, host_id: str) -> None:
        with db.session() as s:
            rows = s.execute(
                sa.select(HostArtifact.path, HostArtifact.sha256).where(
                    HostArtifact.host_id == host_id
                )
            ).all()
            self.artifact_rows = len(rows)
            self.artifacts = {r.path: r.sha256 for r in rows}
            vrows = s.execute(
                sa.select(Violation.rule, Violation.subject).where(Violation.host_id == host_id)
            ).all()
            self.violation_rows = len(vrows)
            self.violations = {(r.rule, r.subject) for r in vrows}
            self.applied = [
                (r.report_id, r.seq)
                for r in s.execute(
                    sa.select(AppliedReport.report_id, AppliedReport.seq)
                    .where(AppliedReport.host_id == host_id)
                    .order_by(AppliedReport.id)
                ).all()
            ]
            self.last_ack = s.scalar(sa.select(Host.last_ack_seq).where(Host.id == host_id))


def check(db: Database, host_id: str, want: Expected) -> Observed:
    got = Observed(db, host_id)
    assert got.artifact_rows == len(got.artifacts), "duplicate artifact rows"
    assert got.violation_rows == len(got.violations), "duplicate violation rows"
    assert got.artifacts == want.artifacts
    assert got.violations == want.violations
    assert got.applied == want.applied, "each acknowledged report applied once, in order"
    assert got.last_ack == want.last_ack
    return got


def delta(seq: int, base: int, paths: list[str], removed: list[str]) -> dict[str, Any]:
    return report(
        seq,
        base=base,
        artifacts=[artifact(p, sha=f"{seq:08x}".ljust(64, "0")) for p in paths],
        removed=removed,
        decisions=[decision(f"rule-{seq}", paths[0])] if paths else [],
    )


def raw_post(port: int, key: str, body: bytes, send: int) -> socket.socket:
    """POST a report over a plain socket: the headers claim ``len(body)``, ``send`` bytes go."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = (
        f"POST /api/v1/agent/report HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    sock.sendall(head.encode() + body[:send])
    return sock


def answered_within(sock: socket.socket, seconds: float) -> bool:
    """Whether a complete HTTP answer arrives within ``seconds`` (before the kill)."""
    if seconds <= 0:
        return False
    deadline = time.monotonic() + seconds
    data = b""
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, OSError):
            break
        if not chunk:
            break
        data += chunk
        head, sep, rest = data.partition(b"\r\n\r\n")
        if sep:
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if len(rest) >= length:
                assert head.startswith(b"HTTP/1.1 200"), data[:300]
                return True
    return False


def wait_for(cond: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.02)


def test_server_killed_mid_report(
    db_url: str,
    tmp_path: Path,
    servers: list[Server],  # noqa: F811  (the fixture imported above)
) -> None:
    dbname = db_url.split(":", 1)[0].split("+", 1)[0]
    data, log = tmp_path / "data", tmp_path / "server.log"

    def start() -> Server:
        servers.append(Server(data, db_url, log))
        return servers[-1]

    server = start()
    created = httpx.post(f"{server.url}/api/v1/fleet/secrets", json={"team": "eng"}, headers=auth())
    assert created.status_code == 201, created.text
    with AgentClient(server.url) as c:
        enrolled = c.enroll(created.json()["secret"], host_info(1))
    key, host_id = enrolled.host_key, enrolled.host_id
    db = Database(db_url)
    want = Expected()
    try:

        def send(doc: dict[str, Any], *, applied: bool) -> None:
            with AgentClient(server.url, key) as c:
                ack = c.report(doc)
            assert (ack.seq, ack.applied) == (doc["seq"], applied)
            if applied:
                want.acknowledge(doc)

        # seq 1: a full report, acknowledged
        first = report(1, artifacts=[artifact(f"/m/base-{i}") for i in range(20)])
        first["decisions"] = [decision("rule-1", "/m/base-0")]
        send(first, applied=True)
        check(db, host_id, want)

        # (a) killed while the body is still being sent: nothing of it is stored
        doc = delta(2, 1, [f"/m/a-{i}" for i in range(200)], ["/m/base-1"])
        body = json.dumps(doc).encode()
        sock = raw_post(server.port, key, body, len(body) // 2)
        time.sleep(0.3)  # the server is reading the body
        server.kill()
        sock.close()
        check(db, host_id, want)  # seq 2 was never acknowledged: not there
        server = start()
        send(doc, applied=True)  # the spool's resend: same report_id and seq
        check(db, host_id, want)

        # (b) killed right after the last byte, racing the parse and the commit
        windows: list[str] = []
        for point in KILL_POINTS:
            seq = want.last_ack + 1
            doc = delta(
                seq,
                want.last_ack,
                [f"/m/b{seq}-{i}" for i in range(BIG)],
                [p for p in sorted(want.artifacts) if p.startswith("/m/a-")][:10],
            )
            body = json.dumps(doc).encode()
            sock = raw_post(server.port, key, body, len(body))
            if isinstance(point, float):
                answered = answered_within(sock, point)
            else:
                answered = False
                wait_for(lambda rid=(doc["report_id"], seq): rid in Observed(db, host_id).applied)
            server.kill()
            sock.close()
            got = Observed(db, host_id)
            committed = (doc["report_id"], seq) in got.applied
            assert committed or not answered, "an acknowledged report was lost"
            window = (
                "answered"
                if answered
                else "committed, unanswered"
                if committed
                else "not committed"
            )
            windows.append(f"kill {point}: {window}")
            if committed:
                want.acknowledge(doc)  # the kill landed after the commit: all of it is there
            check(db, host_id, want)
            server = start()
            # the resend is acknowledged: "already applied" if the commit won the race
            send(doc, applied=not committed)
            check(db, host_id, want)

        # later deltas continue from the last acknowledged seq
        seq = want.last_ack + 1
        send(delta(seq, seq - 1, ["/m/after"], ["/m/base-2"]), applied=True)
        got = check(db, host_id, want)
        assert got.last_ack == 2 + len(KILL_POINTS) + 1
        assert len(got.applied) == len({rid for rid, _ in got.applied})
        print(f"\n{dbname}: " + "; ".join(windows))  # which window each round hit (-s)
    finally:
        db.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # a row lock pins the window
def test_agent_resends_after_server_killed_inside_ingestion(
    db_url: str,
    tmp_path: Path,
    servers: list[Server],  # noqa: F811  (the fixture imported above)
) -> None:
    """The real agent and its spool: the server is SIGKILLed while the agent's report is inside
    its transaction (held there by a lock on the host's row), restarted on the same port; the
    agent's next cycle resends the spooled report, which is applied once, and goes on."""
    data, log, port = tmp_path / "data", tmp_path / "server.log", free_port()
    server = Server(data, db_url, log, port)
    servers.append(server)
    created = httpx.post(f"{server.url}/api/v1/fleet/secrets", json={}, headers=auth())
    assert created.status_code == 201, created.text
    (secret := tmp_path / "secret.txt").write_text(created.json()["secret"] + "\n")
    (state_dir := tmp_path / "state").mkdir()
    (state_dir / "machine-id").write_text(os.urandom(8).hex())
    roots = tmp_path / "models"
    roots.mkdir()
    host_id = enroll(server.url, secret, state_dir).host_id
    opts = RunOptions(roots=(roots,), processes=False, runtimes=False, vault=tmp_path / "vault")
    db = Database(db_url)

    def on_disk() -> set[str]:
        return {str(p) for p in roots.rglob("*.safetensors")}

    try:
        model(roots, "m0")
        first = Agent(state_dir, opts).cycle()
        assert (first.pending, first.offline) == (0, False)
        assert set(Observed(db, host_id).artifacts) == on_disk()

        model(roots, "m1", seed=1)
        outcome: list[CycleResult | BaseException] = []

        def run() -> None:
            try:
                outcome.append(Agent(state_dir, opts).cycle())
            except BaseException as exc:  # reported by the assertion below
                outcome.append(exc)

        with db.engine.connect() as holder:
            holder.execute(
                sa.text("SELECT id FROM fleet_hosts WHERE id = :h FOR UPDATE"), {"h": host_id}
            )
            me = holder.scalar(sa.text("SELECT pg_backend_pid()"))
            thread = threading.Thread(target=run, daemon=True)
            thread.start()
            with db.engine.connect() as probe:  # the server's writer waits for our row lock
                wait_for(
                    lambda: probe.scalar(
                        sa.text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE :me = ANY(pg_blocking_pids(pid))"
                        ),
                        {"me": me},
                    ),
                    timeout=60,
                )
            server.kill()  # inside the report's transaction: it must roll back
            holder.rollback()
        thread.join(60)
        assert not thread.is_alive(), "the agent hung on a dead server"
        cut = outcome[0]
        assert isinstance(cut, CycleResult), cut
        assert cut.offline and cut.pending >= 1, cut  # not acknowledged: kept in the spool
        got = Observed(db, host_id)
        assert [s for _, s in got.applied] == [first.seq]
        assert got.last_ack == first.seq
        assert not any("/m1/" in p for p in got.artifacts)

        servers.append(server := Server(data, db_url, log, port))  # same address
        again = Agent(state_dir, opts).cycle()
        assert (again.pending, again.offline) == (0, False), again
        assert again.sent >= 2  # the spooled report, then this cycle's
        got = Observed(db, host_id)
        seqs = [s for _, s in got.applied]
        assert seqs == sorted(set(seqs)) and seqs[0] == first.seq, got.applied
        assert cut.seq in seqs and got.last_ack == again.seq
        assert len({rid for rid, _ in got.applied}) == len(got.applied)
        assert set(got.artifacts) == on_disk()
        assert got.artifact_rows == len(got.artifacts)

        (roots / "m0" / "model.safetensors").unlink()  # later deltas continue
        model(roots, "m2", seed=2)
        last = Agent(state_dir, opts).cycle()
        assert (last.pending, last.offline, last.full) == (0, False, False), last
        got = Observed(db, host_id)
        assert set(got.artifacts) == on_disk() and got.last_ack == last.seq
    finally:
        db.dispose()
