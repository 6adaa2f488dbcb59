"""Fleet: enrollment secrets, enrollment, host keys and exactly-once report ingestion.

Secrets (``mwe_...``) and host keys (``mwh_...``) are random and stored only as their SHA-256.
A report is applied in ONE transaction that locks the host's row, records its ``report_id``
(unique) and moves the host's ``last_ack_seq``: a resent report finds its id and is acknowledged
without being applied again; a delta whose ``base`` is not ``last_ack_seq`` is refused with
``resync_required`` (the agent then sends a full report); a report older than the last one applied
is acknowledged and ignored (it would roll the host's state back).

The report route submits reports to a group-commit writer (:meth:`Fleet.submit`): one thread
applies the reports that arrived meanwhile in one transaction, with a few statements per batch
rather than per report (SQLAlchemy Core; on PostgreSQL the rows go as arrays), and answers each
only after the commit. A report refused by its checks is refused alone; when the database fails
a batch, each of its reports is retried in a transaction of its own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import queue
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Integer,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from modelward import __version__
from modelward.errors import BadRequest, Unauthorized
from modelward.fleet.errors import HostKeyRevoked, HostNotFound, ResyncRequired, SecretNotFound
from modelward.fleet.report import DecisionIn, Report
from modelward.store.db import (
    AppliedReport,
    Database,
    EnrollSecret,
    FleetEvent,
    Host,
    HostArtifact,
    HostLicense,
    HostPackage,
    HostRuntime,
    Team,
    Violation,
    ViolationCount,
    utcnow,
)

SECRET_PREFIX = "mwe_"
HOST_KEY_PREFIX = "mwh_"
DEFAULT_TEAM = "default"
_CHUNK = 500  # rows per IN (...) list / executemany batch
AUTH_CACHE_SECONDS = 900.0
"""How long a key seen valid passes the report route's gate without a query. Only a gate: the
key is checked again under the host's row lock when the report is applied, so a key revoked
(or replaced by re-enrollment) meanwhile still gets 401 with nothing stored. Longer than the
agents' report interval, or a large fleet would miss the cache on every report."""
_AUTH_CACHE_SIZE = 100_000
_OCSF_SEVERITY = {"info": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}


@dataclass(frozen=True, slots=True)
class FleetSettings:
    report_interval: int = 300
    """Seconds between an agent's reports (told to the agent at enrollment)."""
    offline_after: int | None = None
    """A host is offline when not seen for this many seconds (default: 3 report intervals)."""

    @property
    def offline_window(self) -> int:
        return self.offline_after or 3 * self.report_interval


