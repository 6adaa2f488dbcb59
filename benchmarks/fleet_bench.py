"""Load generator for the fleet console (issue 6, "Scale"): simulated agents report over loopback
to a real ``modelward server`` process on PostgreSQL; then fleet queries over a large fleet.

Run from the repository with the project's dev install active and PostgreSQL on 127.0.0.1::

    python benchmarks/fleet_bench.py                       # 2,000 agents, 20 s, 20,000-host queries
    python benchmarks/fleet_bench.py --agents 10000 --query-hosts 100000     # the issue's sizes
    python benchmarks/fleet_bench.py --skip-queries --agents 500 --duration 5

Targets (issue 6): report ingestion >= 500 reports/s on this 2-core machine with PostgreSQL;
fleet queries over 100,000 hosts with 50 artifacts each answer in under 500 ms. Figures only:
it prints them (and the targets) and exits 0; bounded in agents, time and rows.

Phases: (1) enroll every agent; (2) each sends a full report of ``--artifacts`` artifacts and two
policy decisions (each phase at most ``--phase-limit`` seconds); (3) for ``--duration`` seconds
agents send delta reports (one artifact changed, the decisions again) as fast as the server
acknowledges them, ``--concurrency`` keep-alive connections in flight. Each phase prints its rate
and the CPU milliseconds per item of the server, its PostgreSQL backends and this generator (raw
asyncio streams, bodies from templates serialised once, so that it stays cheap);
(4) ``--query-hosts`` hosts with their artifacts are bulk-loaded (COPY) and each console query is
timed over HTTP (median of 3, first page of 100).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG = os.environ.get("MODELWARD_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
ADMIN = "mw_fleet-bench-admin-token-0123456789abcdefghijklmno"
SHARED = [hashlib.sha256(f"shared-{i}".encode()).hexdigest() for i in range(20)]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def artifact(host: int, j: int, gen: int = 0) -> dict[str, Any]:
    """Artifact ``j`` of agent ``host`` (the first 20 are shared by every host: one sha256)."""
    sha = SHARED[j] if j < len(SHARED) else f"{host:024x}{j:08x}{gen:032x}"
    return {
        "path": f"/home/u{host}/models/m{j}/model.safetensors",
        "size": 1000 + j,
        "sha256": sha,
        "format": "safetensors" if j % 3 else "gguf",
        "source": {"kind": "huggingface", "name": None, "repo": f"org/m{j}", "revision": None},
        "license": {"id": ("apache-2.0", "llama3.1", "mit", "unknown")[j % 4]},
        "metadata": {},
        "findings": [],
        "in_use": False,
    }


def decisions(host: int) -> list[dict[str, Any]]:
    return [
        {
            "rule": "unapproved-model",
            "action": "warn",
            "severity": ("high", "medium")[k],
            "subject": {"kind": "artifact", "path": f"/home/u{host}/models/m{40 + k}/x"},
            "message": "not approved",
            "waived_by": None,
        }
        for k in range(2)
    ]


def report(host: int, seq: int, base: int | None, artifacts: list[dict[str, Any]]) -> bytes:
    doc = {
        "schema": "modelward.agent-report/v1",
        "report_id": str(uuid.uuid4()),
        "seq": seq,
        "base": base,
        "full": base is None,
        "collected_at": "2026-11-25T10:00:00Z",
        "host": {},
        "added": {"artifacts": artifacts, "runtimes": [], "packages": []},
        "removed": {"artifacts": [], "runtimes": [], "packages": []},
        "decisions": decisions(host),
        "actions": [],
        "agent": {"version": "bench", "rss_bytes": 1, "cpu_percent": 0.1, "spool_dropped": 0},
    }
    return json.dumps(doc).encode()


# Bodies are made from templates serialised once (JSON of agent 0 with its numbers swapped for
# placeholders): a report costs the generator a few string operations, not a json.dumps.
_HOST_MARK = 7_777_777_777


def _template(seq: int, base: int | None, artifacts: list[dict[str, Any]]) -> bytes:
    raw = report(_HOST_MARK, seq, base, artifacts).decode()
    doc = json.loads(raw)
    raw = raw.replace(doc["report_id"], "%(rid)s").replace(str(_HOST_MARK), "%(host)d")
    raw = raw.replace(f"{_HOST_MARK:024x}", "%(hosthex)s")
    if base is not None:
        raw = raw.replace(f'"seq": {seq}', '"seq": %(seq)d').replace(
            f'"base": {base}', '"base": %(base)d'
        )
        raw = raw.replace(f"{seq:032x}", "%(genhex)s")
    return raw.encode()


class Bodies:
    """Pre-serialised report bodies for agent ``i``: full (``--artifacts``) and delta (the last
    artifact changed, the decisions again), each with a fresh report_id."""

    def __init__(self, artifacts: int) -> None:
        self.full = _template(1, None, [artifact(_HOST_MARK, j) for j in range(artifacts)])
        self.delta = _template(
            11, 10, [artifact(_HOST_MARK, artifacts - 1, 11)]
        )  # 11/10: placeholders
        self._run = uuid.uuid4().hex[:16]
        self._n = 0

    def _rid(self) -> str:
        self._n += 1
        h = f"{self._run}{self._n:016x}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"

    def full_body(self, host: int) -> bytes:
        return self.full % {
            b"rid": self._rid().encode(),
            b"host": host,
            b"hosthex": f"{host:024x}".encode(),
        }

    def delta_body(self, host: int, seq: int) -> bytes:
        return self.delta % {
            b"rid": self._rid().encode(),
            b"host": host,
            b"hosthex": f"{host:024x}".encode(),
            b"seq": seq,
            b"base": seq - 1,
            b"genhex": f"{seq:032x}".encode(),
        }


class Conn:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams (what an agent's client does,
    without a client library's per-request cost in the generator)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes, auth: str = ""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            + (f"Authorization: Bearer {auth}\r\n" if auth else "")
            + "\r\n"
        )
        self.writer.write(head.encode() + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split()[1])
        length = 0
        close = False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        data = await self.reader.readexactly(length)
        if close:
            self.writer.close()
            self.writer = None
        return status, data


def _proc_cpu(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` (those still alive)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's worker processes)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    out, todo = [root], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out += kids
        todo += kids
    return out


class Meter:
    """CPU seconds of the server, its PostgreSQL backends (and PostgreSQL's shared background
    processes) and this generator over a phase, with the load average. Backends come and go
    (the pool's overflow connections): :meth:`poll` runs every second and keeps the last CPU
    reading of every backend seen, so one that exited still counts (up to its last poll)."""

    def __init__(self, server_pid: int, app_name: str) -> None:
        import sqlalchemy as sa

        self.server_pid, self.app_name = server_pid, app_name
        self.engine = sa.create_engine(PG, pool_size=1)
        self.backends: dict[int, float] = {}
        self.shared: list[int] = []

    def poll(self) -> None:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT pid, application_name, backend_type FROM pg_stat_activity")
            ).all()
        self.shared = [int(r.pid) for r in rows if r.backend_type != "client backend"]
        for r in rows:
            if r.application_name == self.app_name:
                cpu = _proc_cpu([int(r.pid)])
                if cpu:
                    self.backends[int(r.pid)] = cpu

    def sample(self) -> dict[str, Any]:
        self.poll()
        me = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "server": _proc_cpu(_tree(self.server_pid)),
            "postgres": dict(self.backends),
            "postgres_shared": _proc_cpu(self.shared),
            "generator": me.ru_utime + me.ru_stime,
            "wall": time.perf_counter(),
        }

    @staticmethod
    def delta(before: dict[str, Any], after: dict[str, Any], count: int) -> dict[str, Any]:
        out: dict[str, Any] = {"count": count, "wall_s": after["wall"] - before["wall"]}
        out["per_s"] = count / out["wall_s"] if out["wall_s"] else 0.0
        for k in ("server", "postgres", "postgres_shared", "generator"):
            if k == "postgres":  # a backend opened during the phase: all its CPU is the phase's
                used = sum(v - before[k].get(pid, 0.0) for pid, v in after[k].items())
            else:
                used = after[k] - before[k]
            out[f"cpu_{k}_s"] = used
            out[f"cpu_{k}_ms_per_report"] = 1000 * used / count if count else 0.0
        out["loadavg"] = os.getloadavg()
        return out


async def run_agents(
    url: str, args: argparse.Namespace, secret: str, meter: Meter
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    conns = [Conn(host, int(port)) for _ in range(args.concurrency)]
    keys: list[str] = [""] * args.agents
    seqs = [0] * args.agents
    bodies = Bodies(args.artifacts)
    run = uuid.uuid4().hex[:12]
    results: dict[str, Any] = {"agents": args.agents, "concurrency": args.concurrency}

    async def phase(name: str, n: int, seconds: float, one: Any) -> int:
        """``one(conn, i)`` for i in 0..n-1 over the connections, until done or ``seconds``."""
        next_i = 0
        done = 0
        deadline = time.perf_counter() + seconds

        async def worker(conn: Conn) -> None:
            nonlocal next_i, done
            while time.perf_counter() < deadline:
                i = next_i
                if n and i >= n:
                    return
                next_i += 1
                await one(conn, i)
                done += 1

        before = meter.sample()
        running = True

        async def poll() -> None:
            while running:
                await asyncio.to_thread(meter.poll)
                await asyncio.sleep(1.0)

        poller = asyncio.create_task(poll())
        await asyncio.gather(*(worker(c) for c in conns))
        running = False
        await poller
        after = meter.sample()
        results[name] = Meter.delta(before, after, done)
        r = results[name]
        log(
            f"{name}: {done} in {r['wall_s']:.1f} s = {r['per_s']:.0f}/s; CPU ms per item: server "
            f"{r['cpu_server_ms_per_report']:.2f}, postgres {r['cpu_postgres_ms_per_report']:.2f} "
            f"(+shared {r['cpu_postgres_shared_ms_per_report']:.2f}), generator "
            f"{r['cpu_generator_ms_per_report']:.2f}; load {r['loadavg'][0]:.2f}"
        )
        return done

    async def enroll(conn: Conn, i: int) -> None:
        info = {
            "hostname": f"bench-{i}",
            "machine_id": f"bench-{run}-{i}",
            "os": "linux",
            "os_version": "6.1",
            "user": f"u{i}",
            "agent_version": "b",
        }
        status, data = await conn.request(
            "POST", "/api/v1/agent/enroll", json.dumps({"secret": secret, "host": info}).encode()
        )
        if status != 201:
            raise RuntimeError(f"enroll {i}: {status} {data[:200]!r}")
        keys[i] = json.loads(data)["host_key"]

    async def send(conn: Conn, i: int, body: bytes) -> None:
        status, data = await conn.request("POST", "/api/v1/agent/report", body, keys[i])
        if status != 200 or b'"applied":true' not in data.replace(b" ", b""):
            raise RuntimeError(f"agent {i}: {status} {data[:200]!r}")

    async def full(conn: Conn, i: int) -> None:
        await send(conn, i, bodies.full_body(i))
        seqs[i] = 1

    enrolled = await phase("enroll", args.agents, args.phase_limit, enroll)
    fulls = await phase("full", enrolled, args.phase_limit, full)
    ready = [i for i in range(fulls) if seqs[i]]

    async def delta(conn: Conn, k: int) -> None:
        # round-robin over the agents whose full report was applied; one report of an agent
        # in flight at a time (each agent's next delta is based on its last acknowledged one)
        i = ready[k % len(ready)]
        while seqs[i] < 0:  # this agent's previous report is still in flight
            await asyncio.sleep(0.001)
        seq = seqs[i] + 1
        seqs[i] = -1
        await send(conn, i, bodies.delta_body(i, seq))
        seqs[i] = seq

    await phase("delta", 0, args.duration, delta)
    for c in conns:
        if c.writer is not None:
            c.writer.close()
    return results


def bulk_load(db_url: str, hosts: int, per_host: int) -> float:
    """COPY ``hosts`` synthetic hosts with ``per_host`` artifacts and 2 violations each."""
    import sqlalchemy as sa

    engine = sa.create_engine(db_url)
    t0 = time.perf_counter()
    with engine.begin() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        with raw.cursor() as cur:
            step = 5000
            for start in range(0, hosts, step):
                ids = [uuid.uuid4().hex for _ in range(start, min(hosts, start + step))]
                with cur.copy(
                    'COPY fleet_hosts (id, machine_id, hostname, os, os_version, "user", '
                    "agent_version, key_hash, enrolled_at, last_seen, last_ack_seq, agent_status) "
                    "FROM STDIN"
                ) as cp:
                    for n, hid in enumerate(ids, start):
                        seen = "2026-01-01T00:00:00Z" if n % 5 == 0 else "now"
                        cp.write_row(
                            (
                                hid,
                                f"m-{hid}",
                                f"load-{n}",
                                "linux",
                                "6.1",
                                f"u{n}",
                                "b",
                                hashlib.sha256(hid.encode()).hexdigest(),
                                "now",
                                seen,
                                1,
                                "{}",
                            )
                        )
                with cur.copy(
                    "COPY fleet_host_artifacts (host_id, path, sha256, size, format, source_kind, "
                    "license_id, in_use, doc) FROM STDIN"
                ) as cp:
                    for n, hid in enumerate(ids, start):
                        for j in range(per_host):
                            a = artifact(n, j)
                            cp.write_row(
                                (
                                    hid,
                                    a["path"],
                                    a["sha256"],
                                    a["size"],
                                    a["format"],
                                    "huggingface",
                                    a["license"]["id"],
                                    False,
                                    "{}",
                                )
                            )
                with cur.copy(
                    "COPY fleet_violations (host_id, rule, severity, action, subject_kind, subject, "
                    "message, waived, since) FROM STDIN"
                ) as cp:
                    for hid in ids:
                        for sev in ("high", "medium"):
                            cp.write_row(
                                (
                                    hid,
                                    "unapproved-model",
                                    sev,
                                    "warn",
                                    "artifact",
                                    "/x",
                                    "not approved",
                                    False,
                                    "now",
                                )
                            )
                log(f"  loaded {min(hosts, start + step)}/{hosts} hosts")
        conn.exec_driver_sql(
            "INSERT INTO fleet_host_licenses (host_id, license_id, artifacts) "
            "SELECT host_id, license_id, count(*) FROM fleet_host_artifacts "
            "GROUP BY host_id, license_id ON CONFLICT DO NOTHING"
        )
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - t0


def time_queries(url: str) -> dict[str, float]:
    import httpx

    queries = {
        "hosts (first page)": "/api/v1/fleet/hosts",
        "hosts offline": "/api/v1/fleet/hosts?state=offline",
        "artifacts by sha256": f"/api/v1/fleet/artifacts?sha256={SHARED[3]}",
        "artifacts unapproved": "/api/v1/fleet/artifacts?unapproved=true",
        "violations high": "/api/v1/fleet/violations?severity=high",
        "violations summary": "/api/v1/fleet/violations/summary",
        "licenses": "/api/v1/fleet/licenses",
        "trend (30 days)": "/api/v1/fleet/trend",
        "metrics": "/metrics",
    }
    out: dict[str, float] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=600) as h:
        for name, path in queries.items():
            times = []
            for _ in range(3):
                t0 = time.perf_counter()
                r = h.get(path)
                times.append(time.perf_counter() - t0)
                r.raise_for_status()
            out[name] = statistics.median(times) * 1000
            log(f"  {name}: {out[name]:.0f} ms")
    return out


def app_factory() -> Any:
    """The app for ``uvicorn --factory --workers N`` (settings from the environment)."""
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    return create_app(
        ServerSettings(
            data_dir=Path(os.environ["BENCH_DATA"]),
            database_url=os.environ["BENCH_DB"],
            admin_token=ADMIN,
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--agents", type=int, default=2000)
    ap.add_argument(
        "--phase-limit", type=float, default=300.0, help="seconds at most for enrollment / full"
    )
    ap.add_argument("--artifacts", type=int, default=50)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument(
        "--concurrency",
        type=int,
        default=64,
        help="requests in flight (keep-alive connections); 10,000 agents reporting at random "
        "times keep many in flight, and the server's group commit applies them together",
    )
    ap.add_argument("--query-hosts", type=int, default=20000)
    ap.add_argument("--skip-queries", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="server processes (uvicorn workers)")
    ap.add_argument("--database", default=PG, help="PostgreSQL URL (a fresh schema is used)")
    args = ap.parse_args()

    import sqlalchemy as sa

    schema = "bench_" + uuid.uuid4().hex[:10]
    admin_engine = sa.create_engine(args.database)
    with admin_engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    app_name = "fleet-bench-" + schema
    db_url = f"{args.database}?options=-csearch_path%3D{schema}&application_name={app_name}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {"cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MODELWARD_ADMIN_TOKEN": ADMIN}
        if args.workers > 1:
            # uvicorn's own workers over the app factory below (``modelward server`` runs one)
            env.update(BENCH_DATA=str(Path(tmp) / "data"), BENCH_DB=db_url)
            env["PYTHONPATH"] = os.pathsep.join(
                [str(Path(__file__).parent), env.get("PYTHONPATH", "")]
            )
            cmd = [
                sys.executable,
                "-m",
                "uvicorn",
                "fleet_bench:app_factory",
                "--factory",
                "--workers",
                str(args.workers),
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ]
        else:
            cmd = [
                sys.executable,
                "-m",
                "modelward",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data",
                str(Path(tmp) / "data"),
                "--database",
                db_url,
                "--log-level",
                "warning",
            ]
        server = subprocess.Popen(cmd, env=env)
        try:
            import httpx

            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            r = httpx.post(
                f"{url}/api/v1/fleet/secrets",
                json={"team": "bench"},
                headers={"Authorization": f"Bearer {ADMIN}"},
            )
            r.raise_for_status()
            results["loadavg_start"] = os.getloadavg()
            meter = Meter(server.pid, app_name)
            results["ingest"] = asyncio.run(run_agents(url, args, r.json()["secret"], meter))
            if not args.skip_queries:
                extra = max(0, args.query_hosts - args.agents)
                log(f"bulk-loading {extra} more hosts x {args.artifacts} artifacts ...")
                results["load_s"] = bulk_load(db_url, extra, args.artifacts)
                results["query_hosts"] = extra + args.agents
                results["queries_ms"] = time_queries(url)
        finally:
            server.terminate()
            server.wait(30)
            with admin_engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin_engine.dispose()

    ing = results["ingest"]
    print(f"fleet bench on {results['cpus']} CPUs, PostgreSQL, {args.workers} server process(es)")
    print(
        f"  agents {ing['agents']}, {ing['concurrency']} connections; load average "
        f"{results['loadavg_start'][0]:.2f} at the start"
    )
    print("  phase      count     /s   CPU ms each: server postgres (+shared) generator  load")
    for name in ("enroll", "full", "delta"):
        r = ing[name]
        print(
            f"  {name:7} {r['count']:8} {r['per_s']:6.0f}   {r['cpu_server_ms_per_report']:17.2f} "
            f"{r['cpu_postgres_ms_per_report']:8.2f} {r['cpu_postgres_shared_ms_per_report']:9.2f} "
            f"{r['cpu_generator_ms_per_report']:9.2f} {r['loadavg'][0]:5.2f}"
        )
    print(f"  (full: {args.artifacts} artifacts each; target >= 500 reports/s)")
    if "queries_ms" in results:
        print(
            f"  queries over {results['query_hosts']} hosts x {args.artifacts} artifacts "
            f"(loaded in {results['load_s']:.0f} s; target < 500 ms):"
        )
        for name, ms in results["queries_ms"].items():
            print(f"    {name:24} {ms:7.0f} ms")
    out = Path(__file__).with_name("out")
    out.mkdir(exist_ok=True)
    path = out / f"fleet-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({**results, "args": vars(args)}, indent=2))
    print(f"  figures: {path}")


if __name__ == "__main__":
    main()
