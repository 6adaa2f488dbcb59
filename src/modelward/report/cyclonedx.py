"""CycloneDX 1.6 AI-BOM of an inventory: models, runtimes and inference libraries of one machine.

Built with cyclonedx-python-lib (imported here only when a BOM is written: the CLI starts fast).

Mapping (decisions, kept in step with ``tests/report/test_cyclonedx.py``):

- ``metadata``: the tool (modelward and its version), the collection time of the inventory as the
  timestamp, and the host as the described component (type ``device``: the BOM is "what is on
  this machine"; ``modelward:host.*`` properties carry os and user). The host depends on every
  other component, so graph tools see one tree.
- Each artifact is a ``machine-learning-model`` component: name and version from its source
  (Hugging Face: the org as ``group``, the repo name and the commit; Ollama: ``model`` and
  ``tag``; a loose file: its file name), the SHA-256 as ``hashes``, the license (an SPDX id
  when the Hugging Face id is one, such as ``apache-2.0`` -> ``Apache-2.0``; otherwise a named license carrying the Hugging Face id, such as
  ``llama3.1``; none at all when ``unknown``: never guessed), a ``purl``
  ``pkg:huggingface/<org>/<name>@<commit>#<file>`` for Hugging Face files (the purl spec's type;
  the file is the purl *subpath*), external references to the model card and the download URL,
  and ``modelward:*`` properties (path, size, format, source, in use, license evidence, finding
  counts by severity).
- Scanner and store findings are not CycloneDX ``vulnerabilities``: they are facts about one file
  with no advisory id. Each becomes a ``modelward:finding`` property (``<severity> <rule>:
  <message>``) next to ``modelward:findings.<severity>`` counts and ``modelward:max_severity``.
- Runtimes are ``application`` components, Python packages ``library`` components with
  ``pkg:pypi/<name>@<version>`` purls. A runtime (or package) finding that cites a CVE becomes a
  ``vulnerability`` (id = the CVE, rating = the finding's severity, ``affects`` = that component);
  its other findings (an exposed port, for instance) are properties, as for artifacts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

from modelward import __version__
from modelward.models import Artifact, Finding, Inventory, Package, Runtime, Severity, Source

if TYPE_CHECKING:
    from cyclonedx.model import Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component
    from cyclonedx.model.vulnerability import Vulnerability

SPEC_VERSION = "1.6"
HF = "https://huggingface.co"
PROP = "modelward:"
_CVE = re.compile(r"\bCVE-\d{4}-\d{4,7}\b", re.IGNORECASE)
_OLLAMA_REGISTRY = "registry.ollama.ai"


def write_inventory_cyclonedx(inv: Inventory, out: TextIO) -> None:
    """Write ``inv`` as a CycloneDX 1.6 JSON BOM."""
    from cyclonedx.output.json import JsonV1Dot6

    out.write(JsonV1Dot6(to_bom(inv)).output_as_string(indent=2))
    out.write("\n")


def to_bom(inv: Inventory) -> Bom:
    """The inventory as a cyclonedx-python-lib :class:`~cyclonedx.model.bom.Bom`."""
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository

    refs = _Refs()
    tool = Component(
        type=ComponentType.APPLICATION,
        name="modelward",
        version=__version__,
        bom_ref="tool:modelward",
    )
    host = Component(
        type=ComponentType.DEVICE,
        name=_text(inv.host.hostname) or "localhost",
        bom_ref=refs.new("host", inv.host.hostname),
        properties=_props(
            ("host.os", inv.host.os),
            ("host.user", inv.host.user),
            ("agent_version", inv.host.agent_version),
        ),
    )
    components: list[Component] = []
    vulns: list[Vulnerability] = []
    for a in inv.artifacts:
        components.append(_model(a, refs))
    for r in inv.runtimes:
        comp = _runtime(r, refs)
        components.append(comp)
        vulns.extend(_vulnerabilities(r.findings, str(comp.bom_ref), refs))
    for p in inv.packages:
        comp = _package(p, refs)
        components.append(comp)
        findings: tuple[Finding, ...] = p.findings
        vulns.extend(_vulnerabilities(findings, str(comp.bom_ref), refs))
    bom = Bom(
        metadata=BomMetaData(
            tools=ToolRepository(components=[tool]),
            timestamp=_timestamp(inv.host.collected_at),
            component=host,
            properties=_props(("errors", str(len(inv.errors)))),
        ),
        components=components,
        vulnerabilities=vulns,
    )
    bom.register_dependency(host, components)
    for c in components:
        bom.register_dependency(c, [])
    return bom


# ---------------------------------------------------------------------------- components
def _model(a: Artifact, refs: _Refs) -> Component:
    from cyclonedx.model import HashAlgorithm, HashType
    from cyclonedx.model.component import Component, ComponentType

    group, name, version, purl = _identity(a)
    props = [
        ("path", a.path),
        ("size", str(a.size)),
        ("format", a.format),
        ("source.kind", a.source.kind),
        ("source.name", a.source.name),
        ("source.repo", a.source.repo),
        ("source.revision", a.source.revision),
        ("in_use", "true" if a.in_use else "false"),
        ("license.id", a.license.id),
        ("license.evidence", a.license.evidence),
    ]
    return Component(
        type=ComponentType.MACHINE_LEARNING_MODEL,
        group=group,
        name=name,
        version=version,
        bom_ref=refs.new("model", a.path),
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=a.sha256)] if a.sha256 else None,
        licenses=_licenses(a.license.id, a.license.name),
        purl=purl,
        external_references=_model_refs(a),
        properties=[*_props(*props), *_finding_props(a.findings)],
    )


def _runtime(r: Runtime, refs: _Refs) -> Component:
    from cyclonedx.model.component import Component, ComponentType

    props: list[tuple[str, str | None]] = [
        ("executable", r.executable),
        ("running", "true" if r.running else "false"),
        *(("pid", str(pid)) for pid in r.pids),
        *(
            ("listen", f"{x.address}:{x.port}" + (" exposed" if x.exposed else ""))
            for x in r.listen
        ),
    ]
    return Component(
        type=ComponentType.APPLICATION,
        name=_text(r.name),
        version=None if r.version is None else _text(r.version),
        bom_ref=refs.new("runtime", f"{r.name}:{r.executable}"),
        properties=[*_props(*props), *_finding_props(r.findings, cves=False)],
    )


def _package(p: Package, refs: _Refs) -> Component:
    from cyclonedx.model.component import Component, ComponentType
    from packageurl import PackageURL

    name = _pep503(_text(p.name))
    findings: tuple[Finding, ...] = p.findings
    return Component(
        type=ComponentType.LIBRARY,
        name=_text(p.name),
        version=_text(p.version) or None,
        bom_ref=refs.new("pypi", f"{name}@{p.version}:{p.environment}"),
        purl=PackageURL(type="pypi", name=name, version=_text(p.version) or None),
        properties=[*_props(("environment", p.environment)), *_finding_props(findings, cves=False)],
    )


def _identity(a: Artifact) -> tuple[str | None, str, str | None, Any]:
    """(group, name, version, purl) of an artifact from its source."""
    from packageurl import PackageURL

    src = _clean(a.source)
    file_name = _text(a.path.replace("\\", "/").rsplit("/", 1)[-1] or a.path)
    if src.kind == "huggingface" and src.repo:
        org, _, repo_name = src.repo.rpartition("/")
        purl = PackageURL(
            type="huggingface",
            namespace=org or None,
            name=repo_name,
            version=src.revision.lower() if src.revision else None,
            subpath=src.name or None,
        )
        return org or None, repo_name, src.revision, purl
    if src.kind == "ollama" and src.name:
        model, tag = _split_tag(src.name)
        return None, model, tag, None
    if src.name:
        return None, src.name, src.revision, None
    return None, file_name, src.revision, None


def _split_tag(name: str) -> tuple[str, str | None]:
    """``llama3.1:8b`` -> (``llama3.1``, ``8b``); a colon before the last slash is a port."""
    head, sep, tag = name.rpartition(":")
    if sep and "/" not in tag and head:
        return head, tag
    return name, None


def _model_refs(a: Artifact) -> list[Any] | None:
    from cyclonedx.model import ExternalReference, ExternalReferenceType, XsUri

    out: list[tuple[ExternalReferenceType, str]] = []
    src = _clean(a.source)
    if src.kind == "huggingface" and src.repo:
        out.append((ExternalReferenceType.MODEL_CARD, f"{HF}/{quote(src.repo)}"))
        if src.revision and src.name:
            url = f"{HF}/{quote(src.repo)}/resolve/{quote(src.revision)}/{quote(src.name)}"
            out.append((ExternalReferenceType.DISTRIBUTION, url))
    elif src.kind == "ollama" and src.name:
        page = _ollama_page(_split_tag(src.name)[0])
        if page:
            out.append((ExternalReferenceType.MODEL_CARD, page))
    refs = [ExternalReference(type=t, url=XsUri(u)) for t, u in out]
    return refs or None


def _ollama_page(model: str) -> str | None:
    """The model's page: ollama.com/library/<m>, ollama.com/<ns>/<m>, or the HF repo for hf.co."""
    parts = model.split("/")
    if len(parts) == 1:
        return f"https://ollama.com/library/{quote(parts[0])}"
    if len(parts) == 2:
        return f"https://ollama.com/{quote(parts[0])}/{quote(parts[1])}"
    if len(parts) == 3 and parts[0] in ("hf.co", "huggingface.co"):
        return f"{HF}/{quote(parts[1])}/{quote(parts[2])}"
    if len(parts) == 3 and parts[0] == _OLLAMA_REGISTRY:
        return f"https://ollama.com/{quote(parts[1])}/{quote(parts[2])}"
    return None


