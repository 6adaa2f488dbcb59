"""Raw-text search for sandbox-escape tokens, for templates that were not parsed."""

from __future__ import annotations

import re

from modelward.scan.templates.issues import SSTI, Issue
from modelward.scan.templates.ssti import GADGET_NAMES

# Raw-text signatures, used when a template cannot be parsed (or is too large to parse).
_RAW_SSTI = re.compile(
    "|".join(re.escape(g) for g in GADGET_NAMES if g != "__init__")
    + r"|\\x5f\\x5f|\\u005f\\u005f|\\137\\137|\|\s*attr\s*\(\s*['\"]_|\.\s*__init__\s*\.",
)


def raw_issues(text: str) -> list[Issue]:
    """SSTI signatures in ``text`` searched as plain text (for templates that were not parsed)."""
    out: list[Issue] = []
    seen: set[str] = set()
    for m in _RAW_SSTI.finditer(text):
        token = m.group(0)
        if token in seen:
            continue
        seen.add(token)
        start = max(0, m.start() - 60)
        out.append(
            Issue(
                SSTI,
                f"Unparsed chat template text contains the sandbox-escape token {token!r}.",
                evidence=text[start : m.end() + 60],
            )
        )
        if len(seen) >= 8:
            break
    return out
