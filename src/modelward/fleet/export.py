"""CycloneDX 1.6 AI-BOMs of the fleet: one host's (as ``modelward inventory --format cyclonedx``
would write it on that machine) and the whole fleet's (every host a ``device`` component with its
models, runtimes and libraries nested inside).

The stored inventory entries (the agents' own documents) are turned back into inventory values and
given to :mod:`modelward.report.cyclonedx`, so both BOMs follow its one mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from modelward.errors import BadRequest
from modelward.fleet.errors import HostNotFound
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
    Source,
)
from modelward.store.db import Database, Host, HostArtifact, HostPackage, HostRuntime, Team

MAX_FLEET_HOSTS = 10_000
"""The fleet BOM is built in memory; larger fleets export per host (or page with ``team``)."""


def _findings(items: Any) -> tuple[Finding, ...]:
    out = []
    for f in items if isinstance(items, list) else []:
        if not isinstance(f, Mapping):
            continue
        try:
            sev = Severity.parse(str(f.get("severity", "info")))
        except ValueError:
            sev = Severity.INFO
        out.append(
            Finding(
                rule=str(f.get("rule", "")),
                severity=sev,
                message=str(f.get("message", "")),
                evidence=str(f.get("evidence", "") or ""),
                location=str(f.get("location", "") or ""),
                remediation=str(f.get("remediation", "") or ""),
            )
        )
    return tuple(out)


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def _artifact(row: HostArtifact) -> Artifact:
    doc = row.doc or {}
    lic: Mapping[str, Any] = doc["license"] if isinstance(doc.get("license"), Mapping) else {}
    return Artifact(
        path=row.path,
        size=row.size,
        sha256=row.sha256,
        format=row.format,
        source=Source(row.source_kind, row.source_name, row.source_repo, row.source_revision),
        license=License(row.license_id, _opt(lic.get("name")), _opt(lic.get("evidence"))),
        metadata=dict(doc.get("metadata") or {}) if isinstance(doc.get("metadata"), dict) else {},
        findings=_findings(doc.get("findings")),
        in_use=row.in_use,
    )


def _runtime(row: HostRuntime) -> Runtime:
    doc = row.doc or {}
    listen = []
    for item in doc.get("listen") or []:
        if isinstance(item, Mapping) and isinstance(item.get("port"), int):
            listen.append(
                Listen(str(item.get("address", "")), item["port"], bool(item.get("exposed")))
            )
    return Runtime(
        name=row.name,
        version=row.version,
        executable=_opt(doc.get("executable")),
        running=row.running,
        listen=tuple(listen),
        findings=_findings(doc.get("findings")),
    )


def _package(row: HostPackage) -> Package:
    doc = row.doc or {}
    return Package(
        name=row.name,
        version=row.version,
        environment=str(doc.get("environment", "")),
        findings=_findings(doc.get("findings")),
    )


def host_inventory(db: Database, host_id: str) -> Inventory:
    with db.session() as s:
        host = s.get(Host, host_id)
        if host is None:
            raise HostNotFound(f"no host {host_id}", host_id=host_id)
        return _inventory(
            host,
            s.scalars(
                select(HostArtifact)
                .where(HostArtifact.host_id == host_id)
                .order_by(HostArtifact.path)
            ).all(),
            s.scalars(
                select(HostRuntime).where(HostRuntime.host_id == host_id).order_by(HostRuntime.name)
            ).all(),
            s.scalars(
                select(HostPackage).where(HostPackage.host_id == host_id).order_by(HostPackage.key)
            ).all(),
        )


def _inventory(
    host: Host,
    artifacts: Sequence[HostArtifact],
    runtimes: Sequence[HostRuntime],
    packages: Sequence[HostPackage],
) -> Inventory:
    collected = (host.agent_status or {}).get("collected_at") or (
        host.last_seen.isoformat() if host.last_seen else ""
    )
    return Inventory(
        host=HostInfo(host.hostname, host.os, host.user, str(collected), host.agent_version),
        artifacts=tuple(_artifact(a) for a in artifacts),
        runtimes=tuple(_runtime(r) for r in runtimes),
        packages=tuple(_package(p) for p in packages),
    )


def host_bom_json(db: Database, host_id: str) -> str:
    """One host's AI-BOM (CycloneDX 1.6 JSON)."""
    from cyclonedx.output.json import JsonV1Dot6

    from modelward.report.cyclonedx import to_bom

    return JsonV1Dot6(to_bom(host_inventory(db, host_id))).output_as_string(indent=2)


def fleet_bom_json(db: Database, team: str | None = None) -> str:
    """The fleet's AI-BOM: each host a ``device`` component with its own components nested."""
    from cyclonedx.output.json import JsonV1Dot6

    from modelward.report.cyclonedx import to_bom

    with db.session() as s:
        q = select(Host).where(Host.revoked_at.is_(None)).order_by(Host.id)
        if team:
            q = q.join(Team, Team.id == Host.team_id).where(Team.name == team)
        hosts = s.scalars(q.limit(MAX_FLEET_HOSTS + 1)).all()
        if len(hosts) > MAX_FLEET_HOSTS:
            raise BadRequest(
                f"more than {MAX_FLEET_HOSTS} hosts: export per team or per host", hosts=len(hosts)
            )
        inventories = [
            (
                h.id,
                _inventory(
                    h,
                    s.scalars(select(HostArtifact).where(HostArtifact.host_id == h.id)).all(),
                    s.scalars(select(HostRuntime).where(HostRuntime.host_id == h.id)).all(),
                    s.scalars(select(HostPackage).where(HostPackage.host_id == h.id)).all(),
                ),
            )
            for h in hosts
        ]
    name = f"fleet {team}" if team else "fleet"
    fleet: dict[str, Any] = json.loads(
        JsonV1Dot6(to_bom(Inventory(HostInfo(name, "", "", "", "")))).output_as_string()
    )
    fleet.pop("dependencies", None)
    components: list[dict[str, Any]] = []
    vulnerabilities: list[dict[str, Any]] = []
    for host_id, inv in inventories:
        # Rendered by the one mapping, then nested; bom-refs are made unique per host.
        doc = _prefix_refs(json.loads(JsonV1Dot6(to_bom(inv)).output_as_string()), f"{host_id}:")
        device = dict(doc["metadata"]["component"])
        device["components"] = doc.get("components", [])
        components.append(device)
        vulnerabilities.extend(doc.get("vulnerabilities", []))
    fleet["components"] = components
    if vulnerabilities:
        fleet["vulnerabilities"] = vulnerabilities
    return json.dumps(fleet, indent=2)


def _prefix_refs(doc: Any, prefix: str) -> Any:
    """``doc`` with every bom-ref (and reference to one) made unique to one host."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            if k in ("bom-ref", "ref") and isinstance(v, str):
                out[k] = prefix + v
            elif k == "dependsOn" and isinstance(v, list):
                out[k] = [prefix + x if isinstance(x, str) else x for x in v]
            else:
                out[k] = _prefix_refs(v, prefix)
        return out
    if isinstance(doc, list):
        return [_prefix_refs(v, prefix) for v in doc]
    return doc
