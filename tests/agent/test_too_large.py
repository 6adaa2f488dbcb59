"""A report too large for the server never wedges the spool: it is split into reports that have
the same effect (each applied exactly once), else the entry or report that cannot fit is left out,
logged and counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelward.agent import diff
from modelward.agent.spool import Spool
from tests.agent.conftest import Env, model


def _report(seq: int, n: int, *, full: bool = True, base: int | None = None) -> dict[str, Any]:
    return {
        "report_id": f"00000000-0000-4000-8000-{seq:012d}",
        "seq": seq,
        "base": base,
        "full": full,
        "added": {
            "artifacts": [{"path": f"/m/{i}", "blob": "x" * 100} for i in range(n)],
            "runtimes": [{"name": "ollama"}],
            "packages": [],
        },
        "removed": {"artifacts": ["/gone"], "runtimes": [], "packages": []},
        "decisions": [{"rule": "r"}],
        "actions": [{"kind": "quarantine"}],
    }


def test_split_parts_have_the_same_effect_and_fit() -> None:
    before = diff.state_of({"artifacts": [{"path": "/gone"}, {"path": "/old"}]})
    for full in (True, False):
        report = _report(5, 30, full=full, base=None if full else 4)
        target = len(diff.encoded(report)) // 3
        parts = diff.split(report, target)
        assert parts is not None and len(parts) >= 3
        state = before
        for p in parts:
            assert len(diff.encoded(p)) <= target
            assert p["decisions"] == report["decisions"]
            state = diff.apply(state, p)
        assert state == diff.apply(before, report)
        assert [bool(p["actions"]) for p in parts] == [False] * (len(parts) - 1) + [True]
        assert [p["full"] for p in parts] == [full] + [False] * (len(parts) - 1)
    assert diff.split(_report(1, 0), 10_000) is None  # one entry: nothing to cut
    assert diff.split(_report(1, 30), 50) is None  # the decisions alone are too large


def test_rewrite_is_all_or_nothing_across_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for seq in (1, 2):
        spool.put(_report(seq, 1))
    old = spool.entries()
    new = [
        {**_report(seq, 1), "report_id": f"10000000-0000-4000-8000-{seq:012d}"} for seq in (1, 2, 3)
    ]
    # cut short before the journal: the spool is as it was
    (tmp_path / "rewrite").mkdir()
    (tmp_path / "rewrite" / "000000000003-x.json").write_text("{}")
    assert [e.report_id for e in Spool(tmp_path).entries()] == [e.report_id for e in old]
    assert not (tmp_path / "rewrite").exists()
    # cut short after the journal, one file moved: the next open finishes the move
    spool.rewrite(old, new)
    done = [(e.seq, e.report_id) for e in spool.entries()]
    assert done == [(s, f"10000000-0000-4000-8000-{s:012d}") for s in (1, 2, 3)]
    staging = tmp_path / "rewrite"
    staging.mkdir()
    moved = spool.entries()[0]
    for e in spool.entries()[1:]:
        e.path.rename(staging / e.path.name)
    for e in old:
        e.path.write_text(json.dumps(_report(e.seq, 1)))
    (tmp_path / "rewrite.json").write_text(
        json.dumps(
            {
                "remove": [e.path.name for e in old],
                "add": [moved.path.name, *sorted(p.name for p in staging.iterdir())],
            }
        )
    )
    assert [(e.seq, e.report_id) for e in Spool(tmp_path).entries()] == done
    assert not (tmp_path / "rewrite.json").exists()


def on_disk(env: Env) -> set[str]:
    return {str(p) for p in env.roots.rglob("*.safetensors")}


@pytest.mark.parametrize("how", ["refused", "known"])
def test_a_report_too_large_for_the_server_is_split(
    env: Env, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    import modelward.server.api.agent as api

    for n in range(4):
        model(env.roots, f"m{n}", seed=n)
    env.enroll()
    if how == "refused":  # the server (or a proxy) answers 413
        monkeypatch.setattr(api, "MAX_REPORT_BYTES", 1500)
        agent = env.agent()
    else:  # the agent knows the limit and never sends it whole
        agent = env.agent(max_report_bytes=1500)
    env.server.stop()
    first = agent.cycle()  # offline: spooled (known: split already), then a delta behind it
    model(env.roots, "late", seed=9)
    second = agent.cycle()
    env.server.start()
    result = agent.cycle()
    notes = first.notes + second.notes + result.notes
    assert result.pending == 0 and not result.offline, result
    applied = env.applied()
    assert applied == sorted(applied) and len(applied) == len(set(applied)) > 3
    assert env.server_paths() == on_disk(env)
    assert first.seq == 1 and any("split into" in n for n in notes)
    status = agent.status()
    assert status["last_ack"] == applied[-1] == status["last_report"]
    assert env.agent_status()["reports_too_large"] == 0
    model(env.roots, "later", seed=10)
    again = agent.cycle()  # the chain goes on from the last part
    assert (again.full, again.sent, again.pending) == (False, 1, 0)
    assert env.server_paths() == on_disk(env)


def test_an_entry_too_large_for_any_report_is_left_out_and_counted(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    import modelward.server.api.agent as api

    for n in range(2):
        model(env.roots, f"m{n}", seed=n)
    env.enroll()
    monkeypatch.setattr(api, "MAX_REPORT_BYTES", 1000)
    logged: list[str] = []
    agent = env.agent()
    agent.log = logged.append
    result = agent.cycle()
    assert result.pending == 0
    assert env.server_paths() == set() and agent.status()["reports_too_large"] == 2
    assert any("too large for the server to take" in m for m in logged)
    again = agent.cycle()  # not wedged: the next reports go through, the counter with them
    assert (again.sent, again.pending) == (1, 0)
    assert env.agent_status()["reports_too_large"] == 2
