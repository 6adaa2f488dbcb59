"""The agent against a live server: enroll, run --once, offline spooling and replay in order,
revoked keys (re-enroll or a clear stop), resync, signed policy bundles and enforcement, watching."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from modelward.agent.enroll import NotEnrolled, enroll, load_state
from modelward.agent.runner import Agent, CycleResult, RunOptions
from tests.agent.conftest import model
from tests.agent.fakeserver import FakeFleet, make_app


class Env:
    """One server and one agent with its own state folder, roots and vault."""

    def __init__(self, tmp: Path, server: Any, fleet: FakeFleet) -> None:
        self.tmp, self.server, self.fleet = tmp, server, fleet
        self.state_dir = tmp / "state"
        self.roots = tmp / "models"
        self.roots.mkdir()
        self.secret = tmp / "secret.txt"
        self.secret.write_text(fleet.secret + "\n")
        self.state_dir.mkdir()
        (self.state_dir / "machine-id").write_text(os.urandom(8).hex())

    def agent(self) -> Agent:
        opts = RunOptions(
            roots=(self.roots,), processes=False, runtimes=False, vault=self.tmp / "vault"
        )
        return Agent(self.state_dir, opts)

    def enroll(self) -> None:
        enroll(self.server.url, self.secret, self.state_dir)

    def server_paths(self) -> set[str]:
        host = next(iter(self.fleet.hosts.values()))
        return set(host["state"])


@pytest.fixture
def env(tmp_path: Path, restartable: Any) -> Env:
    fleet = FakeFleet()
    server = restartable(make_app(fleet))
    return Env(tmp_path, server, fleet)


def paths(result: CycleResult, env: Env) -> set[str]:
    return {str(p) for p in (env.roots.rglob("*.safetensors"))}


def test_enroll_writes_an_owner_only_key_and_run_once_reports_full(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    key_file = env.state_dir / "agent.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    state = load_state(env.state_dir)
    assert state is not None and state.host_key.startswith("mwh_")
    assert state.bundle_public_key and "PUBLIC KEY" in state.bundle_public_key

    agent = env.agent()
    first = agent.cycle()
    assert (first.seq, first.full, first.sent, first.pending, first.offline) == (
        1,
        True,
        1,
        0,
        False,
    )
    sent = env.fleet.reports[-1]
    assert sent["schema"] == "modelward.agent-report/v1"
    assert sent["agent"]["rss_bytes"] > 0 and "cpu_percent" in sent["agent"]
    assert all(a["sha256"] and len(a["sha256"]) == 64 for a in sent["added"]["artifacts"])
    assert env.server_paths() == paths(first, env)

    second = agent.cycle()  # nothing changed: an empty delta on the acked base
    assert (second.seq, second.full) == (2, False)
    assert env.fleet.reports[-1]["base"] == 1
    assert env.fleet.reports[-1]["added"]["artifacts"] == []
    assert agent.status()["last_ack"] == 2 and agent.status()["spooled"] == 0


def test_offline_reports_are_spooled_and_replayed_in_order(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    agent.cycle()
    env.server.stop()
    model(env.roots, "b", seed=1)
    r2 = agent.cycle()
    model(env.roots, "c", seed=2)
    r3 = agent.cycle()
    assert r2.offline and r3.offline and r3.pending == 2
    # an agent restart in between: the spool survives
    restarted = env.agent()
    assert restarted.status()["spooled"] == 2
    env.server.start()
    (env.roots / "a" / "model.safetensors").unlink()
    r4 = restarted.cycle()
    assert (r4.sent, r4.pending, r4.offline) == (3, 0, False)
    assert [r["seq"] for r in env.fleet.reports] == [1, 2, 3, 4]
    assert env.server_paths() == paths(r4, env)
    assert restarted.status()["last_ack"] == 4


def test_resync_required_sends_a_full_report(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    agent.cycle()
    host = next(iter(env.fleet.hosts.values()))
    host.update(acked=0, state={})  # the server lost this host's state
    result = agent.cycle()
    assert result.sent == 1 and any("full report" in n for n in result.notes)
    assert env.fleet.reports[-1]["full"] is True
    assert env.server_paths() == paths(result, env)


def test_revoked_key_reenrolls_with_the_secret_else_stops_clearly(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    agent.cycle()
    old = load_state(env.state_dir)
    assert old is not None
    env.fleet.revoke(old.host_id)
    result = agent.cycle()
    assert result.sent == 1 and any("re-enrolled" in n for n in result.notes)
    new = load_state(env.state_dir)
    assert new is not None and new.host_key != old.host_key and new.host_id == old.host_id

    env.fleet.revoke(new.host_id)
    env.secret.unlink()
    with pytest.raises(NotEnrolled, match="secret.*not available.*modelward agent enroll"):
        agent.cycle()
    assert agent.status()["spooled"] == 1  # the report waits for a new enrollment


QUARANTINE_REGO = """package modelward.custom
import rego.v1
decisions contains d if {
  some a in input.artifacts
  contains(a.path, "/bad/")
  d := {"rule": "no-bad", "action": "quarantine", "severity": "high", "message": "bad model",
        "subject": {"kind": "artifact", "path": a.path, "sha256": a.sha256}}
}
"""


def test_signed_bundle_enforces_only_when_enabled_and_forgery_keeps_last_good(env: Env) -> None:
    model(env.roots, "good")
    bad = model(env.roots, "bad", seed=3) / "model.safetensors"
    env.enroll()
    env.fleet.push({"custom.rego": QUARANTINE_REGO}, {}, [])
    agent = env.agent()
    r1 = agent.cycle()
    assert r1.actions == () and bad.exists()  # enforcement off: reported only
    decisions = env.fleet.reports[-1]["decisions"]
    assert any(d["rule"] == "no-bad" and d["action"] == "quarantine" for d in decisions)

    good_etag = env.fleet.bundle["etag"] if env.fleet.bundle else None
    env.fleet.push({"custom.rego": QUARANTINE_REGO}, {"agent_enforce": True}, [])
    assert env.fleet.bundle is not None
    env.fleet.bundle["settings"] = {"agent_enforce": True, "commercial": True}  # forged
    r2 = agent.cycle()
    assert any("does not verify" in n for n in r2.notes)
    assert r2.actions == () and bad.exists()
    assert env.fleet.reports[-1]["agent"]["bundle_etag"] == good_etag

    env.fleet.push({"custom.rego": QUARANTINE_REGO}, {"agent_enforce": True}, [])
    r3 = agent.cycle()
    assert [(a["kind"], a["ok"]) for a in r3.actions] == [("quarantine", True)]
    assert not bad.exists() and (env.tmp / "vault").is_dir()
    assert str(bad) not in env.server_paths()


def test_loop_reports_a_new_model_within_seconds(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    results: list[CycleResult] = []
    stop = threading.Event()
    loop = threading.Thread(
        target=agent.run_forever,
        args=(3600,),
        kwargs={"stop": stop, "debounce": 0.3, "on_cycle": results.append},
        daemon=True,
    )
    loop.start()
    try:
        deadline = time.monotonic() + 15
        while not results and time.monotonic() < deadline:
            time.sleep(0.05)
        assert results, "the first cycle did not run"
        start = time.monotonic()
        model(env.roots, "new", seed=7)
        new = str(env.roots / "new" / "model.safetensors")
        while new not in env.server_paths() and time.monotonic() - start < 10:
            time.sleep(0.05)
        took = time.monotonic() - start
        assert new in env.server_paths(), "the new model was not reported"
        assert took < 5, f"reported after {took:.1f} s"
    finally:
        stop.set()
        loop.join(15)
    assert not loop.is_alive()
