"""A saved inventory whose entries the policy cannot judge is refused (exit 2, naming the entry and
the field), never evaluated into "no decision" (exit 0) or blamed on the policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from modelward.cli.policy import load_inventory, validate_inventory
from modelward.errors import UsageError

SHA = "b" * 64
CRITICAL = [{"rule": "pickle.dangerous-global", "severity": "critical"}]


def _doc(**lists: Any) -> dict[str, Any]:
    return {"schema": "modelward.inventory/v1", "host": {}, "errors": [], **lists}


def _pickle(**fields: Any) -> dict[str, Any]:
    a = {"path": "/m/evil.pkl", "sha256": SHA, "format": "pickle", "findings": CRITICAL}
    a.update(fields)
    return {k: v for k, v in a.items() if v is not ...}


def _check(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any) -> tuple[int, str, str]:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(SystemExit) as info:
        main(["policy", "check", "--inventory", str(p)])
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err.replace(str(p), "INV")


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (
            _doc(artifacts=[_pickle(path=...)]),
            "artifacts[0].path must be a non-empty string, not missing",
        ),
        (_doc(artifacts=[_pickle(path=7)]), "artifacts[0].path must be a non-empty string, not a number 7"),
        (_doc(artifacts=[_pickle(path="  ")]), 'artifacts[0].path must be a non-empty string, not a string "  "'),
        (_doc(artifacts=[_pickle(), 1]), "artifacts[1] must be an object, not a number 1"),
        (_doc(artifacts=["x"]), 'artifacts[0] must be an object, not a string "x"'),
        (_doc(artifacts=[None]), "artifacts[0] must be an object, not null"),
        (
            _doc(artifacts=[_pickle(findings="bad")]),
            'artifacts[0].findings must be a list of findings, not a string "bad"',
        ),
        (
            _doc(artifacts=[_pickle(findings=[{"rule": "r", "severity": "nonsense"}])]),
            "artifacts[0].findings[0].severity must be one of critical, high, info, low, medium, "
            'not "nonsense"',
        ),
        (
            _doc(artifacts=[_pickle(findings=[{"severity": "critical"}])]),
            "artifacts[0].findings[0].rule must be a non-empty string, not missing",
        ),
        (_doc(artifacts=[_pickle(findings=[7])]), "artifacts[0].findings[0] must be an object, not a number 7"),
        (_doc(artifacts=[_pickle(sha256="aa")]), 'artifacts[0].sha256 must be 64 hex digits or null, not "aa"'),
        (_doc(artifacts=[_pickle(sha256=5)]), "artifacts[0].sha256 must be 64 hex digits or null, not a number 5"),
        (_doc(artifacts=[_pickle(format={"x": 1})]), 'artifacts[0].format must be a string, not an object {"x": 1}'),
        (_doc(artifacts=[_pickle(license="mit")]), 'artifacts[0].license must be an object or null, not a string "mit"'),
        (_doc(artifacts=[_pickle(license={"id": 3})]), "artifacts[0].license.id must be a string or null, not a number 3"),
        (_doc(artifacts=[_pickle(source="s")]), 'artifacts[0].source must be an object or null, not a string "s"'),
        (_doc(artifacts=[_pickle(size=-1)]), "artifacts[0].size must not be negative, not -1"),
        (_doc(artifacts=[_pickle(size=True)]), "artifacts[0].size must be a whole number of bytes or null, not true"),
        (_doc(artifacts={"0": {}}), "artifacts must be a list, not an object {\"0\": {}}"),
        (_doc(runtimes="x"), 'runtimes must be a list, not a string "x"'),
        (_doc(runtimes=[{"name": 1}]), "runtimes[0].name must be a non-empty string, not a number 1"),
        (_doc(runtimes=[{"name": "ollama", "pids": "y"}]), 'runtimes[0].pids must be a list of process ids, not a string "y"'),
        (_doc(runtimes=[{"name": "ollama", "pids": [0]}]), "runtimes[0].pids[0] must be a process id, not 0"),
        (_doc(runtimes=[{"name": "ollama", "listen": "x"}]), 'runtimes[0].listen must be a list of sockets, not a string "x"'),
        (
            _doc(runtimes=[{"name": "ollama", "listen": [{"port": 70000}]}]),
            "runtimes[0].listen[0].port must be a port number (0-65535), not 70000",
        ),
        (
            _doc(runtimes=[{"name": "ollama", "listen": [{"port": 1, "exposed": "yes"}]}]),
            'runtimes[0].listen[0].exposed must be true or false, not a string "yes"',
        ),
        (_doc(packages=[{"name": None}]), "packages[0].name must be a non-empty string, not null"),
        (_doc(packages=[{"name": "torch", "version": [1]}]), "packages[0].version must be a string or null, not a list [1]"),
    ],
)  # fmt: skip
def test_a_malformed_entry_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any, message: str
) -> None:
    code, out, err = _check(tmp_path, capsys, doc)
    assert code == 2 and out == ""
    assert err == f"modelward: error: INV: invalid inventory: {message}\n"


def test_a_pickle_without_a_path_no_longer_escapes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: 0 decisions and exit 0. The same artifact with its path is denied (exit 1)."""
    code, _, _ = _check(tmp_path, capsys, _doc(artifacts=[_pickle(path=...)]))
    assert code == 2
    code, out, _ = _check(tmp_path, capsys, _doc(artifacts=[_pickle()]))
    assert code == 1 and "quarantine" in out


def test_a_valid_inventory_passes_and_capital_digests_are_lowered(tmp_path: Path) -> None:
    doc = _doc(
        artifacts=[
            _pickle(sha256=SHA.upper(), format="PICKLE", size=None, license=None, source=None),
            {"path": "/m/a.gguf", "sha256": None, "findings": None, "metadata": None},
            {
                "path": "/m/b.gguf",
                "size": 3,
                "sha256": "c" * 64,
                "format": "gguf",
                "source": {"kind": "ollama", "name": "llama3", "repo": None, "revision": None},
                "license": {"id": "mit", "name": None, "evidence": "x"},
                "metadata": {"any": ["thing"]},
                "findings": [{"rule": "r", "severity": "HIGH", "message": "m"}],
                "in_use": False,
            },
        ],
        runtimes=[
            {
                "name": "ollama",
                "version": None,
                "executable": "/usr/bin/ollama",
                "running": True,
                "pids": [123],
                "listen": [{"address": "0.0.0.0", "port": 11434, "exposed": True}],
                "findings": [],
                "gpu_memory": None,
            }
        ],
        packages=[{"name": "torch", "version": "2.0.1", "environment": "/v", "findings": []}],
    )
    validate_inventory(doc, "inv")
    assert doc["artifacts"][0]["sha256"] == SHA


def test_missing_lists_are_empty(tmp_path: Path) -> None:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps({"schema": "modelward.inventory/v1"}))
    assert load_inventory(p) == {"schema": "modelward.inventory/v1"}


def test_a_collected_inventory_is_valid(tmp_path: Path) -> None:
    """What `modelward inventory -f json` writes always passes."""
    from modelward.inventory import collect

    (tmp_path / "m.gguf").write_bytes(b"GGUF" + b"\0" * 60)
    doc = json.loads(json.dumps(collect([tmp_path]).to_dict()))
    validate_inventory(doc, "collected")


def test_the_error_is_a_usage_error(tmp_path: Path) -> None:
    p = tmp_path / "inventory.json"
    p.write_text(json.dumps(_doc(artifacts=[{"path": 7}])))
    with pytest.raises(UsageError, match=r"artifacts\[0\]\.path must be a non-empty string"):
        load_inventory(p)
