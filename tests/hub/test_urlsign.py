"""Signed blob URLs and registry tokens: bound to what they name, expiring, not forgeable."""

from __future__ import annotations

import urllib.parse

import pytest

from modelward.errors import Forbidden, Unauthorized
from modelward.hub import urlsign

KEY = b"k" * 32
DIGEST = "sha256:" + "ab" * 32
NOW = 1_800_000_000


def test_signed_blob_url_round_trip() -> None:
    q = urllib.parse.parse_qs(urlsign.signed_blob_query(KEY, "org/m", DIGEST, ttl=300, now=NOW))
    exp, sig = q["exp"][0], q["sig"][0]
    assert int(exp) == NOW + 300
    urlsign.verify_blob(KEY, "org/m", DIGEST, exp, sig, now=NOW + 299)
    urlsign.verify_blob(KEY, "org/m", DIGEST, exp, sig.upper(), now=NOW)


@pytest.mark.parametrize(
    ("repo", "digest", "key", "now", "message"),
    [
        ("org/other", DIGEST, KEY, NOW, "not valid"),
        ("org/m", "sha256:" + "cd" * 32, KEY, NOW, "not valid"),
        ("org/m", DIGEST, b"x" * 32, NOW, "not valid"),
        ("org/m", DIGEST, KEY, NOW + 301, "expired"),
    ],
)
def test_signed_blob_url_is_bound_and_expires(
    repo: str, digest: str, key: bytes, now: int, message: str
) -> None:
    p = urlsign.sign_blob(KEY, "org/m", DIGEST, ttl=300, now=NOW)
    with pytest.raises(Forbidden, match=message):
        urlsign.verify_blob(key, repo, digest, p["exp"], p["sig"], now=now)


def test_tampered_expiry_is_refused() -> None:
    p = urlsign.sign_blob(KEY, "org/m", DIGEST, ttl=300, now=NOW)
    with pytest.raises(Forbidden, match="not valid"):
        urlsign.verify_blob(KEY, "org/m", DIGEST, str(int(p["exp"]) + 3600), p["sig"], now=NOW)


@pytest.mark.parametrize(
    ("exp", "sig"),
    [(None, "a" * 64), ("1", None), ("-1", "a" * 64), ("1", "zz"), ("9" * 40, "a" * 64)],
)
def test_malformed_signed_urls(exp: str | None, sig: str | None) -> None:
    with pytest.raises(Forbidden):
        urlsign.verify_blob(KEY, "org/m", DIGEST, exp, sig, now=NOW)


def test_short_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        urlsign.sign_blob(b"short", "org/m", DIGEST, ttl=1)


def test_registry_token_round_trip_and_expiry() -> None:
    tok = urlsign.issue_token(KEY, "alice", "reader", ttl=600, via="ollama-key:SHA256:x", now=NOW)
    assert urlsign.is_registry_token(tok)
    claims = urlsign.verify_token(KEY, tok, now=NOW + 10)
    assert (claims.subject, claims.role, claims.expires, claims.via) == (
        "alice",
        "reader",
        NOW + 600,
        "ollama-key:SHA256:x",
    )
    with pytest.raises(Unauthorized, match="expired"):
        urlsign.verify_token(KEY, tok, now=NOW + 601)


def test_registry_token_cannot_be_forged_or_edited() -> None:
    tok = urlsign.issue_token(KEY, "alice", "reader", ttl=600, now=NOW)
    with pytest.raises(Unauthorized, match="signature"):
        urlsign.verify_token(b"y" * 32, tok, now=NOW)
    _payload, sig = tok.removeprefix("mwr_").rsplit(".", 1)
    forged = urlsign.issue_token(b"y" * 32, "alice", "admin", ttl=600, now=NOW)
    forged_payload = forged.removeprefix("mwr_").rsplit(".", 1)[0]
    with pytest.raises(Unauthorized, match="signature"):
        urlsign.verify_token(KEY, f"mwr_{forged_payload}.{sig}", now=NOW)
    for bad in ("mw_abc", "mwr_", "mwr_x", "mwr_" + "a" * 5000):
        with pytest.raises(Unauthorized):
            urlsign.verify_token(KEY, bad, now=NOW)


def test_upload_state_round_trip_and_binding() -> None:
    st = urlsign.sign_upload_state(KEY, "u1", "ab" * 32, 1234)
    assert urlsign.verify_upload_state(KEY, "u1", st) == ("ab" * 32, 1234)
    assert urlsign.verify_upload_state(KEY, "u1", urlsign.sign_upload_state(KEY, "u1", "", 0)) == (
        "",
        0,
    )
    head, size, mac = st.split(".")
    for bad in (None, "", "x", f"{head}.1235.{mac}", f"{'cd' * 32}.{size}.{mac}"):
        with pytest.raises(Forbidden):
            urlsign.verify_upload_state(KEY, "u1", bad)
    with pytest.raises(Forbidden):
        urlsign.verify_upload_state(KEY, "u2", st)
