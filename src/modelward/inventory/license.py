"""Identify a model's license from its text, model card, GGUF metadata or the files next to it.

Identifiers. ``License.id`` is a Hugging Face license identifier (``apache-2.0``, ``llama3.1``,
``cc-by-nc-4.0``, ``gemma``, ``openrail++`` ...). Where Hugging Face has no identifier and model
cards say ``license: other`` with a ``license_name``, the id is that conventional ``license_name``
slug, so a policy can tell the licenses apart: ``mrl`` (Mistral AI Research License), ``mnpl``,
``qwen``, ``qwen-research``, ``tongyi-qianwen``, ``tongyi-qianwen-research``, ``deepseek``
(also declared as ``deepseek-license``), ``nvidia-open-model-license``. A card or GGUF file that
declares ``other`` with a ``license_name`` this module does not know gives ``License("other",
<license_name>)``: that is what was declared, not a guess. Anything not recognised gives None and
the caller records ``unknown``; nothing is ever guessed.

Full text (:func:`identify_text`). The first 256 KB are normalised (lowercase, punctuation and
whitespace folded to single spaces) and each license's fingerprint phrases (title lines and
distinctive sentences, :mod:`modelward.inventory.license_texts`) are looked up as whole words:
a license needs one of its title phrases and enough phrases in all. When several licenses match
(a LICENSE file followed by third-party notices) the one whose title comes first wins. Every
lookup is a substring search, so time is linear in the (bounded) input.

Model cards (:func:`from_model_card`) are read with a small bounded parser of the top-level
``key: value`` and ``key:`` + ``- item`` lines of the YAML front matter: PyYAML is not a
dependency, and no YAML tag is ever interpreted. A list of licenses gives the first recognised one,
the others are named in ``License.name``.

:func:`near` prefers, folder by folder from the model's own up to two parents (never above
``stop``), a recognised LICENSE/LICENCE/COPYING text, then the folder's model card ``README.md``.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import replace
from pathlib import Path
from typing import Any

from modelward.inventory.fsread import read_head
from modelward.inventory.license_texts import (
    ALIASES,
    COMMERCIAL,
    FINGERPRINTS,
    HF_IDS,
    LINKS,
    NAMES,
    Fingerprint,
    compact,
    normalise,
)
from modelward.models import License

__all__ = [
    "COMMERCIAL",
    "NAMES",
    "from_gguf_metadata",
    "from_model_card",
    "identify_text",
    "near",
    "resolve_id",
]

MAX_TEXT = 256 * 1024
"""Characters (text) or bytes (files) of a license or model card that are looked at."""
MAX_FRONT_MATTER_LINES = 5000
MAX_VALUE = 1000
"""Longest declared license value kept (a GGUF ``general.license`` may hold a whole text)."""
MAX_LIST = 32
PARENT_LEVELS = 2
"""How many folders above the model's own folder :func:`near` looks in."""
MAX_DIR_ENTRIES = 4096
MAX_LICENSE_FILES = 8

_SPECIFIC = tuple(f for f in FINGERPRINTS if not f.fallback)
_FALLBACK = tuple(f for f in FINGERPRINTS if f.fallback)


# ----------------------------------------------------------------------------- full text
def identify_text(text: str, evidence: str) -> License | None:
    """The license whose full text ``text`` is (or starts with), or None when not recognised."""
    if not isinstance(text, str) or not text:
        return None
    norm = f" {normalise(text[:MAX_TEXT])} "
    ident = _match(norm, _SPECIFIC) or _match(norm, _FALLBACK)
    if ident is None:
        return None
    return License(ident, NAMES.get(ident), evidence)


def _match(norm: str, fingerprints: tuple[Fingerprint, ...]) -> str | None:
    found: list[tuple[int, str]] = []
    for fp in fingerprints:
        if any(x in norm for x in fp.exclude):
            continue
        positions = [p for p in (norm.find(a) for a in fp.anchors) if p >= 0]
        if not positions or not all(r in norm for r in fp.require):
            continue
        hits = len(positions) + len(fp.require) + sum(1 for s in fp.support if s in norm)
        if hits >= fp.need:
            found.append((min(positions), fp.id))
    if not found:
        return None
    found.sort()
    if len(found) > 1 and found[0][0] == found[1][0]:
        return None  # two titles at the same place: ambiguous, never guess
    return found[0][1]


# ----------------------------------------------------------------------------- declared ids
def resolve_id(value: str) -> str | None:
    """The license id for a declared value (HF id, SPDX id, license name, known URL), or None."""
    if not isinstance(value, str):
        return None
    v = value.strip().strip("\"'").strip()
    if not v or len(v) > MAX_VALUE:
        return None
    low = v.lower()
    if low in HF_IDS:
        return low
    key = compact(low)
    if key in ALIASES:
        return ALIASES[key]
    link = re.sub(r"^[a-z]+://", "", low).split("?")[0].split("#")[0].rstrip("/")
    link = link.removesuffix(".html").removesuffix(".txt").rstrip("/")
    return LINKS.get(link)


