"""The agent against the real server (live uvicorn, SQLite and PostgreSQL): enroll, run --once,
offline spooling and replay in order, refused keys (re-enroll or a clear stop), resync, signed
policy bundles and enforcement, watching."""

from __future__ import annotations

import stat
import threading
import time

import pytest

from modelward.agent.enroll import NotEnrolled, load_state
from modelward.agent.runner import CycleResult
from tests.agent.conftest import Env, model


def on_disk(env: Env) -> set[str]:
    return {str(p) for p in env.roots.rglob("*.safetensors")}


def test_enroll_writes_an_owner_only_key_and_run_once_reports_full(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    key_file = env.state_dir / "agent.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    state = load_state(env.state_dir)
    assert state is not None and state.host_key.startswith("mwh_")
    assert state.bundle_public_key and "PUBLIC KEY" in state.bundle_public_key

    agent = env.agent()
    first = agent.cycle()  # no bundle pushed yet: the bundled pack with default settings
    assert (first.seq, first.full, first.sent, first.pending, first.offline) == (
        1,
        True,
        1,
        0,
        False,
    )
    assert env.server_paths() == on_disk(env) != set()
    status = env.agent_status()
    assert status["rss_bytes"] > 0 and "cpu_percent" in status and status["spool_dropped"] == 0

    second = agent.cycle()  # nothing changed: an empty delta on the acknowledged base
    assert (second.seq, second.full, second.sent) == (2, False, 1)
    assert env.applied() == [1, 2]
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
    restarted = env.agent()  # an agent restart while offline: the spool survives
    assert restarted.status()["spooled"] == 2
    env.server.start()
    (env.roots / "a" / "model.safetensors").unlink()
    r4 = restarted.cycle()
    assert (r4.sent, r4.pending, r4.offline) == (3, 0, False)
    assert env.applied() == [1, 2, 3, 4]
    assert env.server_paths() == on_disk(env)
    assert restarted.status()["last_ack"] == 4


def test_a_full_spool_drops_the_oldest_counts_it_and_the_server_still_converges(
    env: Env,
) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent(max_spool_count=2)
    agent.cycle()
    env.server.stop()
    for n in range(1, 5):  # four reports offline, room for two
        model(env.roots, f"m{n}", seed=n)
        if n == 2:
            (env.roots / "a" / "model.safetensors").unlink()
        agent.cycle()
    assert agent.status()["spooled"] == 2 and agent.status()["spool_dropped"] == 2
    env.server.start()
    result = agent.cycle()  # the spool goes out before report 6 is spooled: no more drops
    assert (result.sent, result.pending) == (3, 0)
    assert env.applied() == [1, 4, 5, 6]  # 2 and 3 were dropped; 4 was rebuilt as a full report
    assert env.server_paths() == on_disk(env)  # the removal in dropped report 3 is not lost
    assert env.agent_status()["spool_dropped"] == 2


def test_resync_required_sends_a_full_report(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    agent.cycle()
    env.enroll()  # the machine enrolled again (e.g. re-imaged): the server wants a full report
    model(env.roots, "b", seed=1)
    result = env.agent().cycle()
    assert result.sent == 1 and any("full report" in n for n in result.notes)
    assert env.server_paths() == on_disk(env)


def test_refused_key_reenrolls_with_the_secret_else_stops_clearly(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    agent.cycle()
    old = load_state(env.state_dir)
    assert old is not None
    # Another enrollment of this machine invalidates the key this agent holds.
    env.fleet.enroll(
        env.secret.read_text().strip(),
        {"hostname": "x", "machine_id": (env.state_dir / "machine-id").read_text().strip()},
    )
    result = agent.cycle()
    assert result.sent == 1 and any("re-enrolled" in n for n in result.notes)
    new = load_state(env.state_dir)
    assert new is not None and new.host_key != old.host_key and new.host_id == old.host_id

    # An admin revoked the host: re-enrolling is refused too, the agent stops with a message.
    env.fleet.revoke_host(new.host_id, "tests")
    with pytest.raises(NotEnrolled, match=r"refused.*modelward agent enroll"):
        agent.cycle()
    assert agent.status()["spooled"] == 1  # the report waits for a new enrollment


def test_unknown_key_without_secret_file_stops_clearly(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    agent = env.agent()
    env.fleet.enroll(
        env.secret.read_text().strip(),
        {"hostname": "x", "machine_id": (env.state_dir / "machine-id").read_text().strip()},
    )
    env.secret.unlink()
    with pytest.raises(NotEnrolled, match=r"secret is not available.*modelward agent enroll"):
        agent.cycle()


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
    first_etag = env.push({"custom.rego": QUARANTINE_REGO}, {})
    agent = env.agent()
    r1 = agent.cycle()
    assert r1.decisions >= 1 and r1.actions == () and bad.exists()  # enforcement off
    assert env.agent_status()["bundle_etag"] == first_etag

    env.push({"custom.rego": QUARANTINE_REGO}, {"commercial": True})
    env.forge_current_bundle({"agent_enforce": True})  # changed after signing
    r2 = agent.cycle()
    assert any("does not verify" in n for n in r2.notes)
    assert r2.actions == () and bad.exists()
    assert env.agent_status()["bundle_etag"] == first_etag  # the last good bundle stays

    env.push({"custom.rego": QUARANTINE_REGO}, {"agent_enforce": True})
    r3 = agent.cycle()
    assert [(a["kind"], a["ok"]) for a in r3.actions] == [("quarantine", True)]
    assert not bad.exists() and (env.tmp / "vault").is_dir()
    assert str(bad) not in env.server_paths()
    assert agent.status()["enforce"] is True


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # watching is the agent's part
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
            time.sleep(0.1)
        took = time.monotonic() - start
        assert new in env.server_paths(), "the new model was not reported"
        assert took < 5, f"reported after {took:.1f} s"
    finally:
        stop.set()
        loop.join(15)
    assert not loop.is_alive()


def test_a_bundle_that_does_not_evaluate_still_reports_the_inventory(env: Env) -> None:
    model(env.roots, "a")
    env.enroll()
    env.push({"broken.rego": "package modelward.broken\n\ndeny contains x if {"}, {})
    result = env.agent().cycle()
    assert result.sent == 1 and result.decisions == 0
    assert any("not evaluated" in n for n in result.notes)
    assert env.server_paths() == on_disk(env)
