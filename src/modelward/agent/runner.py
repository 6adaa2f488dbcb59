"""One agent cycle (collect -> policy -> enforce -> spool -> flush) and the long-running loop.

A cycle collects the inventory (hashes from the agent's own hash cache, new files hashed at a
bounded rate), fetches the policy bundle when it changed (``If-None-Match``; the signature is
checked with the key pinned at enrollment, the last good bundle is kept otherwise), evaluates it
with :mod:`modelward.policy`, carries out quarantine/stop decisions only when the bundle sets
``agent_enforce: true``, spools a report of what changed since the previous one and sends the
spool in order. The server being away only delays sending: nothing is lost while the spool has
room.

The loop runs a cycle every ``interval`` seconds and sooner when watchdog sees a file appear or
change in a discovered model folder (debounced, so a download in progress triggers one cycle).

State files in ``<state_dir>``: ``acked.json`` (seq and state the server acknowledged),
``head.json`` (seq and state after the newest spooled report), ``spool/``, ``bundle/``,
``hashes.sqlite``.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from modelward.agent import diff
from modelward.agent.budget import DEFAULT_HASH_RATE, RateLimiter, UsageMeter, sha256_limited
from modelward.agent.bundle import BundleRejected, BundleStore, Policy
from modelward.agent.client import (
    AgentClient,
    HostKeyRevoked,
    ResyncRequired,
    ServerUnavailable,
)
from modelward.agent.enroll import AgentState, NotEnrolled, host_facts, load_state, reenroll
from modelward.agent.files import ensure_dir, read_json, write_json
from modelward.agent.spool import DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT, Entry, Spool
from modelward.errors import Error, HubError, NotFound, PolicyError, TooLarge, Unauthorized

if TYPE_CHECKING:
    from modelward.models import Inventory
    from modelward.policy.decision import Decision

SCHEMA = "modelward.agent-report/v1"
MAX_REPORT_BYTES = 64 << 20
"""The largest report body the server takes (``server/api/agent.py``); larger ones get 413."""
T = TypeVar("T")
Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How the agent collects and spools (the defaults suit a laptop)."""

    roots: tuple[Path, ...] = ()
    """Folders to inventory (default: the user's home; every home as root)."""
    hash_rate: int = DEFAULT_HASH_RATE
    """Bytes per second read for hashing new files (0: unlimited)."""
    processes: bool = True
    runtimes: bool = True
    vault: Path | None = None
    """Quarantine vault (default: modelward's data folder)."""
    max_spool_bytes: int = DEFAULT_MAX_BYTES
    max_spool_count: int = DEFAULT_MAX_COUNT
    max_report_bytes: int = MAX_REPORT_BYTES
    """Largest report sent as it is; a larger one is split first (the server's limit)."""


@dataclass(frozen=True, slots=True)
class CycleResult:
    seq: int
    full: bool
    sent: int
    pending: int
    offline: bool
    decisions: int
    actions: tuple[dict[str, Any], ...] = ()
    notes: tuple[str, ...] = ()
    watch: tuple[tuple[Path, bool], ...] = field(default=(), compare=False)
    """Model folders worth watching (from this inventory)."""


class Ledger:
    """``acked.json`` and ``head.json``: what the server has, and what it will have after the spool."""

    def __init__(self, state_dir: Path) -> None:
        self.acked_path = state_dir / "acked.json"
        self.head_path = state_dir / "head.json"
        acked = read_json(self.acked_path) or {}
        head = read_json(self.head_path) or {}
        self.acked_seq: int = int(acked.get("seq", 0))
        self.acked_state: diff.State | None = acked.get("state")
        self.head_seq: int = int(head.get("seq", 0))
        self.head_state: diff.State | None = head.get("state")
        self.force_full: bool = bool(head.get("force_full", False))

    def save_acked(self, seq: int, state: diff.State) -> None:
        write_json(self.acked_path, {"seq": seq, "state": state})
        self.acked_seq, self.acked_state = seq, state

    def save_head(self, seq: int, state: diff.State | None, force_full: bool = False) -> None:
        write_json(self.head_path, {"seq": seq, "state": state, "force_full": force_full})
        self.head_seq, self.head_state, self.force_full = seq, state, force_full


