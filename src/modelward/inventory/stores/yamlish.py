"""A tiny bounded reader of the plain ``key: value`` lines of runtime YAML configs (no YAML library).

Enough for LocalAI model configs and Jan ``model.yml``: top-level scalars, the scalars one level
inside chosen sections (``parameters: {model: ...}`` -> ``"parameters.model"``), several
documents (``---``) and a top-level list of entries (``- name: ...``). Anchors, flow mappings,
block scalars and tags are not interpreted (their values are skipped). Lines past
:data:`MAX_LINES` and values past :data:`MAX_VALUE` characters are ignored; nothing raises.
"""

from __future__ import annotations

MAX_LINES = 20_000
MAX_VALUE = 4096
MAX_ENTRIES = 1_000


def scalar(raw: str) -> str | None:
    """A plain, single- or double-quoted scalar; None for block scalars, flows, anchors and tags."""
    value = raw.strip()
    if not value:
        return ""
    if value[0] in "\"'":
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else None
    if value[0] in "|>[{&*!":
        return None
    cut = value.find(" #")
    if cut >= 0:
        value = value[:cut].rstrip()
    return value


def entries(text: str, sections: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """One dict of scalars per document or list entry; nested keys as ``section.key``."""
    out: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    base = 0
    section: str | None = None
    child_indent: int | None = None

    def flush() -> None:
        nonlocal cur
        if cur and len(out) < MAX_ENTRIES:
            out.append(cur)
        cur = {}

    for n, line in enumerate(text.splitlines()):
        if n >= MAX_LINES:
            break
        body = line.strip()
        if not body or body.startswith("#"):
            continue
        if body in ("---", "..."):
            flush()
            base, section = 0, None
            continue
        if "\t" in line[: len(line) - len(line.lstrip())]:
            continue  # tabs are not YAML indentation
        indent = len(line) - len(line.lstrip(" "))
        if indent == 0 and (body.startswith("- ") or body == "-"):
            flush()
            base, section = 2, None
            body = body[1:].strip()
            indent = 2
            if not body:
                continue
        key, sep, rest = body.partition(":")
        key = key.strip()
        if not sep or not key or (rest and not rest.startswith(" ")):
            continue
        value = scalar(rest)
        if indent == base:
            section, child_indent = (key if value == "" else None), None
            if value and len(value) <= MAX_VALUE:
                cur.setdefault(key, value)
        elif indent > base and section in sections:
            if child_indent is None:
                child_indent = indent
            if indent == child_indent and value and len(value) <= MAX_VALUE:
                cur.setdefault(f"{section}.{key}", value)
    flush()
    return out
