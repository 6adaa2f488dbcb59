"""Waivers: matched by digest or runtime, expiring, and validated with file and line."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelward.models import Severity
from modelward.policy.decision import Decision, Subject
from modelward.policy.waivers import WaiverError, apply_waivers, load_waivers

SHA = "ab" * 32
DENY = Decision(
    "unapproved-pickle", "deny", Severity.HIGH, Subject("artifact", "/m/x.pt", SHA), "m"
)
EXPOSED = Decision("runtime-exposed", "deny", Severity.HIGH, Subject("runtime", name="ollama"), "e")


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "waivers.yaml"
    p.write_text(text)
    return p


def test_a_current_waiver_allows_and_says_who(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"waivers:\n  - sha256: {SHA}\n    reason: legacy\n    approved_by: sec@example.com\n"
        "    expires: 2030-01-01\n  - runtime: ollama\n    rule: runtime-exposed\n"
        "    reason: lab box\n    approved_by: it\n    expires: 2030-01-01\n",
    )
    waivers = load_waivers(p)
    out, expired = apply_waivers([DENY, EXPOSED], waivers, dt.date(2026, 11, 25))
    assert [d.action for d in out] == ["allow", "allow"]
    assert out[0].waived_by is not None and "sec@example.com" in out[0].waived_by
    assert expired == []


def test_an_expired_waiver_stops_applying_and_is_reported(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"waivers:\n  - sha256: {SHA}\n    reason: r\n    approved_by: a\n    expires: 2025-01-01\n",
    )
    out, expired = apply_waivers([DENY], load_waivers(p), dt.date(2026, 11, 25))
    assert out[0].action == "deny" and out[0].waived_by is None
    assert len(expired) == 1 and "expired on 2025-01-01" in expired[0].message()


def test_a_rule_restricted_waiver_leaves_other_rules(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f"waivers:\n  - sha256: {SHA}\n    rule: license-unknown\n    reason: r\n"
        "    approved_by: a\n    expires: 2030-01-01\n",
    )
    out, _ = apply_waivers([DENY], load_waivers(p), dt.date(2026, 11, 25))
    assert out[0].action == "deny"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        (
            "waivers:\n  - sha256: abc\n    reason: r\n    approved_by: a\n    expires: 2030-01-01\n",
            ":2:",
        ),
        (
            f"waivers:\n  - sha256: {SHA}\n    reason: r\n    approved_by: a\n    expire: 2030-01-01\n",
            ":5: unknown key 'expire'",
        ),
        (
            f"waivers:\n  - sha256: {SHA}\n    reason: r\n    approved_by: a\n    expires: soon\n",
            ":5:",
        ),
        (
            f"waivers:\n  - sha256: {SHA}\n    approved_by: a\n    expires: 2030-01-01\n",
            "needs 'reason'",
        ),
        (
            "waivers:\n  - runtime: ollama\n    sha256: "
            + SHA
            + "\n    reason: r\n    approved_by: a\n    expires: 2030-01-01\n",
            "exactly one",
        ),
        ("waivers: [unclosed\n", ": not valid YAML"),
        ("other: 1\n", "expected a 'waivers:' list"),
    ],
)
def test_bad_files_name_the_line_and_key(tmp_path: Path, text: str, where: str) -> None:
    with pytest.raises(WaiverError) as exc:
        load_waivers(write(tmp_path, text))
    assert where in exc.value.diagnostics()
    assert str(tmp_path / "waivers.yaml") in exc.value.diagnostics()


def test_an_empty_file_has_no_waivers(tmp_path: Path) -> None:
    assert load_waivers(write(tmp_path, "")) == []


TORCH = Decision(
    "vulnerable-version",
    "deny",
    Severity.HIGH,
    Subject("package", name="torch==2.0.1"),
    "torch 2.0.1 (/venv): CVE-2025-32434",
)


@pytest.mark.parametrize(
    ("entry", "action"),
    [
        ("package: torch", "allow"),
        ("package: Torch\n    version: 2.0.1", "allow"),
        ("package: torch\n    version: '2.0.1'\n    rule: vulnerable-version", "allow"),
        ("package: torch\n    version: 2.1.0", "deny"),
        ("package: torchvision", "deny"),
        ("package: torch\n    rule: license-unknown", "deny"),
    ],
)
def test_a_package_waiver(tmp_path: Path, entry: str, action: str) -> None:
    p = write(
        tmp_path,
        f"waivers:\n  - {entry}\n    reason: vendor pin\n    approved_by: sec\n"
        "    expires: 2030-01-01\n",
    )
    (out,), _ = apply_waivers([TORCH], load_waivers(p), dt.date(2026, 11, 25))
    assert out.action == action
    assert (out.waived_by is not None) == (action == "allow")


def test_package_names_compare_as_pip_does(tmp_path: Path) -> None:
    d = Decision(
        "vulnerable-version",
        "deny",
        Severity.HIGH,
        Subject("package", name="llama_cpp_python"),
        "m",
    )
    p = write(
        tmp_path,
        "waivers:\n  - package: Llama.CPP-python\n    reason: r\n    approved_by: a\n"
        "    expires: 2030-01-01\n",
    )
    (out,), _ = apply_waivers([d], load_waivers(p), dt.date(2026, 11, 25))
    assert out.action == "allow"
    # a package waiver never matches an artifact or a runtime of the same name
    rt = Decision("runtime-exposed", "deny", Severity.HIGH, Subject("runtime", name="torch"), "e")
    p = write(
        tmp_path,
        "waivers:\n  - package: torch\n    reason: r\n    approved_by: a\n    expires: 2030-01-01\n",
    )
    (out,), _ = apply_waivers([rt], load_waivers(p), dt.date(2026, 11, 25))
    assert out.action == "deny"


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("runtime: ollama\n    version: '1'", ":3: 'version' goes with 'package' only"),
        ("package: torch\n    runtime: ollama", ":2: a waiver names exactly one of"),
        ("package: ''", ":2: 'package' must not be empty"),
    ],
)
def test_bad_package_waivers(tmp_path: Path, entry: str, needle: str) -> None:
    p = write(
        tmp_path,
        f"waivers:\n  - {entry}\n    reason: r\n    approved_by: a\n    expires: 2030-01-01\n",
    )
    with pytest.raises(WaiverError) as exc:
        load_waivers(p)
    assert needle in exc.value.diagnostics()
