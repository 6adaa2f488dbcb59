"""``policy check --waivers`` with a ``package:`` waiver over a real evaluation of the bundled pack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from tests.policy.test_engine import inventory

PKG = {
    "name": "llama-cpp-python",
    "version": "0.2.50",
    "environment": "/v",
    "findings": [{"rule": "package.vulnerable-version", "severity": "high", "message": "CVE"}],
}


def check(
    tmp_path: Path, waiver: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any]]:
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(inventory([], packages=[PKG])))
    waivers = tmp_path / "waivers.yaml"
    waivers.write_text(
        f"waivers:\n  - {waiver}\n    reason: vendor pin\n    approved_by: sec@example.com\n"
        "    expires: 2099-01-01\n"
    )
    argv = ["policy", "check", "--inventory", str(inv), "-f", "json", "--waivers", str(waivers)]
    with pytest.raises(SystemExit) as info:
        main(argv)
    out, _ = capsys.readouterr()
    return int(info.value.code or 0), json.loads(out)


def test_a_package_waiver_allows_a_vulnerable_library(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = check(tmp_path, "package: llama_cpp_python\n    version: 0.2.50", capsys)
    (d,) = doc["decisions"]
    assert code == 0
    assert d["subject"] == {"kind": "package", "name": "llama-cpp-python==0.2.50"}
    assert d["action"] == "allow" and "sec@example.com" in d["waived_by"]


def test_a_package_waiver_for_another_version_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, doc = check(tmp_path, "package: llama-cpp-python\n    version: 0.3.0", capsys)
    assert code == 1 and doc["decisions"][0]["action"] == "deny"


def test_check_help_documents_package_waivers(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["policy", "check", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "`package:` (name, with an optional `version:`)" in out