def _declared(
    values: list[str], name: str | None, link: str | None, evidence: str
) -> License | None:
    """A license from declared ``license`` values plus the optional ``license_name``/``link``."""
    values = [v.strip() for v in values if isinstance(v, str) and v.strip()][:MAX_LIST]
    name = name.strip() if isinstance(name, str) and name.strip() else None
    link = link.strip() if isinstance(link, str) and link.strip() else None
    ids = [resolve_id(v) for v in values]
    if not values and name is None:
        return None
    first = next((i for i in ids if i is not None and i not in ("other", "unknown")), None)
    if first is None:
        if any(_is_text(v) for v in values):  # a whole license text as the value
            for v in values:
                found = identify_text(v, evidence)
                if found is not None:
                    return found
        if values and "other" not in ids:
            return None  # "unknown" or free text we do not recognise
        by_name = resolve_id(name) if name else None
        by_link = resolve_id(link) if link else None
        ident = by_name or by_link
        if ident is not None and ident not in ("other", "unknown"):
            return License(ident, NAMES.get(ident, name), evidence)
        return License("other", name[:MAX_VALUE] if name else None, evidence)
    label = NAMES.get(first, first)
    others = [v for v, i in zip(values, ids, strict=True) if i != first]
    if others:
        label = f"{label} (also: {', '.join(o[:100] for o in others[:8])})"
    return License(first, label, evidence)


def _is_text(value: str) -> bool:
    """Whether a declared value looks like a license text rather than an id or a name."""
    return len(value) > 200 or "\n" in value


# ----------------------------------------------------------------------------- model cards
_KEY = re.compile(r"""^["']?([A-Za-z_][\w.-]*)["']?[ \t]*:(?:[ \t]+(.*?))?[ \t]*$""")
_ITEM = re.compile(r"^[ \t]*-(?:[ \t]+(.*?))?[ \t]*$")
_WANTED = ("license", "license_name", "license_link")


def front_matter(text: str) -> dict[str, list[str]] | None:
    """The top-level scalar and list values of a model card's YAML front matter, or None.

    Only plain, quoted and flow-list (``[a, b]``) values and block lists (``- item``) are read;
    anything else (nested mappings, block scalars, tags, anchors) gives an empty list.
    """
    if not isinstance(text, str):
        return None
    text = text[:MAX_TEXT].removeprefix("\ufeff")
    lines = text.split("\n", MAX_FRONT_MATTER_LINES + 1)
    if not lines or lines[0].rstrip() != "---":
        return None
    out: dict[str, list[str]] = {}
    key: str | None = None  # a key whose value may continue as a block list
    closed = False
    for raw in lines[1 : MAX_FRONT_MATTER_LINES + 1]:
        line = raw.rstrip("\r")
        if line.rstrip() in ("---", "..."):
            closed = True
            break
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        item = _ITEM.match(line)
        if key is not None and item is not None:
            value = _scalar(item.group(1) or "")
            if value is not None and len(out[key]) < MAX_LIST:
                out[key].append(value)
            continue
        if line[0] in " \t":  # nested content: not a value we read
            if key is not None:
                out[key] = []
                key = None
            continue
        key = None
        m = _KEY.match(line)
        if m is None:
            continue
        name, value = m.group(1), (m.group(2) or "")
        if value == "":
            out[name] = []
            key = name
        else:
            out[name] = _values(value)
    if not closed and len(text) < MAX_TEXT and len(lines) <= MAX_FRONT_MATTER_LINES + 1:
        return None  # no closing line: not front matter
    return out


def _values(value: str) -> list[str]:
    value = value.strip()
    if value.startswith("[") and "]" in value:
        inner = value[1 : value.rindex("]")]
        items = (_scalar(v) for v in inner.split(",")[:MAX_LIST])
        return [v for v in items if v]
    one = _scalar(value)
    return [one] if one else []


def _scalar(value: str) -> str | None:
    value = value.strip()
    if not value or value[0] in "!&*|>{[@`%":
        return None  # tags, anchors, aliases, block scalars, nested flows: not read
    if value[0] in "\"'":
        quote = value[0]
        end = value.find(quote, 1)
        if end < 0:
            return None
        return value[1:end].strip()[:MAX_VALUE] or None
    cut = value.find(" #")
    if cut >= 0:
        value = value[:cut]
    return value.strip()[:MAX_VALUE] or None