@dataclass(frozen=True, slots=True)
class SecretView:
    id: int
    team: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None
    secret: str | None = None
    """In clear only in the answer that created it."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "team": self.team,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
        }
        if self.secret is not None:
            out["secret"] = self.secret
        return out


@dataclass(frozen=True, slots=True)
class Enrollment:
    host_id: str
    host_key: str
    report_interval: int
    bundle_public_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "host_id": self.host_id,
            "host_key": self.host_key,
            "report_interval": self.report_interval,
            "bundle_public_key": self.bundle_public_key,
        }


@dataclass(frozen=True, slots=True)
class Ack:
    ack: int
    applied: bool

    def to_dict(self) -> dict[str, Any]:
        return {"ack": self.ack, "applied": self.applied}


def hash_secret(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _host_text(info: Mapping[str, Any], name: str, limit: int, required: bool = False) -> str:
    value = info.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or len(value) > limit or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise BadRequest(f"host.{name} must be {need} of at most {limit} characters", field=name)
    return value


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


class Fleet:
    """The fleet's library API (no HTTP here): the routes and the tests call it."""

    def __init__(
        self, db: Database, bundle_key_pem: str, settings: FleetSettings | None = None
    ) -> None:
        self.db = db
        self.settings = settings or FleetSettings()
        self._bundle_key_pem = bundle_key_pem
        self._public_pem: str | None = None
        # key hash -> (host id, expiry): lets the report route refuse strangers before reading
        # a body without a database round trip; ingest() checks the key again in its transaction.
        self._auth_cache: dict[str, tuple[str, float]] = {}
        self._writer: _Writer | None = None
        self._writer_lock = threading.Lock()

    # ------------------------------------------------------------------------------- bundle key
    @property
    def bundle_public_key(self) -> str:
        if self._public_pem is None:
            from modelward.fleet.bundle import public_pem

            self._public_pem = public_pem(self._bundle_key_pem)
        return self._public_pem

    @property
    def bundle_private_key(self) -> str:
        return self._bundle_key_pem

    # ---------------------------------------------------------------------------------- secrets
    def create_secret(self, team: str | None, actor: str) -> SecretView:
        """A new enrollment secret for ``team`` (created when new); the secret is shown once."""
        name = (team or DEFAULT_TEAM).strip()
        if not name or len(name) > 200:
            raise BadRequest("team must be 1..200 characters", team=name)
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    team_row = s.scalar(select(Team).where(Team.name == name))
                    if team_row is None:
                        team_row = Team(name=name)
                        s.add(team_row)
                        s.flush()
                    row = EnrollSecret(
                        team_id=team_row.id, secret_hash=hash_secret(secret), created_by=actor
                    )
                    s.add(row)
                    s.flush()
                    return SecretView(row.id, name, row.created_at, actor, None, secret)
            except IntegrityError:  # another request created the team at the same moment
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def secrets(self) -> list[SecretView]:
        with self.db.session() as s:
            rows = s.execute(
                select(EnrollSecret, Team.name).join(Team).order_by(EnrollSecret.id)
            ).all()
            return [
                SecretView(r.id, team, r.created_at, r.created_by, r.revoked_at) for r, team in rows
            ]

    def revoke_secret(self, secret_id: int, actor: str) -> SecretView:
        """No new host may enroll with it; hosts already enrolled keep their keys."""
        with self.db.session() as s:
            row = s.get(EnrollSecret, secret_id)
            if row is None:
                raise SecretNotFound(f"no enrollment secret {secret_id}", id=secret_id)
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            team = s.get_one(Team, row.team_id).name
            return SecretView(row.id, team, row.created_at, row.created_by, row.revoked_at)

    # ------------------------------------------------------------------------------- enrollment
    def enroll(self, secret: str, info: Mapping[str, Any]) -> Enrollment:
        """Exchange a team secret for a host key; a known ``machine_id`` gets a new key (the old
        one stops working) and its next report must be full. A revoked host cannot re-enroll."""
        host_fields = {
            "hostname": _host_text(info, "hostname", 255, required=True),
            "os": _host_text(info, "os", 64),
            "os_version": _host_text(info, "os_version", 200),
            "user": _host_text(info, "user", 200),
            "agent_version": _host_text(info, "agent_version", 64),
        }
        machine_id = _host_text(info, "machine_id", 200, required=True)
        if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
            raise Unauthorized("unknown or revoked enrollment secret")
        key = HOST_KEY_PREFIX + secrets.token_urlsafe(32)
        for attempt in range(2):
            try:
                with self.db.session() as s:
                    row = s.scalar(
                        select(EnrollSecret).where(EnrollSecret.secret_hash == hash_secret(secret))
                    )
                    if row is None or row.revoked_at is not None:
                        raise Unauthorized("unknown or revoked enrollment secret")
                    host = s.scalar(
                        select(Host).where(Host.machine_id == machine_id).with_for_update()
                    )
                    if host is not None and host.revoked_at is not None:
                        raise HostKeyRevoked(
                            "this host was revoked by an admin and may not enroll again",
                            host_id=host.id,
                        )
                    action = "re-enroll"
                    if host is None:
                        action = "enroll"
                        host = Host(id=uuid.uuid4().hex, machine_id=machine_id)
                        s.add(host)
                    for name, value in host_fields.items():
                        setattr(host, name, value)
                    host.team_id = row.team_id
                    if host.key_hash:
                        self._auth_cache.pop(host.key_hash, None)
                    host.key_hash = hash_secret(key)
                    host.enrolled_at = utcnow()
                    host.last_ack_seq = 0  # the agent's next report must be full
                    host.decisions_digest = None
                    if host.agent_status is None:
                        host.agent_status = {}
                    s.flush()
                    _event(s, "enrollment", host, _entity_event(host, action))
                    # the agent's first report passes the route's gate without a query
                    self._remember(host.key_hash, host.id)
                    return Enrollment(
                        host.id, key, self.settings.report_interval, self.bundle_public_key
                    )
            except IntegrityError:  # the same machine enrolled twice at once: retry, finds it
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def cached_host(self, host_key: str) -> str | None:
        """The host id of a key seen valid in the last few seconds (no query), else None."""
        hit = self._auth_cache.get(hash_secret(host_key))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def authenticate(self, host_key: str, *, cached: bool = False) -> str:
        """The host id a key belongs to; 401 ``unauthorized`` or ``host_key_revoked``.

        ``cached``: a key seen valid in the last :data:`AUTH_CACHE_SECONDS` passes without a
        query. Only for a gate in front of :meth:`ingest`, which checks the key under its lock.
        """
        if not host_key.startswith(HOST_KEY_PREFIX):
            raise Unauthorized("unknown host key: enroll the agent again")
        digest = hash_secret(host_key)
        now = time.monotonic()
        if cached:
            hit = self._auth_cache.get(digest)
            if hit is not None and hit[1] > now:
                return hit[0]
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(_HOSTS.c.id, _HOSTS.c.revoked_at).where(_HOSTS.c.key_hash == digest)
            ).first()
        if row is None:
            raise Unauthorized("unknown host key: enroll the agent again")
        if row.revoked_at is not None:
            raise HostKeyRevoked("this host's key was revoked by an admin", host_id=row.id)
        self._remember(digest, str(row.id))
        return str(row.id)

    def _remember(self, key_hash: str, host_id: str) -> None:
        if len(self._auth_cache) >= _AUTH_CACHE_SIZE:
            self._auth_cache.clear()
        self._auth_cache[key_hash] = (host_id, time.monotonic() + AUTH_CACHE_SECONDS)

    def revoke_host(self, host_id: str, actor: str) -> None:
        """The host's key stops working at once and the machine may not enroll again."""
        with self.db.session() as s:
            host = s.get(Host, host_id, with_for_update=True)
            if host is None:
                raise HostNotFound(f"no host {host_id}", host_id=host_id)
            self._auth_cache.pop(host.key_hash, None)
            if host.revoked_at is None:
                host.revoked_at = utcnow()
                doc = _entity_event(host, "revoke")
                doc["actor"] = {"user": {"name": actor}}
                _event(s, "revocation", host, doc)

    # -------------------------------------------------------------------------------- reports
    def ingest(self, host_id: str, report: Report, *, host_key: str | None = None) -> Ack:
        """Apply ``report`` exactly once (see the module docstring), in its own transaction on
        the calling thread. With ``host_key``, the key must still be the host's current one
        (checked under the row lock)."""
        item = _Pending(host_id, report, hash_secret(host_key) if host_key is not None else None)
        for attempt in range(2):
            try:
                self._apply([item])
                break
            except IntegrityError:
                # The same report_id committed by a concurrent request: the retry finds it.
                if attempt:
                    raise
        return item.outcome()

    def submit(self, host_id: str, report: Report, *, host_key: str | None = None) -> Future[Ack]:
        """Like :meth:`ingest`, through the group-commit writer: reports submitted at the same
        time are applied in one transaction, each still exactly once. The future is resolved
        only after that transaction committed (or with the report's own error)."""
        item = _Pending(host_id, report, hash_secret(host_key) if host_key is not None else None)
        with self._writer_lock:
            if self._writer is None:
                self._writer = _Writer(self)
        self._writer.put(item)
        return item.future

    def _apply_batch(self, items: Sequence[_Pending]) -> None:
        """Apply ``items`` (at most one per host) in one transaction. If the database fails it
        (a bad row, a deadlock, a dropped connection), each report is retried alone, so only
        the failing one gets the error; nothing of a failed transaction was committed."""
        try:
            self._apply(items)
            return
        except Exception as exc:
            if len(items) == 1 and not isinstance(exc, IntegrityError):
                items[0].result = exc
                return
        for item in items:
            for attempt in range(2):
                item.result = None
                try:
                    self._apply([item])
                    break
                except IntegrityError as exc:  # a concurrent duplicate: the retry finds it
                    if attempt:
                        item.result = exc
                except Exception as exc:
                    item.result = exc
                    break

    def _apply(self, items: Sequence[_Pending]) -> None:
        """Check and apply ``items`` in ONE transaction (each item's ``result`` is set)."""
        with self.db.engine.begin() as conn:
            self._apply_in(conn, items)

    def _apply_in(self, conn: Connection, items: Sequence[_Pending]) -> None:
        h = _HOSTS
        rows = {
            r.id: r
            for r in conn.execute(
                select(*_HOST_COLUMNS)
                .where(h.c.id.in_(sorted({i.host_id for i in items})))
                .order_by(h.c.id)
                .with_for_update()
            )
        }
        done = {
            r.report_id: r
            for r in conn.execute(
                select(_APPLIED.c.report_id, _APPLIED.c.host_id, _APPLIED.c.seq).where(
                    _APPLIED.c.report_id.in_([i.report.report_id for i in items])
                )
            )
        }
        now = utcnow()
        seen: list[str] = []
        todo: list[_Pending] = []
        for item in items:
            host, report = rows.get(item.host_id), item.report
            if host is None or (item.key_hash is not None and host.key_hash != item.key_hash):
                item.result = Unauthorized("unknown host key: enroll the agent again")
            elif host.revoked_at is not None:
                item.result = HostKeyRevoked(
                    "this host's key was revoked by an admin", host_id=item.host_id
                )
            elif (applied := done.get(report.report_id)) is not None:
                if applied.host_id != item.host_id:
                    item.result = BadRequest(
                        "report_id was used by another host", report_id=report.report_id
                    )
                else:
                    seen.append(item.host_id)
                    item.result = Ack(int(applied.seq), False)
            elif report.seq <= host.last_ack_seq:
                # Older than what is applied (a late duplicate under a new id, or a replay after
                # a full report overtook it): acknowledged so the agent drops it, never applied.
                seen.append(item.host_id)
                item.result = Ack(report.seq, False)
            elif not report.full and report.base != host.last_ack_seq:
                item.result = ResyncRequired(
                    f"report {report.seq} is a delta against {report.base} but the server's "
                    f"last applied report is {host.last_ack_seq}: send a full report",
                    base=report.base,
                    last_ack=host.last_ack_seq,
                )
            else:
                todo.append(item)
        if seen:
            conn.execute(
                update(h).where(h.c.id == bindparam("b_id")).values(last_seen=now),
                [{"b_id": host_id} for host_id in seen],
            )
        if not todo:
            return
        _apply_inventory(conn, [(i.host_id, i.report) for i in todo])
        updates = []
        for item in todo:
            host, report = rows[item.host_id], item.report
            digest, counted_on = _apply_decisions(conn, host, report.decisions, now)
            status = dict(report.agent)
            status["collected_at"] = report.host.get("collected_at")
            version = report.agent.get("version")
            updates.append(
                {
                    "b_id": item.host_id,
                    "last_ack_seq": report.seq,
                    "last_seen": now,
                    "agent_status": status,
                    "agent_version": version
                    if isinstance(version, str) and len(version) <= 64
                    else host.agent_version,
                    "decisions_digest": digest,
                    "counted_on": counted_on,
                }
            )
        applied_rows = [
            {"host_id": i.host_id, "report_id": i.report.report_id, "seq": i.report.seq, "at": now}
            for i in todo
        ]
        if conn.dialect.name == "postgresql":
            # one statement: the hosts' update and the applied report ids, from arrays
            update_sql, update_args = _pg_unnest(_HOSTS, updates, update_key="b_id")
            insert_sql, insert_args = _pg_unnest(_APPLIED, applied_rows)
            conn.exec_driver_sql(
                f"WITH moved AS ({update_sql} RETURNING 1) {insert_sql}",
                tuple(update_args + insert_args),
            )
        else:
            conn.execute(
                update(h)
                .where(h.c.id == bindparam("b_id"))
                .values({name: bindparam(name) for name in updates[0] if name != "b_id"}),
                updates,
            )
            conn.execute(insert(_APPLIED), applied_rows)
        for item in todo:
            item.result = Ack(item.report.seq, True)

    # ---------------------------------------------------------------------------------- misc
    def host_count(self) -> int:
        with self.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(Host)) or 0)


