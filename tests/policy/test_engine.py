"""The bundled policy pack's decisions, policy errors with file:line, and the Rego unit tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelward.errors import PolicyError
from modelward.inventory import InventoryOptions, collect
from modelward.models import Severity
from modelward.policy.decision import Decision
from modelward.policy.engine import PACK, evaluate, run_tests
from modelward.policy.settings import Settings

SHA_A = "a" * 64
SHA_B = "b" * 64


def artifact(path: str = "/m/model.safetensors", **kw: Any) -> dict[str, Any]:
    a: dict[str, Any] = {
        "path": path,
        "size": 10,
        "sha256": SHA_B,
        "format": "safetensors",
        "source": {"kind": "file", "name": None, "repo": None, "revision": None},
        "license": {"id": "apache-2.0", "name": "Apache 2.0", "evidence": "card"},
        "metadata": {},
        "findings": [],
        "in_use": False,
    }
    a.update(kw)
    return a


def inventory(artifacts: list[dict[str, Any]], **kw: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema": "modelward.inventory/v1",
        "host": {},
        "artifacts": artifacts,
        "runtimes": [],
        "packages": [],
        "errors": [],
    }
    doc.update(kw)
    return doc


def rules(decisions: list[Decision]) -> dict[str, Decision]:
    return {d.rule: d for d in decisions}


MALICIOUS = artifact(
    "/m/evil.pkl",
    sha256=SHA_A,
    format="pickle",
    findings=[
        {
            "rule": "pickle.dangerous-global",
            "severity": "critical",
            "message": "calls os.system",
            "evidence": "os.system",
            "location": "",
            "remediation": "",
        }
    ],
)


def test_a_malicious_pickle_is_quarantined_and_denied() -> None:
    got = rules(evaluate(inventory([MALICIOUS])))
    assert got["code-execution"].action == "quarantine"
    assert got["code-execution"].severity is Severity.CRITICAL
    assert got["code-execution"].subject.path == "/m/evil.pkl"
    assert got["code-execution"].subject.sha256 == SHA_A
    assert got["unapproved-pickle"].action == "deny"


def test_an_approved_pickle_digest_is_not_denied() -> None:
    clean = artifact("/m/ok.pt", sha256=SHA_A, format="pytorch")
    assert evaluate(inventory([clean]), Settings(approved_sha256=(SHA_A,))) == []
    assert rules(evaluate(inventory([clean])))["unapproved-pickle"].action == "deny"


def test_a_clean_permissive_model_gets_no_decision() -> None:
    assert evaluate(inventory([artifact()])) == []


def test_an_unapproved_model_warns_once_lists_exist() -> None:
    hub = Settings(approved_origins=("acme/*",))
    theirs = artifact(
        source={"kind": "huggingface", "name": None, "repo": "evil/x", "revision": None}
    )
    ours = artifact(
        "/m/b", source={"kind": "huggingface", "name": None, "repo": "acme/x", "revision": None}
    )
    got = evaluate(inventory([theirs, ours]), hub)
    assert [(d.rule, d.action, d.subject.path) for d in got] == [
        ("unapproved-model", "warn", "/m/model.safetensors")
    ]


@pytest.mark.parametrize("lic", ["cc-by-nc-4.0", "cc-by-nc-sa-4.0", "mrl", "research"])
def test_a_noncommercial_license_warns_or_denies(lic: str) -> None:
    doc = inventory([artifact(license={"id": lic, "name": "", "evidence": ""})])
    assert rules(evaluate(doc))["license-noncommercial"].action == "warn"
    assert rules(evaluate(doc, Settings(commercial=True)))["license-noncommercial"].action == "deny"


def test_unknown_and_denied_licenses() -> None:
    unknown = artifact("/m/u", license={"id": "unknown", "name": "", "evidence": ""})
    got = rules(
        evaluate(inventory([unknown, artifact()]), Settings(denied_licenses=("apache-2.0",)))
    )
    assert got["license-unknown"].action == "warn"
    assert got["license-denied"].action == "deny"
    assert got["license-denied"].subject.path == "/m/model.safetensors"


def runtime(
    address: str, exposed: bool, findings: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "name": "ollama",
        "version": "0.1.33",
        "executable": "/usr/bin/ollama",
        "running": True,
        "pids": [1],
        "listen": [{"address": address, "port": 11434, "exposed": exposed}],
        "findings": findings or [],
        "gpu_memory": None,
    }


def test_an_exposed_runtime_is_denied_unless_allowed() -> None:
    doc = inventory([], runtimes=[runtime("0.0.0.0", True)])
    got = rules(evaluate(doc))["runtime-exposed"]
    assert (got.action, got.subject.kind, got.subject.name) == ("deny", "runtime", "ollama")
    assert "0.0.0.0:11434" in got.message
    assert evaluate(doc, Settings(allow_network_exposure=True)) == []
    assert evaluate(inventory([], runtimes=[runtime("127.0.0.1", False)])) == []


def test_vulnerable_runtime_and_package_are_denied() -> None:
    vuln = {
        "rule": "runtime.vulnerable-version",
        "severity": "critical",
        "message": "CVE-2024-37032",
    }
    pkg = {
        "name": "llama-cpp-python",
        "version": "0.2.50",
        "environment": "/v",
        "findings": [{"rule": "package.vulnerable-version", "severity": "high", "message": "CVE"}],
    }
    doc = inventory([], runtimes=[runtime("127.0.0.1", False, [vuln])], packages=[pkg])
    got = evaluate(doc)
    assert {(d.rule, d.subject.kind, d.severity.label) for d in got} == {
        ("vulnerable-version", "runtime", "critical"),
        ("vulnerable-version", "package", "high"),
    }


def test_a_cloud_model_warns_unless_allowed() -> None:
    cloud = artifact(
        "/o/manifests/x", sha256=None, format="unknown", metadata={"ollama": {"cloud": True}}
    )
    assert rules(evaluate(inventory([cloud])))["cloud-model"].action == "warn"
    assert "cloud-model" not in rules(
        evaluate(inventory([cloud]), Settings(allow_cloud_models=True))
    )


def test_hostile_strings_come_back_intact() -> None:
    path = '/m/a "quoted"\\ \n path ü.pkl'
    got = rules(evaluate(inventory([dict(MALICIOUS, path=path)])))
    assert got["code-execution"].subject.path == path
    assert got["code-execution"].message.startswith(path)


def test_a_real_inventory_with_a_malicious_pickle(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "Downloads").mkdir(parents=True)
    (home / "Downloads" / "model.pkl").write_bytes(
        b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
    )
    options = InventoryOptions(
        processes=False, runtimes=False, cache=tmp_path / "c.sqlite", env={"HOME": str(home)}
    )
    inv = collect([home], options)
    got = rules(evaluate(inv.to_dict()))
    assert got["code-execution"].action == "quarantine"
    assert got["code-execution"].subject.path.endswith("model.pkl")


def test_ten_thousand_artifacts_evaluate() -> None:
    arts = [
        artifact(f"/m/{i}.pt", sha256=f"{i:064x}", format="pytorch" if i % 2 else "gguf")
        for i in range(10_000)
    ]
    got = evaluate(inventory(arts))
    assert len(got) == 5_000
    assert {d.rule for d in got} == {"unapproved-pickle"}


def test_a_custom_policy_with_conftest_rules(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package modelward\n\nimport rego.v1\n\n"
        'deny contains msg if {\n  some a in input.artifacts\n  a.format == "gguf"\n'
        '  msg := concat("", [a.path, ": no gguf"])\n}\n\n'
        'warn contains {"msg": "hello", "rule": "greet"} if true\n'
    )
    got = evaluate(inventory([artifact(format="gguf")]), policy=tmp_path)
    assert [(d.rule, d.action, d.message) for d in got] == [
        ("modelward", "deny", "/m/model.safetensors: no gguf"),
        ("greet", "warn", "hello"),
    ]


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.rego"
    bad.write_text("package modelward\n\nimport rego.v1\n\ndeny contains 1 if {\n  input.x ==\n}\n")
    with pytest.raises(PolicyError) as info:
        evaluate(inventory([]), policy=tmp_path)
    text = info.value.diagnostics()
    assert f"{bad}:6:" in text
    assert "\n" not in text and len(text) < 500


def test_an_undefined_function_is_an_error_not_an_allow(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        "package modelward\n\nimport rego.v1\n\ndeny contains m if {\n  m := no_such_fn(1)\n}\n"
    )
    with pytest.raises(PolicyError, match="no_such_fn"):
        evaluate(inventory([]), policy=tmp_path)


def test_a_malformed_decision_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text(
        'package modelward\n\nimport rego.v1\n\ndecisions := [{"rule": "x", "action": "nuke"}]\n'
    )
    with pytest.raises(PolicyError, match="lacks"):
        evaluate(inventory([]), policy=tmp_path)


def test_an_empty_policy_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"no \.rego files"):
        evaluate(inventory([]), policy=tmp_path)


def test_the_bundled_pack_tests_pass() -> None:
    results = run_tests()
    assert len(results) >= 25
    assert [r.name for r in results if not r.passed] == []
    families = {Path(r.file).name for r in results}
    for rego in PACK.glob("*.rego"):
        if not rego.name.endswith("_test.rego"):
            assert rego.name.replace(".rego", "_test.rego") in families


def test_a_failing_rego_test_fails(tmp_path: Path) -> None:
    (tmp_path / "p.rego").write_text("package demo\n\nimport rego.v1\n\nx := 2\n")
    (tmp_path / "p_test.rego").write_text(
        "package demo_test\n\nimport data.demo\nimport rego.v1\n\n"
        "test_ok if demo.x == 2\n\ntest_bad if {\n  demo.x == 3\n}\n"
    )
    assert [(r.name, r.passed) for r in run_tests(tmp_path)] == [
        ("test_ok", True),
        ("test_bad", False),
    ]


def test_formats_and_severities_in_capitals_count() -> None:
    """A hand-written inventory may say PICKLE or CRITICAL: the pack reads them as modelward's own
    lower-case names (a capital letter must not let a malicious pickle through)."""
    art = artifact(
        "/m/evil.pkl",
        format="PICKLE",
        findings=[{"rule": "pickle.dangerous-global", "severity": "CRITICAL", "message": "m"}],
    )
    rules = {(d.rule, d.action) for d in evaluate(inventory([art]))}
    assert ("code-execution", "quarantine") in rules
    assert ("unapproved-pickle", "deny") in rules
