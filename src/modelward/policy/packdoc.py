"""The README's table of the bundled pack's rules, generated from the ``.rego`` header comments.

Each rule family file opens with a comment: paragraphs that start ``rule-id: ...`` document a rule
(continuation lines follow, indented or not); text before the first rule is the family's note.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from modelward.policy.engine import PACK, policy_files

_RULE = re.compile(r"([a-z][a-z0-9]*(?:-[a-z0-9]+)+): (.*)")


@dataclass(frozen=True, slots=True)
class RuleDoc:
    rule: str
    file: str
    text: str


def header(path: Path) -> list[str]:
    """The comment lines before ``package``, without their ``#``."""
    lines: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("package "):
            break
        if line.startswith("#"):
            lines.append(line[1:].removeprefix(" "))
    return lines


def family(path: Path) -> tuple[str, list[RuleDoc]]:
    """The family's note (text before its first rule) and its documented rules."""
    note: list[str] = []
    rules: list[tuple[str, list[str]]] = []
    for line in header(path):
        m = _RULE.match(line)
        if m is not None:
            rules.append((m.group(1), [m.group(2)]))
        elif not line.strip():
            if rules:
                rules[-1][1].append("")
            else:
                note.append("")
        elif rules and rules[-1][1][-1] != "":
            rules[-1][1].append(line.strip())
        else:
            note.append(line.strip())
    docs = [RuleDoc(rid, path.name, " ".join(w for w in words if w)) for rid, words in rules]
    return " ".join(w for w in note if w), docs


def rule_docs(folder: Path = PACK) -> list[RuleDoc]:
    return [d for path in policy_files(folder) for d in family(path)[1]]


def markdown(folder: Path = PACK) -> str:
    """A table of every documented rule (with its rationale) and the families' notes."""
    lines = ["| rule | file | decision, and why |", "| --- | --- | --- |"]
    notes: list[str] = []
    for path in policy_files(folder):
        note, docs = family(path)
        for d in docs:
            text = d.text.replace("|", "\\|").replace("*", "\\*")
            lines.append(f"| `{d.rule}` | `{d.file}` | {text} |")
        if docs and note:
            notes += ["", f"`{path.name}`: {note}"]
    return "\n".join(lines + notes)
