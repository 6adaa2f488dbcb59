"""Names and paths: every refusal is an InvalidName, and nothing accepted hides or fakes a character."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.errors import InvalidName
from modelward.hub.names import validate_path, validate_repo, validate_tag, windows_device


@pytest.mark.parametrize(
    ("segment", "device"),
    [
        ("CON", True),
        ("con.txt", True),
        ("Nul.tar.gz", True),
        ("com1", True),
        ("COM\u00b9.json", True),
        ("lpt9.bin", True),
        ("aux ", True),
        ("conin$", True),
        ("console", False),
        ("com10", False),
        ("nul_", False),
        ("auxiliary.txt", False),
    ],
)
def test_windows_devices(segment: str, device: bool) -> None:
    assert windows_device(segment) is device


@settings(max_examples=400, deadline=None)
@given(st.text(min_size=1, max_size=60))
def test_any_path_is_accepted_or_refused_with_invalid_name(path: str) -> None:
    try:
        validate_path(path)
    except InvalidName:
        return
    # what is accepted shows every character it has, none of them a look-alike of '/', '\\', '.'
    for c in path:
        assert unicodedata.category(c) not in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp")
        assert c == " " or unicodedata.category(c) != "Zs"
        if ord(c) >= 128:
            assert not any(ord(x) < 128 for x in unicodedata.normalize("NFKC", c))
    for segment in path.split("/"):
        assert not windows_device(segment) and segment[-1] not in ". " and ":" not in segment


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30), st.text(max_size=30))
def test_any_repo_or_tag_is_accepted_or_refused_with_invalid_name(ns: str, name: str) -> None:
    for call, arg in ((validate_repo, f"{ns}/{name}"), (validate_tag, name)):
        try:
            call(arg)
        except InvalidName:
            continue
        assert arg.isascii()
