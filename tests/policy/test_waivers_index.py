"""Waivers are looked up by subject (digest, runtime name, normalised package name) instead of
being compared with every decision: the results are exactly those of the plain search."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace

from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.policy.waivers import (
    ExpiredWaiver,
    Waiver,
    WaiverReview,
    apply_waivers,
    review_waivers,
)

TODAY = dt.date(2026, 11, 25)
SHAS = [f"{i:064x}" for i in range(12)]
RUNTIMES = ["ollama", "llama.cpp", "vllm"]
PACKAGES = ["torch==2.0.1", "Llama_CPP.Python==0.2.50", "vllm==0.5.0", "torch"]
RULES = [None, "unapproved-pickle", "runtime-exposed", "vulnerable-version", "code-execution"]


def _plain_apply(
    decisions: list[Decision], waivers: list[Waiver]
) -> tuple[list[Decision], list[ExpiredWaiver]]:
    """The search as it was before the index: every waiver against every decision."""
    out: list[Decision] = []
    expired: list[ExpiredWaiver] = []
    for d in decisions:
        if d.action == "allow":
            out.append(d)
            continue
        live = next((w for w in waivers if w.matches(d) and w.expires >= TODAY), None)
        if live is not None:
            out.append(replace(d, action="allow", waived_by=live.label))
            continue
        out.append(d)
        expired.extend(ExpiredWaiver(w, d) for w in waivers if w.matches(d))
    return out, expired


def _plain_review(decisions: list[Decision], waivers: list[Waiver]) -> WaiverReview:
    expired = tuple(w for w in waivers if w.expires < TODAY)
    waivable = [d for d in decisions if d.action != "allow"]
    unused = tuple(
        w for w in waivers if w.expires >= TODAY and not any(w.matches(d) for d in waivable)
    )
    return WaiverReview(expired, unused, "w.yaml")


def _decision(rng: random.Random) -> Decision:
    kind = rng.choice(["artifact", "artifact", "runtime", "package", "model"])
    if kind == "artifact":
        subject = Subject("artifact", "/m/x", rng.choice([*SHAS, None]))
    elif kind == "package":
        subject = Subject("package", name=rng.choice([*PACKAGES, None]))
    else:
        subject = Subject(kind, name=rng.choice(RUNTIMES))
    action = rng.choice(["allow", "warn", "deny", "quarantine", "stop"])
    rule = rng.choice(RULES[1:])
    return Decision(rule, action, Severity.HIGH, subject, "m")


def _waiver(rng: random.Random, line: int) -> Waiver:
    expires = TODAY + dt.timedelta(days=rng.choice([-30, -1, 0, 1, 365]))
    common = {"reason": "r", "approved_by": f"a{line}", "expires": expires, "line": line}
    rule = rng.choice(RULES)
    kind = rng.choice(["sha256", "runtime", "package"])
    if kind == "sha256":
        return Waiver(sha256=rng.choice(SHAS), rule=rule, **common)  # type: ignore[arg-type]
    if kind == "runtime":
        return Waiver(runtime=rng.choice(RUNTIMES), rule=rule, **common)  # type: ignore[arg-type]
    name = rng.choice(["torch", "TORCH", "llama-cpp-python", "llama.cpp_python", "vllm"])
    version = rng.choice([None, "2.0.1", "0.2.50", "9"])
    return Waiver(package=name, version=version, rule=rule, **common)  # type: ignore[arg-type]


def test_the_index_gives_the_plain_search_results() -> None:
    for seed in range(40):
        rng = random.Random(seed)
        decisions = [_decision(rng) for _ in range(rng.randint(0, 80))]
        waivers = [_waiver(rng, line) for line in range(rng.randint(0, 40))]
        assert apply_waivers(decisions, waivers, TODAY) == _plain_apply(decisions, waivers)
        assert review_waivers(decisions, waivers, TODAY, "w.yaml") == _plain_review(
            decisions, waivers
        )


def test_the_first_current_waiver_in_the_file_wins() -> None:
    sha = SHAS[0]
    d = Decision("unapproved-pickle", "deny", Severity.HIGH, Subject("artifact", "/m", sha), "m")
    old = Waiver("r", "first", TODAY - dt.timedelta(days=1), sha256=sha, line=2)
    a = Waiver("r", "second", TODAY, sha256=sha, line=7)
    b = Waiver("r", "third", TODAY, sha256=sha, rule="unapproved-pickle", line=12)
    (out,), expired = apply_waivers([d], [old, a, b], TODAY)
    assert out.waived_by == a.label and expired == []
    (out,), expired = apply_waivers([d], [old], TODAY)
    assert out.action == "deny" and expired == [ExpiredWaiver(old, d)]


def test_many_waivers_over_many_decisions() -> None:
    """5,000 waivers over 10,000 decisions: each decision meets only its own waivers (no timing
    assert; this took about 5 s before the index and takes milliseconds now)."""
    decisions = [
        Decision("unapproved-pickle", "deny", Severity.HIGH, Subject("artifact", "/m", f"{i:064x}"), "m")
        for i in range(10_000)
    ]  # fmt: skip
    waivers = [Waiver("r", "a", TODAY, sha256=f"{i:064x}", line=i) for i in range(0, 10_000, 2)]
    out, expired = apply_waivers(decisions, waivers, TODAY)
    assert sum(d.action == "allow" for d in out) == 5_000 and expired == []
    assert review_waivers(decisions, waivers, TODAY).unused == ()