def _last_by(items: Iterable[Any], key: Any) -> list[Any]:
    """``items`` without duplicates of ``key`` (the last one wins, as a later entry would)."""
    out: dict[Any, Any] = {}
    for item in items:
        out[key(item)] = item
    return list(out.values())


def _table(model: Any) -> Table:
    return cast(Table, model.__table__)


_HOSTS = _table(Host)
_APPLIED = _table(AppliedReport)
_ARTIFACTS = _table(HostArtifact)
_RUNTIMES = _table(HostRuntime)
_PACKAGES = _table(HostPackage)
_LICENSES = _table(HostLicense)
_VIOLATIONS = _table(Violation)
_COUNTS = _table(ViolationCount)
_EVENTS = _table(FleetEvent)
_HOST_COLUMNS = (
    _HOSTS.c.id,
    _HOSTS.c.key_hash,
    _HOSTS.c.revoked_at,
    _HOSTS.c.last_ack_seq,
    _HOSTS.c.decisions_digest,
    _HOSTS.c.counted_on,
    _HOSTS.c.agent_version,
    _HOSTS.c.hostname,
    _HOSTS.c.os,
    _HOSTS.c.os_version,
    _HOSTS.c.user,
)
_WRITER_BATCH = 64  # reports at most per group commit


class _Pending:
    """A report waiting to be applied, and what became of it (an Ack or an error)."""

    __slots__ = ("future", "host_id", "key_hash", "report", "result")

    def __init__(self, host_id: str, report: Report, key_hash: str | None) -> None:
        self.host_id = host_id
        self.report = report
        self.key_hash = key_hash
        self.result: Ack | BaseException | None = None
        self.future: Future[Ack] = Future()

    def outcome(self) -> Ack:
        if isinstance(self.result, BaseException):
            raise self.result
        if self.result is None:
            raise AssertionError("report was not processed")
        return self.result

    def resolve(self) -> None:
        if isinstance(self.result, BaseException):
            self.future.set_exception(self.result)
        elif self.result is None:
            self.future.set_exception(AssertionError("report was not processed"))
        else:
            self.future.set_result(self.result)


