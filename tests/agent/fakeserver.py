"""A tiny real ASGI server speaking the agent protocol (/tmp/fleet-spec.md), used only until the
server's own /api/v1/agent routes exist; the tests switch to the real server when they do."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response


def _canonical(doc: dict[str, Any]) -> bytes:
    body = {k: v for k, v in doc.items() if k != "signature"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


@dataclass
class FakeFleet:
    secret: str = "team-secret"
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # sha256(key) -> host id
    revoked: set[str] = field(default_factory=set)
    applied: dict[str, int] = field(default_factory=dict)  # report_id -> seq
    reports: list[dict[str, Any]] = field(default_factory=list)
    bundle: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.private = Ed25519PrivateKey.generate()
        self.public_pem = (
            self.private.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def push(self, files: dict[str, str], settings: dict[str, Any], waivers: list[Any]) -> None:
        version = (self.bundle or {}).get("version", 0) + 1
        doc: dict[str, Any] = {"version": version, "files": files, "settings": settings}
        doc["waivers"] = waivers
        doc["etag"] = '"' + hashlib.sha256(_canonical(doc)).hexdigest()[:16] + '"'
        doc["signature"] = base64.b64encode(self.private.sign(_canonical(doc))).decode()
        self.bundle = doc

    def revoke(self, host_id: str) -> None:
        self.revoked |= {h for h, hid in self.keys.items() if hid == host_id}


def make_app(fleet: FakeFleet) -> Any:
    app = FastAPI()

    def error(status: int, code: str, message: str) -> JSONResponse:
        return JSONResponse(
            {"error": {"status": status, "code": code, "message": message, "detail": {}}},
            status_code=status,
        )

    def host_of(request: Request) -> str | JSONResponse:
        key = request.headers.get("authorization", "").removeprefix("Bearer ")
        digest = hashlib.sha256(key.encode()).hexdigest()
        if digest in fleet.revoked:
            return error(401, "host_key_revoked", "this host key was revoked")
        if digest not in fleet.keys:
            return error(401, "unauthorized", "unknown host key")
        return fleet.keys[digest]

    @app.post("/api/v1/agent/enroll")
    async def enroll(request: Request) -> Response:
        body = await request.json()
        if body.get("secret") != fleet.secret:
            return error(401, "unauthorized", "unknown enrollment secret")
        machine = body["host"]["machine_id"]
        host_id = next((h for h, v in fleet.hosts.items() if v["machine_id"] == machine), None)
        host_id = host_id or uuid.uuid4().hex
        fleet.revoke(host_id)
        fleet.hosts[host_id] = {**body["host"], "acked": 0, "state": {}}
        key = "mwh_" + secrets.token_urlsafe(32)
        fleet.keys[hashlib.sha256(key.encode()).hexdigest()] = host_id
        return JSONResponse(
            {
                "host_id": host_id,
                "host_key": key,
                "report_interval": 60,
                "bundle_public_key": fleet.public_pem,
            },
            status_code=201,
        )

    @app.post("/api/v1/agent/report")
    async def report(request: Request) -> Response:
        host_id = host_of(request)
        if isinstance(host_id, JSONResponse):
            return host_id
        doc = await request.json()
        host = fleet.hosts[host_id]
        if doc["report_id"] in fleet.applied:
            return JSONResponse({"ack": fleet.applied[doc["report_id"]], "applied": False})
        if not doc["full"] and doc["base"] != host["acked"]:
            return error(409, "resync_required", "send a full report")
        state = {} if doc["full"] else dict(host["state"])
        for k in doc["removed"]["artifacts"]:
            state.pop(k, None)
        for a in doc["added"]["artifacts"]:
            state[a["path"]] = a
        host.update(acked=doc["seq"], state=state)
        fleet.applied[doc["report_id"]] = doc["seq"]
        fleet.reports.append(doc)
        return JSONResponse({"ack": doc["seq"], "applied": True})

    @app.get("/api/v1/agent/policy")
    async def policy(request: Request) -> Response:
        host_id = host_of(request)
        if isinstance(host_id, JSONResponse):
            return host_id
        if fleet.bundle is None:
            return error(404, "no_policy_bundle", "no policy bundle has been pushed")
        etag = fleet.bundle["etag"]
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse(fleet.bundle, headers={"ETag": etag})

    return app
