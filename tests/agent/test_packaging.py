"""The example service definitions: hardened, within the budget, and calling options that exist."""

from __future__ import annotations

import configparser
import plistlib
from pathlib import Path

import pytest

from modelward.cli import main

ROOT = Path(__file__).resolve().parents[2] / "packaging"


def test_systemd_unit_is_hardened_and_budgeted() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "systemd" / "modelward-agent.service")
    service = unit["Service"]
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] in ("full", "strict")
    assert int(service["Nice"]) >= 10
    assert service["CPUQuota"] == "10%"
    assert service["MemoryMax"] == "200M"
    assert "agent run" in service["ExecStart"]
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_launchd_plist_parses_and_runs_the_agent() -> None:
    with (ROOT / "launchd" / "dev.modelward.agent.plist").open("rb") as fh:
        job = plistlib.load(fh)
    assert job["Label"] == "dev.modelward.agent"
    assert job["ProgramArguments"][1:3] == ["agent", "run"]
    assert job["Nice"] >= 10 and job["LowPriorityIO"] is True
    assert job["HardResourceLimits"]["ResidentSetSize"] <= 200 << 20


def test_the_options_the_service_files_use_exist(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["agent", "run", "--help"])
    out = capsys.readouterr().out
    for option in ("--state-dir", "--hash-rate", "--once", "--roots", "--interval", "--nice"):
        assert option in out
