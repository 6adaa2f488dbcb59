"""The inventory's value types: artifacts, runtimes, packages and the whole document.

Re-exported by :mod:`modelward.models` on first use, so that commands which do not inventory
(``modelward scan``) do not pay for defining them at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelward.models import Finding, Severity, Sha256


@dataclass(frozen=True, slots=True)
class Source:
    """Where an artifact came from: ``kind`` is ``ollama``, ``huggingface``, ... or ``file``."""

    kind: str
    name: str | None = None
    repo: str | None = None
    revision: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "repo": self.repo, "revision": self.revision}


@dataclass(frozen=True, slots=True)
class License:
    """A license identified from evidence (Hugging Face ids; ``unknown`` when not recognised)."""

    id: str
    name: str | None = None
    evidence: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "evidence": self.evidence}


UNKNOWN_LICENSE = License("unknown")


@dataclass(frozen=True, slots=True)
class Artifact:
    """A model file found on a machine, identified and scanned."""

    path: str
    size: int
    sha256: Sha256 | None
    format: str
    source: Source
    license: License = UNKNOWN_LICENSE
    metadata: dict[str, Any] = field(default_factory=dict)
    findings: tuple[Finding, ...] = ()
    in_use: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "format": self.format,
            "source": self.source.to_dict(),
            "license": self.license.to_dict(),
            "metadata": self.metadata,
            "findings": [f.to_dict() for f in self.findings],
            "in_use": self.in_use,
        }


@dataclass(frozen=True, slots=True)
class Listen:
    """A socket a runtime listens on; ``exposed`` when reachable from other machines."""

    address: str
    port: int
    exposed: bool

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "port": self.port, "exposed": self.exposed}


@dataclass(frozen=True, slots=True)
class Runtime:
    """A local inference runtime, installed or running."""

    name: str
    version: str | None = None
    executable: str | None = None
    running: bool = False
    pids: tuple[int, ...] = ()
    listen: tuple[Listen, ...] = ()
    findings: tuple[Finding, ...] = ()
    gpu_memory: int | None = None
    """GPU memory its processes use, in bytes (NVML; None where NVML is not available)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "executable": self.executable,
            "running": self.running,
            "pids": list(self.pids),
            "listen": [x.to_dict() for x in self.listen],
            "findings": [f.to_dict() for f in self.findings],
            "gpu_memory": self.gpu_memory,
        }


@dataclass(frozen=True, slots=True)
class Package:
    """A Python package for local inference installed in an environment."""

    name: str
    version: str
    environment: str
    findings: tuple[Finding, ...] = ()
    """Known advisories for this version (an extension of the interfaces' package entry)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "environment": self.environment,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True, slots=True)
class HostInfo:
    hostname: str
    os: str
    user: str
    collected_at: str
    agent_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "hostname": self.hostname,
            "os": self.os,
            "user": self.user,
            "collected_at": self.collected_at,
            "agent_version": self.agent_version,
        }


@dataclass(frozen=True, slots=True)
class CollectError:
    """Something the inventory could not read (the run goes on)."""

    path: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "error": self.error}


@dataclass(frozen=True, slots=True)
class Inventory:
    """What ``modelward inventory`` found on one machine (``modelward.inventory/v1``)."""

    host: HostInfo
    artifacts: tuple[Artifact, ...] = ()
    runtimes: tuple[Runtime, ...] = ()
    packages: tuple[Package, ...] = ()
    errors: tuple[CollectError, ...] = ()

    @property
    def findings(self) -> list[Finding]:
        out = [f for a in self.artifacts for f in a.findings]
        out += [f for r in self.runtimes for f in r.findings]
        out += [f for p in self.packages for f in p.findings]
        return out

    def fails(self, threshold: Severity) -> bool:
        top = max((f.severity for f in self.findings), default=None)
        return top is not None and top >= threshold

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "modelward.inventory/v1",
            "host": self.host.to_dict(),
            "artifacts": [a.to_dict() for a in self.artifacts],
            "runtimes": [r.to_dict() for r in self.runtimes],
            "packages": [p.to_dict() for p in self.packages],
            "errors": [e.to_dict() for e in self.errors],
        }