class _Writer:
    """Group commit: one thread applies the reports submitted meanwhile in one transaction
    (one commit, a few statements per batch instead of per report). A batch holds one report
    per host; a second report of the same host waits for the next batch."""

    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="fleet-report-writer", daemon=True)
        self._thread.start()

    def put(self, item: _Pending) -> None:
        self._queue.put(item)

    def _run(self) -> None:
        waiting: list[_Pending] = []
        while True:
            if not waiting:
                waiting.append(self._queue.get())
            while len(waiting) < 4 * _WRITER_BATCH:
                try:
                    waiting.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch: list[_Pending] = []
            later: list[_Pending] = []
            hosts: set[str] = set()
            for item in waiting:
                if item.host_id in hosts or len(batch) >= _WRITER_BATCH:
                    later.append(item)
                else:
                    hosts.add(item.host_id)
                    batch.append(item)
            waiting = later
            try:
                self._fleet._apply_batch(batch)
            except BaseException as exc:  # never leave a request waiting
                for item in batch:
                    item.result = exc
            for item in batch:
                item.resolve()


def _upsert(conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (host_id, key) DO UPDATE: one statement for a batch's rows."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        for part in _chunks(rows):
            sql, args = _pg_unnest(table, part, conflict=("host_id", key))
            conn.exec_driver_sql(sql, tuple(args))
        return
    stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["host_id", key],
        set_={c: stmt.excluded[c] for c in rows[0] if c not in ("host_id", key)},
    )
    for part in _chunks(rows):
        conn.execute(stmt, list(part))


