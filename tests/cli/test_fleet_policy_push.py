"""``modelward fleet policy push`` refuses a broken policy on the admin's machine: nothing is sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelward.cli import main
from tests.fleet.test_bundle import policy_dir

UNREACHABLE = "http://127.0.0.1:9"  # a push that got this far would fail with "cannot reach"


def _push(capsys: pytest.CaptureFixture[str], folder: Path) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(["fleet", "policy", "push", str(folder), "--server", UNREACHABLE, "--token", "mw_x"])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        (
            "org.rego",
            'package modelward.org\n\ndeny contains "x" if {\n  input.x ==\n}\n',
            "org.rego:",
        ),
        ("settings.yaml", "allowed_formats: [safetensors\n", "settings.yaml:2"),
        ("settings.yaml", "commercial: 3\n", "settings.yaml:1"),
        ("waivers.yaml", "waivers:\n  - sha256: " + "a" * 64 + "\n", "waivers.yaml:2"),
    ],
)
def test_a_broken_policy_is_refused_before_upload(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str, text: str, where: str
) -> None:
    folder = policy_dir(tmp_path)
    (folder / name).write_text(text)
    code, err = _push(capsys, folder)
    assert code == 2, err
    assert where in err and "cannot reach" not in err


def test_a_good_policy_gets_as_far_as_the_upload(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = _push(capsys, policy_dir(tmp_path))
    assert code == 2 and "cannot reach" in err
