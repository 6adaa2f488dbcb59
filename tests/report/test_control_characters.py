"""File names are anybody's choice: a name holding terminal escape sequences (clear the screen, set
the window title) is printed with its control characters shown as ``\\xNN``, never sent, by every
command that prints it: scan, inventory, policy check and enforce, quarantine list."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from modelward.cli import main
from modelward.report.text import markup, visible

EVIL = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03."
NAME = "evil\x1b]0;pwned\x07\x1b[2J\x9b31m.pkl"
SHOWN = "evil\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m.pkl"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    with pytest.raises(SystemExit):
        main(args)
    out, err = capsys.readouterr()
    return out, err


def unfolded(text: str) -> str:
    """The text plus each table column's cells joined up (a table folds long names)."""
    columns: dict[int, str] = {}
    for line in text.splitlines():
        for i, cell in enumerate(re.split("[│┃]", line)[1:-1]):
            columns[i] = columns.get(i, "") + cell.strip()
    return text + "\n" + "\n".join(columns.values())


def test_visible_and_markup() -> None:
    assert visible("a\x1b[31mb\tc\nd\x7f\x85") == "a\\x1b[31mb\\x09c\\x0ad\\x7f\\x85"
    assert visible("a\tb\nc\x1b", lines=True) == "a\tb\nc\\x1b"
    assert markup("[bold]x\x07") == "\\[bold]x\\x07"
    # bidirectional overrides reorder what a terminal shows: "evil\u202egnp.exe" reads "evilexe.png"
    assert visible("evil\u202egnp.exe") == "evil\\u202egnp.exe"
    assert (
        visible("a\u2066b\u2069c\u200fd\u2028e", lines=True) == "a\\u2066b\\u2069c\\u200fd\\u2028e"
    )


def test_every_command_shows_control_characters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COLUMNS", "400")
    models = tmp_path / "models"
    models.mkdir()
    (models / NAME).write_bytes(EVIL)
    inv = tmp_path / "inv.json"
    vault = tmp_path / "vault"
    outputs = {
        "scan": run(["scan", str(models)], capsys),
        "inventory": run(["inventory", str(models), "--no-processes"], capsys),
        "save": run(
            ["inventory", str(models), "--no-processes", "-f", "json", "-o", str(inv)], capsys
        ),
        "check": run(["policy", "check", "--inventory", str(inv)], capsys),
        "enforce": run(
            ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault), "--apply"],
            capsys,
        ),
        "list": run(["quarantine", "list", "--vault", str(vault)], capsys),
    }
    assert not (models / NAME).exists()  # it was quarantined
    for command, (out, err) in outputs.items():
        assert not CONTROL.search(out + err), (command, out, err)
        if command != "save":
            assert SHOWN in unfolded(out + err), (command, out, err)


def test_a_newline_in_a_file_name_cannot_forge_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """enforce, quarantine list and restore print one line per file: a name holding a newline (and
    a right-to-left override) is shown escaped, so it cannot add a line of its own."""
    monkeypatch.setenv("MODELWARD_CACHE_DIR", str(tmp_path / "cache"))
    models = tmp_path / "models"
    models.mkdir()
    name = "evil\nrestored ok \u202elkp.pkl"
    (models / name).write_bytes(EVIL)
    inv = tmp_path / "inv.json"
    vault = tmp_path / "vault"
    run(["inventory", str(models), "--no-processes", "-f", "json", "-o", str(inv)], capsys)
    out, err = run(
        ["policy", "enforce", "--inventory", str(inv), "--vault", str(vault), "--apply"], capsys
    )
    listed, _ = run(["quarantine", "list", "--vault", str(vault)], capsys)
    entry = listed.split()[0]
    restored, _ = run(["quarantine", "restore", entry, "--vault", str(vault)], capsys)
    assert (models / name).read_bytes() == EVIL
    for text in (out + err, listed, restored):
        assert not [line for line in text.splitlines() if line.startswith("restored ok")], text
        assert "\u202e" not in text and "evil\\x0arestored ok \\u202elkp.pkl" in text, text
