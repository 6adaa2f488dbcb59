"""``modelward hub token list|revoke`` and ``hub ollama-key list|revoke`` against a live server
(SQLite and PostgreSQL): tables, ``--format json``, errors, and that revocation takes effect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from modelward.hub import ollama_auth as oa
from tests.cli.test_hub_cli import Cli

ADMIN = "admin (MODELWARD_ADMIN_TOKEN)"


@pytest.fixture
def cli(
    live_server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(capsys, monkeypatch, live_server.url)


def test_token_list_and_revoke(cli: Cli, live_server: Any) -> None:
    made = cli.json("token", "create", "--role", "reader", "--name", "ci-pull")
    tid = made["id"]
    assert isinstance(tid, int)
    code, out, _ = cli("token", "create", "--role", "publisher", "--name", "platform")
    assert code == 0 and "(id " in out

    rows = cli.json("token", "list")
    assert [(r["name"], r["role"], r["revoked"]) for r in rows] == [
        (ADMIN, "admin", False),
        ("ci-pull", "reader", False),
        ("platform", "publisher", False),
    ]
    assert all("token" not in r and "token_hash" not in r for r in rows)
    code, out, _ = cli("token", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ID", "ROLE", "CREATED", "STATUS"]
    (ci_line,) = [line for line in lines if "ci-pull" in line]
    assert (
        ci_line.split()[0] == str(tid)
        and "active" in ci_line
        and f"(created by {ADMIN})" in ci_line
    )
    assert made["token"] not in out

    before = httpx.get(f"{live_server.url}/api/v1/hub/repos", headers=_auth(made["token"]))
    assert before.status_code == 200
    code, out, err = cli("token", "revoke", str(tid), "--reason", "rotated")
    assert code == 0, err
    assert (
        out.strip() == f"revoked reader token {tid} 'ci-pull': requests with it get 401 from now on"
    )
    after = httpx.get(f"{live_server.url}/api/v1/hub/repos", headers=_auth(made["token"]))
    assert after.status_code == 401

    again = cli.json("token", "revoke", str(tid))
    assert again["already_revoked"] is True and again["revoked"] is True
    code, out, _ = cli("token", "revoke", str(tid))
    assert code == 0 and "was already revoked on" in out
    code, out, _ = cli("token", "list")
    (ci_line,) = [line for line in out.splitlines() if "ci-pull" in line]
    assert "revoked 20" in ci_line

    code, _, err = cli("token", "revoke", "999999")
    assert code == 2 and "there is no API token with id 999999" in err
    code, _, err = cli("token", "revoke", "seven")
    assert code == 2 and "ID" in err
    admin_id = next(r["id"] for r in rows if r["name"] == ADMIN)
    code, _, err = cli("token", "revoke", str(admin_id))
    assert code == 2 and "last active admin token" in err
    # not an admin: refused with the server's reason
    reader = live_server.token("reader")
    code, _, err = cli("token", "list", token=reader)
    assert code == 2 and "the reader role may not admin" in err
    code, _, err = cli("token", "list", "--format", "yaml")
    assert code == 2 and "yaml" in err

    events = cli.json("audit")
    (revoke,) = [e for e in events if e["action"] == "token-revoke"]
    assert revoke["reason"] == "rotated" and revoke["detail"]["id"] == tid


def test_ollama_key_list_and_revoke(cli: Cli, live_server: Any) -> None:
    key = Ed25519PrivateKey.generate()
    line = oa.public_key_line(key, "alice@laptop")
    fingerprint = oa.parse_public_key(line).fingerprint
    code, out, err = cli("ollama-key", "add", "-", stdin=line + "\n")
    assert code == 0, err
    (listed,) = cli.json("ollama-key", "list")
    assert listed["created_at"].startswith("20")
    assert {k: v for k, v in listed.items() if k != "created_at"} == {
        "id": 1,
        "name": "alice@laptop",
        "role": "reader",
        "fingerprint": fingerprint,
        "public_key": " ".join(line.split()[:2]),
        "created_by": ADMIN,
        "revoked_at": None,
        "revoked": False,
    }
    code, out, _ = cli("ollama-key", "list")
    assert code == 0 and fingerprint in out and "active" in out and "alice@laptop" in out

    # Ollama gets a registry token with the key, then the key is revoked by its fingerprint
    url = oa.token_request_url(f"{live_server.url}/v2/token", "modelward", "repository:acme/x:pull")
    got = httpx.get(url, headers={"Authorization": oa.make_authorization(key, url)})
    assert got.status_code == 200, got.text
    bearer = _auth(got.json()["token"])
    assert httpx.get(f"{live_server.url}/v2/", headers=bearer).status_code == 200
    code, out, err = cli("ollama-key", "revoke", fingerprint, "--reason", "laptop stolen")
    assert code == 0, err
    assert out.strip() == (
        f"revoked Ollama key 1 'alice@laptop' ({fingerprint}): it no longer authenticates"
    )
    assert httpx.get(f"{live_server.url}/v2/", headers=bearer).status_code == 401
    doc = cli.json("ollama-key", "revoke", "1")
    assert doc["already_revoked"] is True and doc["fingerprint"] == fingerprint
    code, out, _ = cli("ollama-key", "list")
    assert "revoked 20" in out
    code, _, err = cli("ollama-key", "revoke", "SHA256:doesnotexist")
    assert code == 2 and "there is no Ollama key with id or fingerprint" in err

    # registered again, explicitly: it authenticates again, under the new registration
    code, out, err = cli("ollama-key", "add", "-", "--name", "alice-new", stdin=line + "\n")
    assert code == 0, err
    (row,) = cli.json("ollama-key", "list")
    assert (row["id"], row["name"], row["revoked"]) == (1, "alice-new", False)
    assert httpx.get(f"{live_server.url}/v2/", headers=bearer).status_code == 401


def test_help_teaches_with_examples(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = Cli(capsys, monkeypatch, "http://127.0.0.1:9")  # help needs no server
    for args in (
        ("token", "list"),
        ("token", "revoke"),
        ("ollama-key", "list"),
        ("ollama-key", "revoke"),
    ):
        code, out, _ = cli(*args, "--help")
        assert code == 0 and "Examples:" in out and f"modelward hub {' '.join(args)}" in out
        assert "--format" in out and "--server" in out
    code, out, _ = cli("token", "--help")
    assert "revoke" in out and "list" in out
    code, out, _ = cli("ollama-key", "--help")
    assert "revoke" in out and "list" in out


def test_empty_lists(cli: Cli) -> None:
    code, out, _ = cli("ollama-key", "list")
    assert code == 0 and out.strip() == "No Ollama keys registered."
    assert cli.json("ollama-key", "list") == []


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