def _pg_type(column: Any) -> str:
    t = column.type
    if isinstance(t, JSON):
        return "text"  # sent as JSON text, cast to json in the statement
    if isinstance(t, Boolean):
        return "boolean"
    if isinstance(t, BigInteger | Integer):
        return "bigint"
    if isinstance(t, DateTime):
        return "timestamptz"
    if isinstance(t, Date):
        return "date"
    return "text"


def _pg_unnest(
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    *,
    conflict: tuple[str, str] | None = None,
    update_key: str | None = None,
) -> tuple[str, list[Any]]:
    """PostgreSQL: an INSERT of many rows (``conflict``: an upsert on those columns; with
    ``update_key``, the row id: an UPDATE of those rows) in ONE statement whose parameters are one array per column (``unnest``): the same text whatever
    the row count, so it is prepared once, and one execution instead of one per row (psycopg's
    pipelined executemany costs a few hundred microseconds of CPU per row)."""
    names = [n for n in rows[0] if n != update_key]
    columns = [table.c[n] for n in names]
    args: list[Any] = []
    selects: list[str] = []
    arrays: list[str] = []
    for name, column in zip(names, columns, strict=True):
        kind = _pg_type(column)
        values = [r[name] for r in rows]
        if isinstance(column.type, JSON):
            values = [json.dumps(v) for v in values]
        expr = f"t.c{len(arrays)}"
        selects.append(f"{expr}::json" if isinstance(column.type, JSON) else expr)
        arrays.append(f"%b::{kind}[]")  # binary: no per-element escaping
        args.append(values)
    quoted = [f'"{n}"' for n in names]
    aliases = ", ".join(f"c{i}" for i in range(len(names)))
    if update_key is not None:
        args.append([r[update_key] for r in rows])
        arrays.append("%b::text[]")
        sets = ", ".join(f"{q} = {e}" for q, e in zip(quoted, selects, strict=True))
        sql = (
            f"UPDATE {table.name} SET {sets} FROM unnest({', '.join(arrays)}) "
            f"AS t({aliases}, row_key) WHERE {table.name}.id = t.row_key"
        )
        return sql, args
    sql = (
        f"INSERT INTO {table.name} ({', '.join(quoted)}) SELECT {', '.join(selects)} "
        f"FROM unnest({', '.join(arrays)}) AS t({aliases})"
    )
    if conflict is not None:
        keep = [q for n, q in zip(names, quoted, strict=True) if n not in conflict]
        sql += f" ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET " + ", ".join(
            f"{q} = excluded.{q}" for q in keep
        )
    return sql, args