class Agent:
    """The agent of one state folder: ``Agent(state_dir).cycle()``."""

    def __init__(self, state_dir: Path, options: RunOptions | None = None, log: Log | None = None):
        self.state_dir = ensure_dir(state_dir)
        self.options = options or RunOptions()
        self.log: Log = log or (lambda _m: None)
        self.ledger = Ledger(self.state_dir)
        self.spool = Spool(
            self.state_dir / "spool",
            max_bytes=self.options.max_spool_bytes,
            max_count=self.options.max_spool_count,
            rebase=self._rebase,
        )
        self.bundles = BundleStore(self.state_dir)
        self.meter = UsageMeter()
        self._limiter = RateLimiter(self.options.hash_rate)
        self._reenrolled = False
        self._notes: list[str] = []
        self._reconcile()

    # ------------------------------------------------------------------ state
    def state(self) -> AgentState:
        state = load_state(self.state_dir)
        if state is None:
            raise NotEnrolled(
                f"{self.state_dir}: this agent is not enrolled; run "
                "`modelward agent enroll --server URL --secret-file FILE` first"
            )
        return state

    def _reconcile(self) -> None:
        """Bring ``head.json`` up to the newest spooled report (a crash between spooling a report
        and recording the head leaves the report ahead)."""
        for entry in self.spool.entries():
            if entry.seq <= self.ledger.head_seq:
                continue
            doc = self.spool.read(entry)
            if doc is not None:
                self.ledger.save_head(entry.seq, diff.apply(self.ledger.head_state, doc))

    def _rebase(self, dropped: dict[str, Any], nxt: dict[str, Any]) -> dict[str, Any]:
        """The report after a dropped one, made full (the spool is dropping ``dropped``)."""
        if int(dropped.get("seq", 0)) <= self.ledger.acked_seq:
            return nxt  # the server has the dropped report already
        base = None if dropped.get("full") else self.ledger.acked_state
        after = diff.apply(diff.apply(base, dropped), nxt)
        return diff.as_full(nxt, after)

    # ------------------------------------------------------------------ one cycle
    def cycle(self) -> CycleResult:
        state = self.state()
        notes: list[str] = []
        self._reenrolled = False
        self._notes = notes
        inventory = self.collect()
        doc = inventory.to_dict()
        stopped: NotEnrolled | None = None
        sent, online = 0, True
        with AgentClient(state.server, state.host_key, ca_bundle=state.ca_bundle) as client:
            try:
                policy = self.refresh_bundle(client, state)
            except ServerUnavailable as exc:
                notes.append(f"policy not refreshed ({exc}); using the last good bundle")
                policy = self.bundles.policy()
                online = False
            except BundleRejected as exc:
                notes.append(f"{exc.diagnostics()}; using the last good bundle")
                policy = self.bundles.policy()
            except NotEnrolled as exc:  # spool this cycle's report first, then stop
                stopped = exc
                policy = self.bundles.policy()
            try:
                decisions = evaluate(doc, policy)
            except PolicyError as exc:  # a bundle that verifies but does not evaluate
                notes.append(f"policy bundle not evaluated: {exc.diagnostics()}")
                decisions = []
            actions, moved = self.enforce(decisions, doc, policy)
            if moved:
                doc["artifacts"] = [a for a in doc["artifacts"] if a.get("path") not in moved]
            if online and stopped is None and self.spool.entries():
                # The server is back: send what waited before this report may push it out.
                try:
                    sent, _offline, _ = self.flush(client, state)
                except NotEnrolled as exc:
                    stopped = exc
            report = self.make_report(doc, decisions, actions, policy.etag)
            self.spool.put(report)
            self.ledger.save_head(report["seq"], diff.apply(self.ledger.head_state, report))
            if stopped is not None:
                raise stopped
            more, offline, _ = self.flush(client, state)
            sent += more
        for n in notes:
            self.log(n)
        return CycleResult(
            seq=report["seq"],
            full=bool(report["full"]),
            sent=sent,
            pending=len(self.spool.entries()),
            offline=offline,
            decisions=len(decisions),
            actions=tuple(actions),
            notes=tuple(notes),
            watch=tuple(watch_folders(doc, self.options.roots)),
        )

    def collect(self) -> Inventory:
        """The inventory, with SHA-256 from the hash cache or hashed at the configured rate."""
        from modelward.inventory import InventoryOptions, collect
        from modelward.inventory.hashcache import HashCache
        from modelward.models import CollectError

        opts = InventoryOptions(
            hash=False,
            processes=self.options.processes,
            runtimes=self.options.runtimes,
            probes=self.options.processes,
            jobs=1,
            use_cache=False,
        )
        inv = collect(list(self.options.roots) or None, opts)
        errors = list(inv.errors)
        artifacts = []
        with HashCache(self.state_dir / "hashes.sqlite") as cache:
            for a in inv.artifacts:
                if a.sha256 is None:
                    try:
                        st = os.stat(a.path)
                        digest = cache.get(st)
                        if digest is None:
                            digest = sha256_limited(a.path, st, self._limiter)
                            cache.put(st, digest)
                        a = replace(a, sha256=digest)
                    except OSError as exc:
                        errors.append(CollectError(a.path, f"cannot hash: {exc}"))
                artifacts.append(a)
        return replace(inv, artifacts=tuple(artifacts), errors=tuple(errors))

    def refresh_bundle(self, client: AgentClient, state: AgentState) -> Policy:
        """Fetch the bundle when it changed, verify it; the current policy either way."""
        try:
            fresh = self._authed(client, state, lambda: client.policy(self.bundles.etag))
        except NotFound:  # no bundle pushed yet (``no_policy_bundle``): the defaults
            return self.bundles.policy()
        if fresh is not None:
            self.bundles.accept(fresh, state.bundle_public_key)
        return self.bundles.policy()

    def _authed(self, client: AgentClient, state: AgentState, call: Callable[[], T]) -> T:
        """``call()``; when the server refuses the host key, re-enroll once and call again."""
        try:
            return call()
        except (HostKeyRevoked, Unauthorized) as exc:
            if self._reenrolled:
                raise
            self._reenrolled = True
            why = f"{exc.message} ({exc.detail.get('code', exc.code)})"
            try:
                new = reenroll(self.state_dir, state, why)
            except Unauthorized as again:
                raise NotEnrolled(
                    f"{state.server} refused this host's key ({why}) and the enrollment secret "
                    f"in {state.secret_file} ({again.message}); the agent stops. Enroll again "
                    "with a current secret: modelward agent enroll --server URL --secret-file FILE"
                ) from None
            self.log(f"re-enrolled as host {new.host_id} after: {why}")
            self._notes.append(f"re-enrolled as host {new.host_id} ({exc.code})")
            client.host_key = new.host_key
            return call()

    def enforce(
        self, decisions: Sequence[Decision], doc: dict[str, Any], policy: Policy
    ) -> tuple[list[dict[str, Any]], set[str]]:
        """Carry out quarantine and stop decisions when the bundle enables enforcement.

        Returns the actions for the report and the artifact paths moved into the vault. Uses
        ``model_group`` + ``Vault.quarantine`` directly (not ``quarantine_decisions``) because the
        report needs one structured result per decision, not lines of text.
        """
        if not policy.enforce:
            return [], set()
        from modelward.policy.enforce import expected_digest, model_group, model_links
        from modelward.policy.journal import VaultError
        from modelward.policy.stop import stop_decisions
        from modelward.policy.vault import Vault

        actions: list[dict[str, Any]] = []
        moved: set[str] = set()
        arts = [a for a in doc.get("artifacts", []) if isinstance(a.get("path"), str)]
        by_path = {os.path.abspath(a["path"]): a for a in arts}
        vault: Vault | None = None
        for d in decisions:
            if d.action == "quarantine" and d.subject.kind == "artifact" and d.subject.path:
                path = os.path.abspath(d.subject.path)
                if path in moved:
                    continue
                art = by_path.get(path)
                group = [str(p) for p in (model_group(art, arts) if art else [Path(path)])]
                group = [p for p in group if p not in moved]
                try:
                    vault = vault or Vault.open(self.options.vault)
                    files = [Path(p) for p in group]
                    entry = vault.quarantine(
                        files,
                        d.message,
                        d.rule,
                        expected=expected_digest(d),  # not a file replaced since the inventory
                        aliases=model_links(files, arts),  # notes beside HF snapshot links too
                    )
                    moved.update(group)
                    ok, detail = True, f"quarantined {len(group)} file(s) as {entry.id}"
                except VaultError as exc:
                    ok, detail = False, f"could not quarantine: {exc.diagnostics()}"
                actions.append(
                    {
                        "kind": "quarantine",
                        "subject": d.subject.to_dict(),
                        "ok": ok,
                        "detail": detail,
                    }
                )
            elif d.action == "stop" and d.subject.kind == "runtime":
                for line in stop_decisions([d], doc, apply=True):
                    actions.append(
                        {
                            "kind": "stop",
                            "subject": d.subject.to_dict(),
                            "ok": line.startswith("stopped"),
                            "detail": line,
                        }
                    )
        return actions, moved

    def make_report(
        self,
        doc: dict[str, Any],
        decisions: Sequence[Decision],
        actions: list[dict[str, Any]],
        etag: str | None,
    ) -> dict[str, Any]:
        from modelward import __version__

        new = diff.state_of(doc)
        ledger = self.ledger
        full = ledger.head_state is None or ledger.force_full
        seq = max(ledger.head_seq, ledger.acked_seq) + 1
        added, removed = diff.delta(None if full else ledger.head_state, new)
        usage = self.meter.read()
        collected_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        return {
            "schema": SCHEMA,
            "report_id": str(uuid.uuid4()),
            "seq": seq,
            "base": None if full else ledger.head_seq,
            "full": full,
            "collected_at": collected_at,
            "host": {**host_facts(self.state_dir), "collected_at": collected_at},
            "added": added,
            "removed": removed,
            "decisions": [d.to_dict() for d in decisions if d.action != "allow" or d.waived_by],
            "actions": actions,
            "agent": {
                "version": __version__,
                "rss_bytes": usage.rss_bytes,
                "peak_rss_bytes": usage.peak_rss_bytes,
                "cpu_percent": usage.cpu_percent,
                "spool_dropped": self.spool.dropped,
                "reports_too_large": self.spool.too_large,
                "bundle_etag": etag,
            },
        }

    # ------------------------------------------------------------------ sending
    def flush(self, client: AgentClient, state: AgentState) -> tuple[int, bool, list[str]]:
        """Send the spool oldest first: ``(sent, offline, notes)``. Stops at the first report the
        server cannot take now; re-enrolls once when the key is refused; splits a report too large
        for the server (see :meth:`_too_large`)."""
        notes = self._notes
        sent = 0
        self.spool.discard_through(self.ledger.acked_seq)
        while pending := self.spool.entries():
            entry = pending[0]
            doc = self.spool.read(entry)
            if doc is None:
                notes.append(f"spooled report {entry.seq} was unreadable: moved aside")
                self.ledger.save_head(self.ledger.head_seq, self.ledger.head_state, True)
                continue
            if not doc.get("full") and doc.get("base") != self.ledger.acked_seq:
                doc = self._as_full(doc)  # the report it was based on is gone
                self.spool.replace(entry, doc)
            size = len(diff.encoded(doc))
            if size > self.options.max_report_bytes:  # the server would refuse it: do not try
                self._too_large(pending, doc, size, self.options.max_report_bytes)
                continue
            for _attempt in range(3):
                try:
                    self._authed(client, state, functools.partial(client.report, doc))
                    break
                except ServerUnavailable:
                    return sent, True, notes
                except ResyncRequired:
                    if doc.get("full"):
                        raise
                    notes.append(f"server asked for a full report (seq {entry.seq})")
                    doc = self._as_full(doc)
                    self.spool.replace(entry, doc)
                except (HostKeyRevoked, Unauthorized):
                    raise
                except TooLarge:  # smaller than our limit, yet too large for the server or a proxy
                    self._too_large(pending, doc, size, size)
                    doc = {}
                    break
                except HubError as exc:  # the server refuses this report for good: set it aside
                    notes.append(f"server refused report {entry.seq}: {exc.message}")
                    self._set_aside(entry)
                    doc = {}
                    break
            else:
                return sent, False, notes
            if not doc:
                continue
            self.ledger.save_acked(entry.seq, diff.apply(self.ledger.acked_state, doc))
            self.spool.remove(entry)
            sent += 1
        return sent, False, notes

    def _too_large(self, pending: list[Entry], doc: dict[str, Any], size: int, limit: int) -> None:
        """The oldest pending report (``size`` bytes) is too large to send (``limit``: what the
        server takes, or the size it refused): split it into reports of at most half of that,
        else leave out the one entry that is too large, else set the report aside.

        The server never applied it (it refuses the body before reading it), so the parts get new
        report ids and the seqs from the report's own on: the reports spooled after it move up
        (new ids too; none was sent, the spool goes out in order) in one :meth:`Spool.rewrite`.
        Exactly-once holds part by part. What is left out is counted (``too_large``, reported as
        ``reports_too_large``) and logged.
        """
        entry, later = pending[0], pending[1:]
        parts = diff.split(doc, min(limit, size // 2))
        if parts is None:
            slim = {**doc, "added": {k: [] for k in diff.KINDS}}
            left_out = [
                diff.key(kind, e)
                for kind in diff.KINDS
                for e in (doc.get("added") or {}).get(kind) or []
            ]
            self.spool.count_too_large()
            if left_out and len(diff.encoded(slim)) < limit:
                self.log(
                    f"error: report {entry.seq}: {', '.join(left_out)} is too large for the "
                    "server to take in any report: left out (counted in reports_too_large)"
                )
                self.spool.replace(entry, slim)
            else:
                self.log(
                    f"error: report {entry.seq} is too large for the server and cannot be split "
                    "(its decisions alone are too large): set aside in spool/rejected/, the next "
                    "report is a full one (counted in reports_too_large)"
                )
                self._set_aside(entry)
            return
        shift = len(parts) - 1
        new: list[dict[str, Any]] = []
        for i, part in enumerate(parts):
            part["seq"] = entry.seq + i
            part["report_id"] = str(uuid.uuid4())
            if i:
                part["base"] = entry.seq + i - 1
            new.append(part)
        for e in later:
            report = self.spool.read(e)
            if report is None:
                continue
            base = report.get("base")
            report["seq"] = e.seq + shift
            report["report_id"] = str(uuid.uuid4())
            if isinstance(base, int) and base >= entry.seq:
                report["base"] = base + shift
            new.append(report)
        self.spool.rewrite(pending, new)
        self.ledger.save_head(
            self.ledger.head_seq + shift, self.ledger.head_state, self.ledger.force_full
        )
        self._notes.append(
            f"report {entry.seq} was too large for the server: split into {len(parts)} reports"
        )

    def _as_full(self, doc: dict[str, Any]) -> dict[str, Any]:
        if doc.get("full"):
            return doc
        return diff.as_full(doc, diff.apply(self.ledger.acked_state, doc))

    def _set_aside(self, entry: Any) -> None:
        aside = ensure_dir(self.spool.folder / "rejected")
        os.replace(entry.path, aside / entry.path.name)
        self.ledger.save_head(self.ledger.head_seq, self.ledger.head_state, True)

    # ------------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        state = load_state(self.state_dir)
        entries = self.spool.entries()
        bundle = self.bundles.current() or {}
        return {
            "enrolled": state is not None,
            "server": state.server if state else None,
            "host_id": state.host_id if state else None,
            "state_dir": str(self.state_dir),
            "last_ack": self.ledger.acked_seq or None,
            "last_report": self.ledger.head_seq or None,
            "spooled": len(entries),
            "spool_bytes": sum(e.size for e in entries),
            "spool_dropped": self.spool.dropped,
            "reports_too_large": self.spool.too_large,
            "bundle_version": bundle.get("version"),
            "bundle_etag": bundle.get("etag"),
            "enforce": bool((bundle.get("settings") or {}).get("agent_enforce") is True),
        }

    # ------------------------------------------------------------------ the loop
    def run_forever(
        self,
        interval: float,
        *,
        stop: threading.Event | None = None,
        watch: bool = True,
        debounce: float = 2.0,
        on_cycle: Callable[[CycleResult], None] | None = None,
    ) -> None:
        """Cycle every ``interval`` seconds, and within ``debounce`` seconds of a change in a
        watched model folder, until ``stop`` is set."""
        stop = stop or threading.Event()
        trigger = Trigger()
        watcher = Watcher(trigger, ignore=(self.state_dir,)) if watch else None
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    result = self.cycle()
                except NotEnrolled:
                    raise
                except Error as exc:  # this cycle failed (e.g. a full disk); the next one may not
                    self.log(exc.diagnostics())
                else:
                    if watcher is not None:
                        watcher.watch(result.watch)
                    if on_cycle is not None:
                        on_cycle(result)
                deadline = started + interval
                trigger.wait_until(deadline, debounce, stop)
        finally:
            if watcher is not None:
                watcher.close()


def evaluate(doc: dict[str, Any], policy: Policy) -> list[Decision]:
    from modelward.policy.engine import evaluate as run
    from modelward.policy.settings import load_settings
    from modelward.policy.waivers import apply_waivers, load_waivers

    settings = load_settings(policy.settings_file)
    decisions, _expired = apply_waivers(
        run(doc, settings, policy.folder), load_waivers(policy.waivers_file)
    )
    return decisions


# ---------------------------------------------------------------------- watching
def watch_folders(doc: dict[str, Any], roots: Sequence[Path]) -> list[tuple[Path, bool]]:
    """``(folder, recursive)`` pairs whose changes mean a new or changed model: the explicit roots
    and the store roots (Ollama ``models``, the HF ``hub``) recursively; each loose artifact's
    folder and its parent (where a new sibling model folder appears) alone."""
    deep: set[str] = {os.path.abspath(r) for r in roots}
    out: set[str] = set()
    for a in doc.get("artifacts", []):
        path = a.get("path")
        if not isinstance(path, str):
            continue
        parent = os.path.dirname(os.path.abspath(path))
        parts = Path(parent).parts
        if "blobs" in parts or "manifests" in parts:  # Ollama: <models>/{blobs,manifests}/...
            idx = max(i for i, p in enumerate(parts) if p in ("blobs", "manifests"))
            deep.add(str(Path(*parts[:idx])))
        elif any(p.startswith("models--") for p in parts):  # HF cache: <hub>/models--x--y/...
            idx = next(i for i, p in enumerate(parts) if p.startswith("models--"))
            deep.add(str(Path(*parts[:idx])))
        else:
            out.add(parent)
            out.add(os.path.dirname(parent))
    # a folder inside a recursive watch needs no watch of its own
    shallow = {p for p in out - deep if not any(p.startswith(d + os.sep) for d in deep)}
    pairs = [(p, True) for p in deep] + [(p, False) for p in shallow]
    return sorted((Path(p), r) for p, r in pairs if os.path.isdir(p))


class Trigger:
    """Set by file events; the loop waits on it, then lets a burst of events settle."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._last = 0.0

    def fire(self) -> None:
        self._last = time.monotonic()
        self._event.set()

    def wait_until(self, deadline: float, debounce: float, stop: threading.Event) -> None:
        """Return at ``deadline``, when ``stop`` is set, or ``debounce`` seconds after the last
        event of a burst (at most ``10 * debounce`` after the first)."""
        while not stop.is_set():
            now = time.monotonic()
            if now >= deadline:
                break
            if self._event.wait(min(0.5, deadline - now)):
                first = time.monotonic()
                while not stop.is_set():
                    quiet = time.monotonic() - self._last
                    if quiet >= debounce or time.monotonic() - first >= 10 * debounce:
                        break
                    stop.wait(min(debounce - quiet, 0.2) if quiet < debounce else 0)
                break
        self._event.clear()


class Watcher:
    """watchdog observers on model folders (non-recursive for the plain folders; recursive for
    store roots and explicit roots), re-aimed after each cycle."""

    def __init__(self, trigger: Trigger, ignore: Sequence[Path] = ()) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler
        from watchdog.observers import Observer

        ignored = tuple(os.path.abspath(p) + os.sep for p in ignore)

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                src = os.fsdecode(event.src_path)
                if src.startswith(ignored) or os.path.basename(src).startswith(".tmp-"):
                    return
                trigger.fire()

        self._handler = Handler()
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.start()
        self._watches: dict[tuple[str, bool], Any] = {}

    def watch(self, folders: Sequence[tuple[Path, bool]]) -> None:
        """Watch exactly ``folders`` (``(folder, recursive)`` pairs) from now on."""
        wanted = {(str(f), r) for f, r in folders}
        for gone in set(self._watches) - wanted:
            self._observer.unschedule(self._watches.pop(gone))
        for folder, recursive in sorted(wanted - set(self._watches)):
            try:
                self._watches[(folder, recursive)] = self._observer.schedule(
                    self._handler, folder, recursive=recursive
                )
            except OSError:  # gone meanwhile, or out of inotify watches: the schedule still runs
                continue

    def close(self) -> None:
        self._observer.stop()
        self._observer.join(5)
