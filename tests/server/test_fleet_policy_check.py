"""The server refuses a pushed policy bundle whose Rego does not compile: 400, ``file:line``."""

from __future__ import annotations

from typing import Any

from tests.server.conftest import auth

POLICY = "/api/v1/fleet/policy"
GOOD = 'package modelward.org\n\ndeny contains "x" if { input.x == 1 }\n'
BROKEN = 'package modelward.org\n\ndeny contains "x" if {\n  input.x ==\n}\n'


def test_broken_rego_or_settings_are_refused_and_nothing_is_stored(client: Any) -> None:
    for body, where in [
        ({"files": {"org.rego": GOOD, "sub/bad.rego": BROKEN}}, "sub/bad.rego:4"),
        ({"files": {"org.rego": GOOD}, "settings": {"commercial": 3}}, "settings.yaml:1"),
    ]:
        r = client.post(POLICY, json=body, headers=auth())
        assert r.status_code == 400, r.text
        message = r.json()["error"]["message"]
        assert message.startswith(where) and "/tmp" not in message, message
    assert client.get(POLICY, headers=auth()).status_code == 404
    r = client.post(POLICY, json={"files": {"org.rego": GOOD}}, headers=auth())
    assert r.status_code == 201 and r.json()["version"] == 1