def _apply_inventory(conn: Connection, reports: Sequence[tuple[str, Report]]) -> None:
    """The batch's inventory changes: full reports replace a host's rows, deltas remove and
    upsert theirs; the per-host license counts follow the artifacts."""
    artifacts: list[dict[str, Any]] = []
    runtimes: list[dict[str, Any]] = []
    packages: list[dict[str, Any]] = []
    full: list[str] = []
    removed: list[tuple[Any, str, list[str]]] = []
    licensed: list[str] = []
    for host_id, report in reports:
        if report.full:
            full.append(host_id)
        if report.full or report.artifacts or report.removed_artifacts:
            licensed.append(host_id)
        new_artifacts = _last_by(report.artifacts, lambda a: a.path)
        new_runtimes = _last_by(report.runtimes, lambda r: r.name)
        new_packages = _last_by(report.packages, lambda p: p.key)
        if not report.full:
            for table, gone, kept in (
                (_ARTIFACTS, report.removed_artifacts, {a.path for a in new_artifacts}),
                (_RUNTIMES, report.removed_runtimes, {r.name for r in new_runtimes}),
                (_PACKAGES, report.removed_packages, {p.key for p in new_packages}),
            ):
                keys = sorted(set(gone) - kept)
                if keys:
                    removed.append((table, host_id, keys))
        artifacts += (
            {
                "host_id": host_id,
                "path": a.path,
                "sha256": a.sha256,
                "size": a.size,
                "format": a.format,
                "source_kind": a.source_kind,
                "source_name": a.source_name,
                "source_repo": a.source_repo,
                "source_revision": a.source_revision,
                "license_id": a.license_id,
                "max_severity": a.max_severity,
                "in_use": a.in_use,
                "doc": a.doc,
            }
            for a in new_artifacts
        )
        runtimes += (
            {
                "host_id": host_id,
                "name": r.name,
                "version": r.version,
                "running": r.running,
                "exposed": r.exposed,
                "vulnerable": r.vulnerable,
                "doc": r.doc,
            }
            for r in new_runtimes
        )
        packages += (
            {
                "host_id": host_id,
                "key": p.key,
                "name": p.name,
                "version": p.version,
                "vulnerable": p.vulnerable,
                "doc": p.doc,
            }
            for p in new_packages
        )
    tables = (
        (_ARTIFACTS, "path", artifacts),
        (_RUNTIMES, "name", runtimes),
        (_PACKAGES, "key", packages),
    )
    if full:
        for table, _key, _rows in tables:
            for part in _chunks(full):
                conn.execute(delete(table).where(table.c.host_id.in_(part)))
    for table, host_id, keys in removed:
        key_column = (
            table.c.path
            if table is _ARTIFACTS
            else (table.c.name if table is _RUNTIMES else table.c.key)
        )
        for part in _chunks(keys):
            conn.execute(delete(table).where(table.c.host_id == host_id, key_column.in_(part)))
    for table, key, rows in tables:
        _upsert(conn, table, key, rows)
    if licensed:
        lic, art = _LICENSES, _ARTIFACTS
        for part in _chunks(licensed):
            conn.execute(delete(lic).where(lic.c.host_id.in_(part)))
            conn.execute(
                insert(lic).from_select(
                    ["host_id", "license_id", "artifacts"],
                    select(art.c.host_id, art.c.license_id, func.count())
                    .where(art.c.host_id.in_(part))
                    .group_by(art.c.host_id, art.c.license_id),
                )
            )


