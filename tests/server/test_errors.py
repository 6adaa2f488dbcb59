"""Every error of every route is one JSON envelope with a stable shape; the OpenAPI schema is sound."""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.conftest import auth

ENVELOPE_KEYS = {"error", "errors"}
ERROR_KEYS = {"status", "code", "message", "detail"}


def check_envelope(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == ENVELOPE_KEYS
    assert set(body["error"]) == ERROR_KEYS
    assert body["error"]["status"] == status and body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["detail"], dict)
    [oci] = body["errors"]
    assert set(oci) == {"code", "message", "detail"} and oci["code"].isupper()
    return body


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/no/such/route/at/all", {}, 404, "not_found"),
        ("GET", "/api/v1/hub/repos", {}, 401, "unauthorized"),
        ("GET", "/api/v1/hub/repos", {"Authorization": "Bearer mw_wrong"}, 401, "unauthorized"),
        ("GET", "/api/v1/hub/repos/acme/none/revisions/main", "admin", 404, "repo_not_found"),
        ("GET", "/api/models/acme/none", "admin", 404, "repo_not_found"),
        ("GET", "/v2/acme/none/manifests/latest", "admin", 404, None),
        ("POST", "/api/v1/hub/tokens", "admin", 422, "invalid_request"),
        ("DELETE", "/api/v1/hub/repos", "admin", 405, "method_not_allowed"),
    ],
)
def test_error_envelope(
    client: Any, method: str, path: str, headers: Any, status: int, code: str | None
) -> None:
    h = auth() if headers == "admin" else headers
    resp = client.request(method, path, headers={**h, "Accept": "application/json"})
    body = check_envelope(resp, status, code or resp.json()["error"]["code"])
    assert "Traceback" not in body["error"]["message"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_openapi_schema_has_unique_operation_ids(client: Any) -> None:
    schema = client.get("/openapi.json").json()
    ids = [op["operationId"] for ops in schema["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    assert any(p.startswith("/api/v1/hub/") for p in schema["paths"])
    assert any(p.startswith("/v2/") for p in schema["paths"])
    assert any("/resolve/" in p for p in schema["paths"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_openapi_documents_the_one_error_envelope(client: Any) -> None:
    """Every error the routes answer is the envelope, 422 included: the schema says so (not
    FastAPI's own validation error), on every operation, with the bearer token scheme."""
    schema = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in str(schema)
    assert schema["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    ref = "#/components/schemas/Error"
    for path, ops in schema["paths"].items():
        for method, op in ops.items():
            for status in ("400", "401", "403", "404", "413"):
                got = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
                assert got == ref, (method, path, status)
    body = client.post("/api/v1/hub/tokens", json={"role": 7}, headers=auth()).json()
    assert set(body) == {"error", "errors"}
    assert set(body["error"]) == {"status", "code", "message", "detail"}
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(schema)
