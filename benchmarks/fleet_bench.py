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
policy decisions; (3) for ``--duration`` seconds agents send delta reports (one artifact changed,
the decisions again) as fast as the server acknowledges them, ``--concurrency`` in flight;
(4) ``--query-hosts`` hosts with their artifacts are bulk-loaded (COPY) and each console query is
timed over HTTP (median of 3, first page of 100).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
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
    sha = SHARED[j] if j < len(SHARED) else hashlib.sha256(f"{host}-{j}-{gen}".encode()).hexdigest()
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


async def run_agents(url: str, args: argparse.Namespace, secret: str) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    sem = asyncio.Semaphore(args.concurrency)
    keys: list[str] = [""] * args.agents
    seqs = [0] * args.agents
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as http:

        async def enroll(i: int) -> None:
            async with sem:
                host = {
                    "hostname": f"bench-{i}",
                    "machine_id": f"bench-{i}-{uuid.uuid4().hex}",
                    "os": "linux",
                    "os_version": "6.1",
                    "user": f"u{i}",
                    "agent_version": "b",
                }
                r = await http.post("/api/v1/agent/enroll", json={"secret": secret, "host": host})
                r.raise_for_status()
                keys[i] = r.json()["host_key"]

        t0 = time.perf_counter()
        await asyncio.gather(*(enroll(i) for i in range(args.agents)))
        enroll_s = time.perf_counter() - t0
        log(f"enrolled {args.agents} agents in {enroll_s:.1f} s")

        async def send(i: int, body: bytes) -> None:
            r = await http.post(
                "/api/v1/agent/report",
                content=body,
                headers={"Authorization": f"Bearer {keys[i]}", "Content-Type": "application/json"},
            )
            if r.status_code != 200 or not r.json().get("applied"):
                raise RuntimeError(f"agent {i}: {r.status_code} {r.text[:200]}")

        async def full(i: int) -> None:
            async with sem:
                seqs[i] = 1
                await send(i, report(i, 1, None, [artifact(i, j) for j in range(args.artifacts)]))

        t0 = time.perf_counter()
        await asyncio.gather(*(full(i) for i in range(args.agents)))
        full_s = time.perf_counter() - t0
        log(f"{args.agents} full reports ({args.artifacts} artifacts) in {full_s:.1f} s")

        done = 0
        deadline = time.perf_counter() + args.duration

        async def worker(w: int) -> None:
            nonlocal done
            i = w
            while time.perf_counter() < deadline:
                base = seqs[i]
                seqs[i] = base + 1
                body = report(i, base + 1, base, [artifact(i, args.artifacts - 1, base + 1)])
                await send(i, body)
                done += 1
                i = i + args.concurrency if i + args.concurrency < args.agents else w

        t0 = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(min(args.concurrency, args.agents))))
        delta_s = time.perf_counter() - t0
    return {
        "agents": args.agents,
        "enroll_per_s": args.agents / enroll_s,
        "full_reports_per_s": args.agents / full_s,
        "delta_reports": done,
        "delta_reports_per_s": done / delta_s,
    }


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
    ap.add_argument("--artifacts", type=int, default=50)
    ap.add_argument("--duration", type=float, default=20.0)
    ap.add_argument("--concurrency", type=int, default=16)
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
    db_url = f"{args.database}?options=-csearch_path%3D{schema}"
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
            results["ingest"] = asyncio.run(run_agents(url, args, r.json()["secret"]))
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
    print(f"  agents                    {ing['agents']}")
    print(f"  enrollments/s             {ing['enroll_per_s']:.0f}")
    print(
        f"  full reports/s            {ing['full_reports_per_s']:.0f}   ({args.artifacts} artifacts each)"
    )
    print(f"  delta reports/s           {ing['delta_reports_per_s']:.0f}   (target >= 500)")
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