def _licenses(hf_id: str, name: str | None) -> list[Any] | None:
    """An SPDX license when the Hugging Face id is an SPDX id, else a named one; none if unknown."""
    from cyclonedx.model.license import DisjunctiveLicense, LicenseAcknowledgement
    from cyclonedx.spdx import fixup_id

    if not hf_id or hf_id == "unknown":
        return None
    declared = LicenseAcknowledgement.DECLARED
    spdx = fixup_id(hf_id)
    if spdx is not None:
        return [DisjunctiveLicense(id=spdx, acknowledgement=declared)]
    label = hf_id if hf_id != "other" or not name else name
    return [DisjunctiveLicense(name=label, acknowledgement=declared)]


# ---------------------------------------------------------------------------- findings
def _finding_props(findings: Iterable[Finding], cves: bool = True) -> list[Property]:
    """Counts by severity, the worst, and one ``modelward:finding`` per finding.

    With ``cves=False`` the findings that cite a CVE are left out of the list (they are
    vulnerabilities of their own) but still counted.
    """
    findings = list(findings)
    counts = {s: 0 for s in Severity}
    for f in findings:
        counts[f.severity] += 1
    worst = max((f.severity for f in findings), default=None)
    pairs: list[tuple[str, str | None]] = [
        (f"findings.{s.label}", str(counts[s])) for s in sorted(Severity, reverse=True)
    ]
    pairs.append(("max_severity", worst.label if worst is not None else "none"))
    for f in findings:
        if not cves and _cves(f):
            continue
        text = f"{f.severity.label} {f.rule}: {f.message}"
        if f.location:
            text += f" (at {f.location})"
        pairs.append(("finding", text))
    return _props(*pairs)


