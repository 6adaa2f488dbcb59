"""diff: added/removed/changed between inventories, full on first contact, apply round-trips."""

from __future__ import annotations

from typing import Any

from modelward.agent import diff


def _inv(*arts: tuple[str, str], runtimes: tuple[str, ...] = (), pkgs: tuple[str, ...] = ()) -> Any:
    return {
        "artifacts": [{"path": p, "sha256": h, "size": 1} for p, h in arts],
        "runtimes": [{"name": n, "running": False} for n in runtimes],
        "packages": [{"name": n, "version": "1", "environment": "/venv"} for n in pkgs],
    }


def test_first_contact_is_everything_added() -> None:
    new = diff.state_of(_inv(("/m/a", "1"), runtimes=("ollama",), pkgs=("torch",)))
    added, removed = diff.delta(None, new)
    assert [a["path"] for a in added["artifacts"]] == ["/m/a"]
    assert [r["name"] for r in added["runtimes"]] == ["ollama"]
    assert [p["name"] for p in added["packages"]] == ["torch"]
    assert removed == {"artifacts": [], "runtimes": [], "packages": []}


def test_added_removed_changed() -> None:
    old = diff.state_of(_inv(("/m/a", "1"), ("/m/b", "2"), pkgs=("torch", "vllm")))
    new = diff.state_of(_inv(("/m/a", "1"), ("/m/b", "3"), ("/m/c", "4"), pkgs=("torch",)))
    added, removed = diff.delta(old, new)
    assert [(a["path"], a["sha256"]) for a in added["artifacts"]] == [("/m/b", "3"), ("/m/c", "4")]
    assert removed["artifacts"] == []
    assert removed["packages"] == ["vllm@/venv"]
    assert diff.delta(new, new) == (
        {"artifacts": [], "runtimes": [], "packages": []},
        {"artifacts": [], "runtimes": [], "packages": []},
    )
    assert diff.is_empty(*diff.delta(new, new))


def test_apply_reproduces_the_new_state_and_as_full() -> None:
    old = diff.state_of(_inv(("/m/a", "1"), ("/m/b", "2"), runtimes=("ollama",)))
    new = diff.state_of(_inv(("/m/b", "9"), ("/m/c", "4")))
    added, removed = diff.delta(old, new)
    report = {"seq": 2, "base": 1, "full": False, "added": added, "removed": removed}
    assert diff.apply(old, report) == new
    full = diff.as_full(report, new)
    assert full["full"] is True and full["base"] is None
    assert diff.apply(None, full) == new
    assert diff.apply({"artifacts": {"/x": {}}, "runtimes": {}, "packages": {}}, full) == new