def _apply_decisions(
    conn: Connection, host: Any, decisions: Sequence[DecisionIn], now: datetime
) -> tuple[str, date]:
    """The host's violations become the report's decisions (plain allows are not kept).
    Returns the host's new (decisions digest, counted day)."""
    kept = _last_by([d for d in decisions if d.action != "allow" or d.waived_by], lambda d: d.key)
    digest = hashlib.sha256(
        json.dumps(sorted(dataclasses.astuple(d) for d in kept)).encode()
    ).hexdigest()
    today = now.date()
    if host.decisions_digest == digest and host.counted_on == today:
        return digest, today  # the same decisions as the last report, already counted today
    v, vc = _VIOLATIONS, _COUNTS
    before = {
        (r.rule, r.subject_kind, r.subject): r.since
        for r in conn.execute(
            select(v.c.rule, v.c.subject_kind, v.c.subject, v.c.since).where(
                v.c.host_id == host.id, v.c.waived.is_(False)
            )
        )
    }
    conn.execute(delete(v).where(v.c.host_id == host.id))
    rows = [
        {
            "host_id": host.id,
            "rule": d.rule,
            "severity": d.severity,
            "action": d.action,
            "subject_kind": d.subject_kind,
            "subject": d.subject,
            "sha256": d.sha256,
            "message": d.message,
            "waived": bool(d.waived_by),
            "waived_by": d.waived_by,
            "since": before.get(d.key, now),  # when it was first reported
        }
        for d in kept
    ]
    for part in _chunks(rows):
        conn.execute(insert(v), list(part))
    events = [
        {
            "kind": "violation",
            "host_id": host.id,
            "document": _finding_event(host, d),
            "at": now,
        }
        for d in kept
        if not d.waived_by and d.key not in before
    ]
    if events:
        conn.execute(insert(_EVENTS), events)
    # The daily trend: this host's open (not waived) violations per severity, today.
    conn.execute(delete(vc).where(vc.c.day == today, vc.c.host_id == host.id))
    counts: dict[str, int] = {}
    for d in kept:
        if not d.waived_by:
            counts[d.severity] = counts.get(d.severity, 0) + 1
    if counts:
        conn.execute(
            insert(vc),
            [
                {"day": today, "host_id": host.id, "severity": sev, "count": n}
                for sev, n in sorted(counts.items())
            ],
        )
    return digest, today


