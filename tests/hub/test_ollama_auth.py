"""Ollama's ed25519 token request: the message Ollama signs, verification, freshness, key matching."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_ssh_private_key

from modelward.errors import Unauthorized
from modelward.hub import ollama_auth as oa

REALM = "http://127.0.0.1:8765/v2/token"


def _request(key: Ed25519PrivateKey, ts: int | None = None) -> tuple[str, str]:
    url = oa.token_request_url(
        REALM, "modelward", "repository:org/tiny:pull", ts=ts, nonce="AAECAwQFBgcICQoLDA0ODw"
    )
    return url, oa.make_authorization(key, url)


def test_empty_body_hash_is_what_ollama_signs() -> None:
    # base64 of the 64 hex characters of sha256(b"")
    assert base64.b64decode(oa.EMPTY_BODY_HASH) == hashlib.sha256(b"").hexdigest().encode()
    assert oa.signed_message("http://h/x?ts=1") == (
        b"GET,http://h/x?ts=1,ZTNiMGM0NDI5OGZjMWMxNDlhZmJmNGM4OTk2ZmI5MjQyN2FlNDFlNDY0OWI5MzRjYTQ5NTk5MWI3ODUyYjg1NQ=="
    )


def test_token_url_is_encoded_like_go_url_values() -> None:
    url = oa.token_request_url(
        REALM + "?a=b c",
        "modelward",
        "repository:org/tiny:pull repository:org/x:push",
        ts=17,
        nonce="n-_",
    )
    # keys sorted, QueryEscape: ':' and '/' escaped, space as '+', scopes split on spaces
    assert url == (
        "http://127.0.0.1:8765/v2/token?a=b+c&nonce=n-_"
        "&scope=repository%3Aorg%2Ftiny%3Apull&scope=repository%3Aorg%2Fx%3Apush"
        "&service=modelward&ts=17"
    )


def test_valid_request_verifies_and_returns_the_registered_key() -> None:
    key = Ed25519PrivateKey.generate()
    line = oa.public_key_line(key, "dev@laptop")
    url, header = _request(key)
    got = oa.verify_token_request(header, url, [line])
    assert got.comment == "dev@laptop"
    assert got.authorized_key == line
    # also with parsed keys and several candidate URLs (proxy in front)
    other = "https://hub.example/v2/token?" + url.split("?", 1)[1]
    assert oa.verify_token_request(header, [other, url], [oa.parse_public_key(line)]).raw == got.raw


def test_unregistered_key_is_refused_with_its_fingerprint() -> None:
    key, stranger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    url, header = _request(stranger)
    with pytest.raises(Unauthorized, match="not registered") as exc:
        oa.verify_token_request(header, url, [oa.public_key_line(key), "garbage line"])
    assert exc.value.detail["fingerprint"].startswith("SHA256:")


def test_signature_over_another_url_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    url, header = _request(key)
    with pytest.raises(Unauthorized, match="does not match"):
        oa.verify_token_request(header, url.replace("pull", "push"), [oa.public_key_line(key)])
    with pytest.raises(Unauthorized, match="does not match"):
        oa.verify_token_request(
            header, url.replace("127.0.0.1", "127.0.0.2"), [oa.public_key_line(key)]
        )


@pytest.mark.parametrize("offset", [-301, 301, -100_000])
def test_stale_or_future_timestamp_is_refused(offset: int) -> None:
    key = Ed25519PrivateKey.generate()
    now = 1_800_000_000
    url, header = _request(key, ts=now + offset)
    with pytest.raises(Unauthorized, match="timestamp"):
        oa.verify_token_request(header, url, [oa.public_key_line(key)], now=now)
    # within the window it passes
    url, header = _request(key, ts=now + (offset // abs(offset)) * 299)
    oa.verify_token_request(header, url, [oa.public_key_line(key)], now=now)


def test_missing_ts_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    url = REALM + "?service=modelward"
    with pytest.raises(Unauthorized, match="ts"):
        oa.verify_token_request(oa.make_authorization(key, url), url, [oa.public_key_line(key)])


@pytest.mark.parametrize(
    "header",
    [
        "",
        "Bearer abc",
        "a:b:c",
        "!!!:AAAA",
        base64.b64encode(b"\x00\x00\x00\x07ssh-rsa\x00\x00\x00\x01A").decode() + ":" + "A" * 88,
        "AAAAC3NzaC1lZDI1NTE5AAAAIA==:" + "A" * 88,
        "x" * 5000,
    ],
)
def test_malformed_headers_are_unauthorized(header: str) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(Unauthorized):
        oa.verify_token_request(header, REALM + "?ts=1", [oa.public_key_line(key)])


def test_short_signature_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    blob = oa.public_key_line(key).split()[1]
    with pytest.raises(Unauthorized, match="64-byte"):
        oa.parse_authorization(f"{blob}:{base64.b64encode(b'x' * 63).decode()}")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("", "empty"),
        ("ssh-ed25519", "no key"),
        ("ssh-rsa AAAAB3NzaC1yc2E= me", "must start"),
        ("ssh-ed25519 %%%", "base64"),
        ("ssh-ed25519 " + base64.b64encode(b"\x00\x00").decode(), "truncated"),
    ],
)
def test_bad_public_keys(line: str, message: str) -> None:
    with pytest.raises(oa.InvalidKey, match=message):
        oa.parse_public_key(line)


def test_ssh_keygen_key_matches_ours(tmp_path: Path) -> None:
    """A key made by OpenSSH (as Ollama's is): same .pub line, same fingerprint, signs verifiably."""
    path = tmp_path / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ollama@box", "-f", str(path)],
        check=True,
    )
    pub_line = (tmp_path / "id_ed25519.pub").read_text().strip()
    private = load_ssh_private_key(path.read_bytes(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    assert oa.public_key_line(private, "ollama@box") == pub_line
    fp = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "id_ed25519.pub")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[1]
    assert oa.parse_public_key(pub_line).fingerprint == fp
    url = oa.token_request_url(REALM, "modelward", "repository:a/b:pull", ts=int(time.time()))
    header = oa.make_authorization(private, url)
    assert header.split(":")[0] == pub_line.split()[1]
    assert oa.verify_token_request(header, url, [pub_line]).comment == "ollama@box"
