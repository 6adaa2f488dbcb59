"""CycloneDX 1.6 AI-BOM of an inventory: validated against the 1.6 schema by cyclonedx-python-lib."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.cli import main
from modelward.models import (
    Artifact,
    Finding,
    HostInfo,
    Inventory,
    License,
    Listen,
    Package,
    Runtime,
    Severity,
    Sha256,
    Source,
)
from modelward.report.cyclonedx import to_bom, write_inventory_cyclonedx
from modelward.report.inventory import FORMATS
from tests.inventory.homes import COMMIT_A, make_hf_cache, make_ollama, tiny_gguf

EVIL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
HOST = HostInfo("ws-17", "linux", "alex", "2025-11-25T10:00:00Z", "0.1.0")
HF_REV = "0123456789ABCDEF0123456789abcdef01234567"

INV = Inventory(
    host=HOST,
    artifacts=(
        Artifact(
            "/home/alex/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/x/model.safetensors",
            16_060_522_496,
            Sha256("ab" * 32),
            "safetensors",
            Source(
                "huggingface", "model-00001-of-00004.safetensors", "meta-llama/Llama-3.1-8B", HF_REV
            ),
            License("llama3.1", "Llama 3.1 Community License", "model card"),
            in_use=True,
        ),
        Artifact(
            "/home/alex/.ollama/models/blobs/sha256-" + "cd" * 32,
            4_661_211_424,
            Sha256("cd" * 32),
            "gguf",
            Source("ollama", "qwen2.5:7b"),
            License("apache-2.0", "Apache License 2.0", "gguf general.license"),
        ),
        Artifact(
            "/home/alex/Downloads/evil.pkl",
            40,
            None,
            "pickle",
            Source("file"),
            findings=(
                Finding(
                    "pickle.dangerous-global",
                    Severity.CRITICAL,
                    "Imports os.system.",
                    "os.system",
                    "opcode at byte 2",
                    "Do not load it.",
                ),
                Finding("format.extension-mismatch", Severity.LOW, "Odd name."),
            ),
        ),
    ),
    runtimes=(
        Runtime(
            "ollama",
            "0.1.33",
            "/usr/local/bin/ollama",
            True,
            (1234,),
            (Listen("0.0.0.0", 11434, True),),
            (
                Finding(
                    "runtime.vulnerable-version",
                    Severity.CRITICAL,
                    "Ollama 0.1.33 is affected by CVE-2024-37032 (path traversal through digests).",
                    "CVE-2024-37032",
                    remediation="Upgrade to 0.1.34 or later.",
                ),
                Finding("runtime.exposed", Severity.HIGH, "Ollama listens on 0.0.0.0:11434."),
            ),
        ),
    ),
    packages=(Package("Llama_CPP.python", "0.2.50", "/home/alex/venv"),),
)


@cache
def validator() -> JsonStrictValidator:
    return JsonStrictValidator(SchemaVersion.V1_6)


def render(inv: Inventory) -> str:
    buf = io.StringIO()
    write_inventory_cyclonedx(inv, buf)
    return buf.getvalue()


def valid_doc(text: str) -> dict[str, Any]:
    error = validator().validate_str(text)
    assert error is None, error
    doc: dict[str, Any] = json.loads(text)
    return doc


def props(obj: dict[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in obj.get("properties", []):
        out.setdefault(p["name"], []).append(p["value"])
    return out


def by_prop(doc: dict[str, Any], name: str, value: str) -> dict[str, Any]:
    hits = [c for c in doc["components"] if value in props(c).get(name, [])]
    assert len(hits) == 1, (name, value, hits)
    return hits[0]


def test_bom_is_valid_cyclonedx_1_6_with_metadata() -> None:
    doc = valid_doc(render(INV))
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    assert doc["serialNumber"].startswith("urn:uuid:")
    meta = doc["metadata"]
    assert meta["timestamp"].startswith("2025-11-25T10:00:00")
    assert meta["tools"]["components"] == [
        {
            "bom-ref": "tool:modelward",
            "name": "modelward",
            "type": "application",
            "version": "0.1.0",
        }
    ]
    assert meta["component"]["type"] == "device" and meta["component"]["name"] == "ws-17"
    assert props(meta["component"])["modelward:host.user"] == ["alex"]
    # the host depends on every component, and every ref resolves
    refs = {c["bom-ref"] for c in doc["components"]}
    deps = {d["ref"]: set(d.get("dependsOn", [])) for d in doc["dependencies"]}
    assert deps[meta["component"]["bom-ref"]] == refs
    assert len(doc["components"]) == 5


def test_huggingface_model_component() -> None:
    doc = valid_doc(render(INV))
    c = by_prop(doc, "modelward:format", "safetensors")
    assert c["type"] == "machine-learning-model"
    assert (c["group"], c["name"], c["version"]) == ("meta-llama", "Llama-3.1-8B", HF_REV)
    assert c["purl"] == (
        f"pkg:huggingface/meta-llama/Llama-3.1-8B@{HF_REV.lower()}#model-00001-of-00004.safetensors"
    )
    assert c["hashes"] == [{"alg": "SHA-256", "content": "ab" * 32}]
    assert c["licenses"] == [{"license": {"name": "llama3.1", "acknowledgement": "declared"}}]
    ext = {(e["type"], e["url"]) for e in c["externalReferences"]}
    assert ext == {
        ("model-card", "https://huggingface.co/meta-llama/Llama-3.1-8B"),
        (
            "distribution",
            f"https://huggingface.co/meta-llama/Llama-3.1-8B/resolve/{HF_REV}/"
            "model-00001-of-00004.safetensors",
        ),
    }
    p = props(c)
    assert p["modelward:path"] == [INV.artifacts[0].path]
    assert p["modelward:source.kind"] == ["huggingface"]
    assert p["modelward:in_use"] == ["true"]
    assert p["modelward:size"] == ["16060522496"]
    assert p["modelward:license.evidence"] == ["model card"]
    assert p["modelward:max_severity"] == ["none"]
    assert "modelward:finding" not in p


def test_ollama_model_splits_name_and_tag_and_gets_an_spdx_license() -> None:
    doc = valid_doc(render(INV))
    c = by_prop(doc, "modelward:source.kind", "ollama")
    assert (c["name"], c["version"]) == ("qwen2.5", "7b")
    assert "purl" not in c  # purl has no ollama type
    assert c["licenses"] == [{"license": {"id": "Apache-2.0", "acknowledgement": "declared"}}]
    assert c["externalReferences"] == [
        {"type": "model-card", "url": "https://ollama.com/library/qwen2.5"}
    ]
    assert props(c)["modelward:in_use"] == ["false"]


def test_scanner_findings_are_properties_not_vulnerabilities() -> None:
    doc = valid_doc(render(INV))
    c = by_prop(doc, "modelward:format", "pickle")
    assert c["name"] == "evil.pkl" and "hashes" not in c and "licenses" not in c
    p = props(c)
    assert p["modelward:findings.critical"] == ["1"]
    assert p["modelward:findings.low"] == ["1"]
    assert p["modelward:findings.high"] == ["0"]
    assert p["modelward:max_severity"] == ["critical"]
    assert sorted(p["modelward:finding"]) == [
        "critical pickle.dangerous-global: Imports os.system. (at opcode at byte 2)",
        "low format.extension-mismatch: Odd name.",
    ]
    affected = {a["ref"] for v in doc["vulnerabilities"] for a in v["affects"]}
    assert c["bom-ref"] not in affected


def test_runtime_cve_is_a_vulnerability_and_exposure_a_property() -> None:
    doc = valid_doc(render(INV))
    rt = by_prop(doc, "modelward:executable", "/usr/local/bin/ollama")
    assert rt["type"] == "application" and rt["version"] == "0.1.33"
    p = props(rt)
    assert p["modelward:listen"] == ["0.0.0.0:11434 exposed"]
    assert p["modelward:pid"] == ["1234"]
    assert p["modelward:finding"] == ["high runtime.exposed: Ollama listens on 0.0.0.0:11434."]
    assert p["modelward:findings.critical"] == ["1"]
    [v] = doc["vulnerabilities"]
    assert v["id"] == "CVE-2024-37032"
    assert v["source"]["url"] == "https://nvd.nist.gov/vuln/detail/CVE-2024-37032"
    assert v["ratings"][0]["severity"] == "critical"
    assert v["recommendation"] == "Upgrade to 0.1.34 or later."
    assert v["affects"] == [{"ref": rt["bom-ref"]}]


def test_package_is_a_library_with_a_normalised_pypi_purl() -> None:
    doc = valid_doc(render(INV))
    lib = by_prop(doc, "modelward:environment", "/home/alex/venv")
    assert lib["type"] == "library"
    assert lib["purl"] == "pkg:pypi/llama-cpp-python@0.2.50"
    assert (lib["name"], lib["version"]) == ("Llama_CPP.python", "0.2.50")


def test_bom_refs_are_stable_and_unique() -> None:
    twins = Inventory(
        host=HOST,
        packages=(Package("torch", "2.4.0", "/v"), Package("torch", "2.4.0", "/v")),
    )
    doc = valid_doc(render(twins))
    refs = [c["bom-ref"] for c in doc["components"]]
    assert len(set(refs)) == 2
    assert to_bom(INV).metadata.component is not None
    first = {c["bom-ref"] for c in valid_doc(render(INV))["components"]}
    assert first == {c["bom-ref"] for c in valid_doc(render(INV))["components"]}


@pytest.mark.parametrize(
    ("hf_id", "name", "expected"),
    [
        ("mit", None, {"id": "MIT"}),
        ("cc-by-4.0", None, {"id": "CC-BY-4.0"}),
        ("cc-by-nc-4.0", None, {"id": "CC-BY-NC-4.0"}),
        ("gemma", "Gemma Terms of Use", {"name": "gemma"}),
        ("other", "my-company-license", {"name": "my-company-license"}),
        ("unknown", None, None),
    ],
)
def test_license_mapping(hf_id: str, name: str | None, expected: dict[str, str] | None) -> None:
    a = Artifact("/m.gguf", 1, None, "gguf", Source("file"), License(hf_id, name))
    [c] = valid_doc(render(Inventory(host=HOST, artifacts=(a,))))["components"]
    if expected is None:
        assert "licenses" not in c
    else:
        assert c["licenses"] == [{"license": {**expected, "acknowledgement": "declared"}}]


def test_messy_values_still_validate() -> None:
    odd = Inventory(
        host=HostInfo("", "linux", "", "not a time", "0.1.0"),
        artifacts=(
            Artifact("/x/\udcff\udc80.bin", 0, None, "unknown", Source("file")),
            Artifact("/x/y", 1, None, "gguf", Source("huggingface", repo="solo-repo")),
            Artifact("/z", 1, None, "gguf", Source("ollama", "localhost:5000/ns/m")),
            Artifact("/w", 1, None, "gguf", Source("ollama", "hf.co/org/Repo-GGUF:Q4_K_M")),
            Artifact(
                "/v",
                1,
                None,
                "gguf",
                Source("huggingface", name="a b#c?.gguf", repo="o/r n", revision="r"),
            ),
        ),
        runtimes=(Runtime("llama.cpp"),),
        packages=(Package("vllm", "", "/env"),),
    )
    doc = valid_doc(render(odd))
    names = {c["name"] for c in doc["components"]}
    assert {"\\xff\\x80.bin", "solo-repo", "localhost:5000/ns/m", "hf.co/org/Repo-GGUF"} <= names
    assert by_prop(doc, "modelward:path", "/x/\\xff\\x80.bin")["name"] == "\\xff\\x80.bin"
    w = by_prop(doc, "modelward:path", "/w")
    assert w["version"] == "Q4_K_M"
    assert w["externalReferences"] == [
        {"type": "model-card", "url": "https://huggingface.co/org/Repo-GGUF"}
    ]
    solo = by_prop(doc, "modelward:path", "/x/y")
    assert solo["purl"] == "pkg:huggingface/solo-repo"


texts = st.text(max_size=30)


@settings(max_examples=25)
@given(
    kind=st.sampled_from(["huggingface", "ollama", "file", "lmstudio"]),
    name=st.none() | texts,
    repo=st.none() | texts,
    revision=st.none() | texts,
    lic=texts,
    path=texts,
    sev=st.sampled_from(list(Severity)),
    message=texts,
)
def test_any_source_values_give_a_valid_bom(
    kind: str,
    name: str | None,
    repo: str | None,
    revision: str | None,
    lic: str,
    path: str,
    sev: Severity,
    message: str,
) -> None:
    a = Artifact(
        path or "/",
        1,
        None,
        "gguf",
        Source(kind, name, repo, revision),
        License(lic or "unknown"),
        findings=(Finding("x.y", sev, message, evidence=message),),
    )
    r = Runtime("ollama", findings=(Finding("runtime.cve", sev, f"CVE-2024-1234 {message}"),))
    valid_doc(render(Inventory(host=HOST, artifacts=(a,), runtimes=(r,))))


# ---------------------------------------------------------------------------- the command
@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "alex"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "mw-cache"))
    for var in (
        "OLLAMA_MODELS",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
    ):
        monkeypatch.delenv(var, raising=False)
    make_ollama(home / ".ollama" / "models")
    make_hf_cache(home / ".cache" / "huggingface" / "hub")
    downloads = home / "Downloads"
    downloads.mkdir()
    tiny_gguf(downloads / "phi.gguf")
    (downloads / "evil.pkl").write_bytes(EVIL)
    return home


def test_cli_writes_a_valid_bom_of_every_artifact(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "cyclonedx" in FORMATS
    with pytest.raises(SystemExit) as exc:
        main(["inventory", str(home), "--format", "cyclonedx", "--no-processes"])
    out, _ = capsys.readouterr()
    assert exc.value.code == 1  # evil.pkl: critical
    doc = valid_doc(out)
    models = [c for c in doc["components"] if c["type"] == "machine-learning-model"]
    kinds = {props(c)["modelward:source.kind"][0] for c in models}
    assert {"ollama", "huggingface", "file"} <= kinds
    hf = [c for c in models if c.get("purl", "").startswith("pkg:huggingface/org/tiny@")]
    assert hf and hf[0]["licenses"][0]["license"]["id"] == "Apache-2.0"
    assert any(c["purl"] == f"pkg:huggingface/org/tiny@{COMMIT_A}#model.safetensors" for c in hf)
    llama = [c for c in models if c["name"] == "llama3.1"]
    assert llama and llama[0]["licenses"] == [
        {"license": {"name": "llama3.1", "acknowledgement": "declared"}}
    ]
    evil = by_prop(doc, "modelward:format", "pickle")
    assert evil["name"] == "evil.pkl"
    assert evil["hashes"][0]["content"] == __import__("hashlib").sha256(EVIL).hexdigest()
    assert props(evil)["modelward:max_severity"] == ["critical"]
    assert (tmp_path / "mw-cache" / "hashes.sqlite").exists()  # never the user's cache

    # --output writes the same document to a file
    target = tmp_path / "bom.json"
    with pytest.raises(SystemExit):
        main(["inventory", str(home), "-f", "cyclonedx", "--no-processes", "-o", str(target)])
    assert len(valid_doc(target.read_text())["components"]) == len(doc["components"])


def test_cli_start_does_not_import_cyclonedx() -> None:
    code = (
        "import sys, modelward.cli, modelward.cli.inventory, modelward.report.cyclonedx; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cyclonedx', 'packageurl')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