# ------------------------------------------------------------------------------- SIEM events
def _event(s: Session, kind: str, host: Host, document: dict[str, Any]) -> None:
    s.add(FleetEvent(kind=kind, host_id=host.id, document=document, at=utcnow()))


def _ocsf_base(host: Any) -> dict[str, Any]:
    return {
        "time": int(utcnow().timestamp() * 1000),
        "metadata": {
            "version": "1.3.0",
            "product": {"name": "modelward", "vendor_name": "modelward", "version": __version__},
        },
        "device": {
            "uid": host.id,
            "hostname": host.hostname,
            "os": {"name": host.os, "version": host.os_version},
            "owner": {"name": host.user},
        },
    }


def _finding_event(host: Any, d: DecisionIn) -> dict[str, Any]:
    """An OCSF Detection Finding (class 2004) for a new violation on a host."""
    resource: dict[str, Any] = {"type": d.subject_kind, "name": d.subject}
    if d.sha256:
        resource["uid"] = d.sha256
    return {
        **_ocsf_base(host),
        "category_uid": 2,
        "category_name": "Findings",
        "class_uid": 2004,
        "class_name": "Detection Finding",
        "activity_id": 1,
        "activity_name": "Create",
        "type_uid": 200401,
        "severity_id": _OCSF_SEVERITY.get(d.severity, 0),
        "severity": d.severity.capitalize(),
        "message": d.message,
        "finding_info": {
            "uid": hashlib.sha256(
                f"{host.id}\0{d.rule}\0{d.subject_kind}\0{d.subject}".encode()
            ).hexdigest()[:32],
            "title": d.rule,
            "desc": d.message,
            "types": ["modelward.policy"],
        },
        "disposition": d.action,
        "resources": [resource],
    }


def _entity_event(host: Host, action: str) -> dict[str, Any]:
    """An OCSF-style Entity Management event (class 3004) for enrollment or revocation."""
    activity = {"enroll": (1, "Create"), "re-enroll": (3, "Update"), "revoke": (4, "Delete")}
    aid, aname = activity[action]
    return {
        **_ocsf_base(host),
        "category_uid": 3,
        "category_name": "Identity & Access Management",
        "class_uid": 3004,
        "class_name": "Entity Management",
        "activity_id": aid,
        "activity_name": aname,
        "type_uid": 300400 + aid,
        "severity_id": 1,
        "severity": "Informational",
        "message": f"host {host.hostname} ({host.id}): {action}",
        "entity": {"type": "host key", "uid": host.id, "name": host.hostname},
    }