def from_model_card(text: str) -> License | None:
    """The license a Hugging Face model card (``README.md``) declares in its front matter."""
    fm = front_matter(text)
    if not fm:
        return None
    names = fm.get("license_name") or []
    links = fm.get("license_link") or []
    return _declared(
        fm.get("license", []),
        names[0] if names else None,
        links[0] if links else None,
        "model card",
    )


# ----------------------------------------------------------------------------- GGUF
def from_gguf_metadata(md: dict[str, Any]) -> License | None:
    """The license in a GGUF file's scan metadata (``general.license``, ``.name``, ``.link``)."""
    if not isinstance(md, dict):
        return None
    lic = md.get("license")
    if isinstance(lic, dict):
        ident, name, link = lic.get("id"), lic.get("name"), lic.get("link")
    else:
        ident = lic if lic is not None else md.get("general.license")
        name, link = md.get("general.license.name"), md.get("general.license.link")
    if isinstance(ident, str):
        values = [ident] if _is_text(ident) else ident.split(",")
    elif isinstance(ident, list):
        values = [v for v in ident[:MAX_LIST] if isinstance(v, str)]
    else:
        values = []
    return _declared(
        values,
        name if isinstance(name, str) else None,
        link if isinstance(link, str) else None,
        "gguf metadata",
    )


# ----------------------------------------------------------------------------- files nearby
_LICENSE_PREFIXES = ("license", "licence", "copying")
_dir_cache: dict[tuple[str, int, int], tuple[list[str], str | None]] = {}
_text_cache: dict[tuple[str, int, int, int], License | None] = {}
_CACHE_SIZE = 1024


def near(path: Path, stop: Path | None = None) -> License | None:
    """The license of the model at ``path`` from LICENSE files or a model card next to it.

    Looks in the model's folder and up to two parents, never above ``stop``; reads at most
    256 KB of a few small regular files per folder; never raises.
    """
    try:
        folder = path if path.is_dir() else path.parent
        root = os.path.abspath(stop) if stop is not None else None
        for _ in range(PARENT_LEVELS + 1):
            here = os.path.abspath(folder)
            if root is not None and not _within(here, root):
                return None
            found = _in_folder(folder)
            if found is not None or here == root or folder.parent == folder:
                return found
            folder = folder.parent
    except (OSError, ValueError):
        return None
    return None


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _in_folder(folder: Path) -> License | None:
    listing = _listing(folder)
    if listing is None:
        return None
    licenses, readme = listing
    for name in licenses:
        p = folder / name
        found = _identify_file(p)
        if found is not None:
            return found
    if readme is not None:
        p = folder / readme
        data = _read_head(p)
        if data is not None:
            card = from_model_card(data)
            if card is not None:
                return replace(card, evidence=f"model card {p}")
    return None


def _listing(folder: Path) -> tuple[list[str], str | None] | None:
    """License file names (best first) and the model card name in ``folder``; cached by mtime."""
    try:
        st = os.stat(folder)
    except (OSError, ValueError):
        return None
    key = (str(folder), st.st_mtime_ns, st.st_ino)
    hit = _dir_cache.get(key)
    if hit is not None:
        return hit
    licenses: list[str] = []
    readme: str | None = None
    try:
        with os.scandir(folder) as it:
            for n, entry in enumerate(it):
                if n >= MAX_DIR_ENTRIES:
                    break
                low = entry.name.lower()
                if low.startswith(_LICENSE_PREFIXES):
                    licenses.append(entry.name)
                elif low == "readme.md" and (readme is None or entry.name == "README.md"):
                    readme = entry.name
    except (OSError, ValueError):
        return None

    def rank(name: str) -> tuple[int, str]:
        stem, _, ext = name.lower().partition(".")
        exact = stem in _LICENSE_PREFIXES and ext in ("", "txt", "md")
        return (0 if exact else 1, name)

    licenses = sorted(licenses, key=rank)[:MAX_LICENSE_FILES]
    if len(_dir_cache) >= _CACHE_SIZE:
        _dir_cache.clear()
    _dir_cache[key] = (licenses, readme)
    return licenses, readme


def _identify_file(p: Path) -> License | None:
    try:
        st = os.stat(p)
    except (OSError, ValueError):
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    key = (str(p), st.st_size, st.st_mtime_ns, st.st_ino)
    if key in _text_cache:
        return _text_cache[key]
    data = _read_head(p)
    found = identify_text(data, str(p)) if data else None
    if len(_text_cache) >= _CACHE_SIZE:
        _text_cache.clear()
    _text_cache[key] = found
    return found


def _read_head(p: Path) -> str | None:
    """The first 256 KB of the regular file ``p`` as text, or None (never blocks on a FIFO)."""
    data = read_head(p, MAX_TEXT)
    if data is None:
        return None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8-sig", errors="replace")