def _cves(f: Finding) -> list[str]:
    seen: dict[str, None] = {}
    for text in (f.rule, f.evidence, f.message, f.location):
        for m in _CVE.finditer(text or ""):
            seen[m.group(0).upper()] = None
    return list(seen)


def _vulnerabilities(findings: Iterable[Finding], ref: str, refs: _Refs) -> Iterator[Vulnerability]:
    from cyclonedx.model import XsUri
    from cyclonedx.model.vulnerability import (
        BomTarget,
        Vulnerability,
        VulnerabilityRating,
        VulnerabilityScoreSource,
        VulnerabilitySeverity,
        VulnerabilitySource,
    )

    for f in findings:
        for cve in _cves(f):
            yield Vulnerability(
                bom_ref=refs.new("vuln", f"{cve}:{ref}:{f.rule}"),
                id=cve,
                source=VulnerabilitySource(
                    name="NVD", url=XsUri(f"https://nvd.nist.gov/vuln/detail/{cve}")
                ),
                ratings=[
                    VulnerabilityRating(
                        severity=VulnerabilitySeverity(f.severity.label),
                        method=VulnerabilityScoreSource.OTHER,
                        justification=f"modelward rule {f.rule}",
                    )
                ],
                description=_text(f.message),
                detail=_text(f.evidence) or None,
                recommendation=_text(f.remediation) or None,
                affects=[BomTarget(ref=ref)],
                properties=_props(("rule", f.rule)),
            )


# ---------------------------------------------------------------------------- helpers
class _Refs:
    """Stable, unique bom-refs: ``<kind>:<12 hex of sha256(key)>`` (-2, -3 on a repeat)."""

    def __init__(self) -> None:
        self.used: set[str] = set()

    def new(self, kind: str, key: str) -> str:
        base = f"{kind}:{hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()[:12]}"
        ref, n = base, 1
        while ref in self.used:
            n += 1
            ref = f"{base}-{n}"
        self.used.add(ref)
        return ref


def _props(*pairs: tuple[str, str | None]) -> list[Property]:
    from cyclonedx.model import Property

    return [Property(name=PROP + k, value=_text(v)) for k, v in pairs if v is not None]


def _text(value: str) -> str:
    """Text safe for UTF-8 JSON: the undecodable bytes of a file name (``os.fsdecode``'s lone
    surrogates) become ``\\xNN`` escapes; any other lone surrogate becomes ``?``."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")


def _clean(src: Source) -> Source:
    """The source with every text made safe for UTF-8 (see :func:`_text`)."""
    return Source(
        _text(src.kind),
        *(None if v is None else _text(v) for v in (src.name, src.repo, src.revision)),
    )


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _timestamp(text: str) -> dt.datetime:
    """The inventory's ``collected_at`` (RFC 3339); now if it cannot be read."""
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
