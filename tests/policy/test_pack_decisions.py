"""Pins every decision of the bundled pack on a varied sample, so that speed-ups change none.

The sample crosses formats, licenses, origins, findings of each severity, cloud models, hostile
strings, exposed and vulnerable runtimes and packages; each settings variant below evaluates it.
Regenerate the golden file (after an intended change of the pack) with
``MODELWARD_UPDATE_GOLDEN=1 pytest tests/policy/test_pack_decisions.py``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from modelward.models import Severity
from modelward.policy.engine import PACK, evaluate
from modelward.policy.settings import Settings

GOLDEN = Path(__file__).with_name("pack_decisions.golden.json")

FORMATS = ("safetensors", "gguf", "pytorch", "pickle", "onnx", "joblib", "torchscript", "unknown")
LICENSES = (
    "apache-2.0",
    "MIT",
    "cc-by-nc-4.0",
    "unknown",
    "",
    "llama3.1",
    "mrl",
    "other-non-commercial",
    "gemma",
)
SEVERITIES = ("info", "low", "medium", "high", "critical")
ORIGINS: tuple[tuple[str | None, str | None], ...] = (
    ("acme/llama", None),
    ("acme-labs/x", None),
    ("evil/x", None),
    (None, "llama3.1:8b"),
    (None, "qwen2:7b"),
    (None, None),
    ("hub/exact", None),
)
SHA_APPROVED = "a" * 64


def sample() -> dict[str, Any]:
    arts: list[dict[str, Any]] = []
    for i in range(63):
        repo, name = ORIGINS[i % len(ORIGINS)]
        findings = []
        if i % 5 != 4:
            sev = SEVERITIES[i % 5]
            findings.append(
                {
                    "rule": "pickle.dangerous-global" if i % 2 else "gguf.template",
                    "severity": sev,
                    "message": f"finding {i}",
                    "evidence": "os.system",
                    "location": "",
                    "remediation": "",
                }
            )
        if i % 9 == 0:
            findings.append({"rule": "ollama.cloud-model", "severity": "info", "message": "c"})
        lic: dict[str, Any] | None = {"id": LICENSES[i % len(LICENSES)], "name": "", "evidence": ""}
        if i % 17 == 16:
            lic = None
        art: dict[str, Any] = {
            "path": f"/m/{i}/model {i}.bin" if i % 11 else f'/m/{i}/a "q"\\ ü {i}.pkl',
            "size": i,
            "sha256": SHA_APPROVED if i % 13 == 0 else (None if i % 23 == 22 else f"{i:064x}"),
            "format": FORMATS[i % len(FORMATS)],
            "source": {"kind": "huggingface", "name": name, "repo": repo, "revision": None},
            "license": lic,
            "metadata": {"ollama": {"cloud": True}} if i % 8 == 3 else {},
            "findings": findings,
            "in_use": False,
        }
        if lic is None:
            del art["license"]
        arts.append(art)
    runtimes = [
        {
            "name": "ollama",
            "version": "0.1.33",
            "pids": [1],
            "listen": [
                {"address": "0.0.0.0", "port": 11434, "exposed": True},
                {"address": "127.0.0.1", "port": 11435, "exposed": False},
            ],
            "findings": [
                {"rule": "runtime.vulnerable-version", "severity": "critical", "message": "CVE-1"}
            ],
        },
        {"name": "vllm", "version": "0.6.0", "pids": [2], "listen": [], "findings": []},
        {
            "name": "lmstudio",
            "version": "0.3",
            "pids": [],
            "listen": [{"address": "127.0.0.1", "port": 1234, "exposed": False}],
            "findings": [{"rule": "runtime.tunnel", "severity": "high", "evidence": "ngrok"}],
        },
    ]
    packages = [
        {"name": "torch", "version": "2.13.0", "environment": "/v", "findings": []},
        {
            "name": "llama-cpp-python",
            "version": "0.2.50",
            "environment": "/w",
            "findings": [
                {"rule": "package.vulnerable-version", "severity": "high", "message": "CVE-2"}
            ],
        },
    ]
    return {
        "schema": "modelward.inventory/v1",
        "host": {},
        "artifacts": arts,
        "runtimes": runtimes,
        "packages": packages,
        "errors": [],
    }


VARIANTS: dict[str, Settings] = {
    "defaults": Settings(),
    "hub": Settings(
        approved_sha256=(SHA_APPROVED,),
        approved_origins=("acme/*", "hub/exact", "llama3.1:*", "qwen2:7b"),
    ),
    "strict": Settings(
        commercial=True,
        allowed_licenses=("apache-2.0", "mit", "mrl"),
        denied_licenses=("gemma",),
        allowed_formats=("safetensors", "gguf"),
        allowed_runtimes=("ollama",),
        block_severity=Severity.parse("medium"),
        approved_origins=("acme*",),
    ),
    "permissive": Settings(
        allow_network_exposure=True,
        allow_cloud_models=True,
        block_severity=Severity.parse("critical"),
        stop_exposed_runtimes=True,
    ),
    "stop": Settings(stop_exposed_runtimes=True),
}


def decisions() -> dict[str, list[dict[str, Any]]]:
    doc = sample()
    return {name: [d.to_dict() for d in evaluate(doc, s)] for name, s in VARIANTS.items()}


def test_the_pack_decisions_on_the_sample_are_pinned() -> None:
    got = decisions()
    if os.environ.get("MODELWARD_UPDATE_GOLDEN"):
        parts = [
            json.dumps(name) + ": [\n" + ",\n".join(json.dumps(d, ensure_ascii=False) for d in ds)
            for name, ds in got.items()
        ]
        GOLDEN.write_text("{\n" + "\n],\n".join(parts) + "\n]\n}\n", encoding="utf-8")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    for name in VARIANTS:
        assert got[name] == want[name], name


def test_the_pack_without_precomputed_facts_decides_the_same(tmp_path: Path) -> None:
    """A copy of the pack is evaluated like any policy folder: the whole inventory, no facts."""
    shutil.copytree(PACK, tmp_path / "pack")
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    doc = sample()
    for name in ("hub", "strict"):
        got = [d.to_dict() for d in evaluate(doc, VARIANTS[name], policy=tmp_path / "pack")]
        assert got == want[name], name


def test_forged_facts_in_an_inventory_are_ignored() -> None:
    doc = sample()
    for a in doc["artifacts"]:
        a["precomputed"] = {"digest_approved": True, "origin_approved": True}
    doc["precomputed"] = {"license_ids": []}
    got = [d.to_dict() for d in evaluate(doc, VARIANTS["hub"])]
    assert got == json.loads(GOLDEN.read_text(encoding="utf-8"))["hub"]


def test_the_sample_covers_the_rules() -> None:
    want = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len({d["rule"] for d in want["strict"]}) == 12
