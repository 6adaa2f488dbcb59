"""Repository names and file paths that both the Hugging Face and the OCI/Ollama protocols accept.

Names end up as folder and file names on every client: ``models--ns--name/snapshots/<commit>/<path>``
(huggingface_hub), ``manifests/<host>/<ns>/<model>/<tag>`` (Ollama), ``oras pull`` output folders.
So besides the protocols' own rules, a name or path is refused when on some client it would

- be a Windows device (``CON``, ``NUL``, ``COM1``, ``LPT¹``, ... with or without an extension:
  ``nul.txt`` opens the null device, ``con`` cannot be created), hold a colon (``model.bin:x``
  writes an NTFS alternate data stream of ``model.bin``) or end with what Windows drops (a dot or
  a space: ``x.bin.`` would overwrite ``x.bin``). Windows' other forbidden characters (``?*<>|"``)
  fail loudly there and are common in Hugging Face file names, so they stay allowed;
- not show what it is: bidi controls (``U+202E`` turns ``gpj.exe`` around), zero-width and other
  format characters, non-ASCII spaces, private-use, unassigned or surrogate code points, variation
  selectors and fillers; or a character that only looks like ASCII (``U+2024`` for ``.``, fullwidth
  or mathematical letters, slash look-alikes), or letters of Latin mixed with Cyrillic or Greek in
  one segment (``mоdel`` with a Cyrillic ``о``).
"""

from __future__ import annotations

import re
import unicodedata

from modelward.errors import InvalidName

# OCI distribution-spec path component, lowercase only (HF accepts it too). Ollama additionally
# forbids dots in the namespace and wants exactly two segments of at most 80 characters.
_COMPONENT = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\Z")
MAX_TAG = 80
"""Ollama's limit on a tag (OCI allows 128): a longer tag could not be pulled by every client."""
_MAX_PATH_BYTES = 1024
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$", "clock$"}
    | {f"{p}{n}" for p in ("com", "lpt") for n in ("1", "2", "3", "4", "5", "6", "7", "8", "9")}
    | {f"{p}{n}" for p in ("com", "lpt") for n in ("0", "\u00b9", "\u00b2", "\u00b3")}
)
# Look-alikes of '/', '\\' and '.' that NFKC leaves alone (fullwidth ones it maps, see below).
_LOOKALIKES = frozenset("\u2215\u2044\u29f8\u2571\u2216\u29f5\u29f9\u2572\u02d9\u0701\u0702\ua4f8")
# Invisible letters and marks that no category check catches (Hangul fillers, CGJ, Mongolian FVS).
_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f\u180b\u180c\u180d\u180f\u17b4\u17b5")
_CONFUSABLE_SCRIPTS = ("CYRILLIC", "GREEK")


def windows_device(segment: str) -> bool:
    """True when Windows treats ``segment`` (a file or folder name) as a device, e.g. ``nul.txt``."""
    stem = segment.split(".", 1)[0].rstrip(" ").casefold()
    return stem in _WINDOWS_DEVICES


def _char_problem(c: str) -> str:
    """Why a (non-control) character may not be part of a name, or ''."""
    o = ord(c)
    if o < 128:
        return ""
    cat = unicodedata.category(c)
    if cat in ("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp", "Zs") or c in _INVISIBLE:
        what = {
            "Cc": "a control character (C1: U+009B starts a terminal escape)",
            "Zs": "a non-ASCII space",
            "Cf": "an invisible formatting (e.g. bidi) character",
        }
        return f"contains {what.get(cat, 'an invisible or unassigned character')} U+{o:04X}"
    if 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF:
        return f"contains the variation selector U+{o:04X}"
    folded = unicodedata.normalize("NFKC", c)
    if c in _LOOKALIKES or (folded != c and any(ord(x) < 128 for x in folded)):
        return f"contains U+{o:04X}, which looks like {folded if folded != c else '/ or .'!r}"
    return ""


def _segment_problem(segment: str) -> str:
    if windows_device(segment):
        return f"{segment!r} is a Windows device name"
    if segment[-1] in ". ":
        return f"{segment!r} ends with a dot or space (Windows drops it)"
    if ":" in segment:
        return "contains ':' (on Windows, an alternate data stream of another file)"
    for c in segment:
        reason = _char_problem(c)
        if reason:
            return reason
    # One word (a run of letters) in two scripts; "Ελληνικά.txt" is two words, "mоdel" one.
    for word in re.findall(r"[^\W\d_]+", segment):
        scripts = {unicodedata.name(c, "UNKNOWN").split(" ", 1)[0] for c in word}
        mixed = sorted(scripts & set(_CONFUSABLE_SCRIPTS))
        if mixed and "LATIN" in scripts:
            return f"{word!r} mixes Latin letters with {' and '.join(mixed).title()} look-alikes"
    return ""


def validate_repo(repo: str) -> str:
    """Return ``repo`` (``namespace/name``) if valid, else raise :class:`InvalidName` saying why."""
    parts = repo.split("/")
    if len(parts) != 2:
        raise InvalidName(f"repository name {repo!r} must be exactly 'namespace/name'", name=repo)
    ns, name = parts
    for label, part in (("namespace", ns), ("name", name)):
        if not 1 <= len(part) <= 80 or not _COMPONENT.match(part):
            raise InvalidName(
                f"{label} {part!r} of {repo!r} must be 1-80 lowercase letters, digits and single "
                "'.', '_' or '-' between them",
                name=repo,
            )
    if "." in ns:
        raise InvalidName(f"namespace {ns!r} may not contain '.' (Ollama's rule)", name=repo)
    for label, part in (("namespace", ns), ("name", name)):
        if windows_device(part):
            raise InvalidName(
                f"{label} {part!r} of {repo!r} is a Windows device name (CON, NUL, COM1, ...): "
                "clients could not store it",
                name=repo,
            )
    return repo


def validate_tag(tag: str) -> str:
    """Return ``tag`` if every client can pull it: an OCI tag of at most 80 characters (Ollama's
    limit) that is not a 40-hex commit id."""
    if len(tag) > MAX_TAG:
        raise InvalidName(
            f"tag {tag[:24]!r}... is {len(tag)} characters long, more than {MAX_TAG}: Ollama "
            "refuses longer tags, and a tag must be pullable by every client (OCI allows 128)",
            name=tag[:200],
            limit=MAX_TAG,
        )
    if not _TAG.match(tag) or is_commit(tag):
        raise InvalidName(
            f"tag {tag!r} must be 1-{MAX_TAG} letters, digits, '_', '.' or '-', starting with a "
            "letter, digit or '_' (not a 40-hex commit id)",
            name=tag,
        )
    if windows_device(tag) or tag.endswith("."):
        # Ollama stores a pulled model's manifest in a file named after the tag.
        raise InvalidName(
            f"tag {tag!r} is a Windows device name or ends with a dot: Ollama on Windows "
            "could not store it",
            name=tag,
        )
    return tag


def is_commit(rev: str) -> bool:
    """True for a 40-lowercase-hex revision id."""
    return len(rev) == 40 and all(c in "0123456789abcdef" for c in rev)


def validate_path(path: str) -> str:
    """Return ``path`` if it is a safe relative POSIX file path inside a repository."""
    reason = _path_problem(path)
    if reason:
        raise InvalidName(f"file path {path!r} is not allowed: {reason}", path=path)
    return path


def _path_problem(path: str) -> str:
    if not path:
        return "empty"
    if len(path.encode("utf-8", "surrogatepass")) > _MAX_PATH_BYTES:
        return f"longer than {_MAX_PATH_BYTES} bytes"
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "contains a control character"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return "absolute"
    segments = path.split("/")
    if any(s in ("", ".", "..") for s in segments):
        return "empty, '.' or '..' segment"
    # Anywhere and in any spelling a case-insensitive (macOS, Windows) file system, Windows'
    # trailing-dot/space stripping or an 8.3 short name turns into ".git": a downloaded
    # ".GIT/config" or "sub/.git/config" would be git configuration (hooks, fsmonitor: code).
    if any(s.casefold().rstrip(". ") in (".git", "git~1") for s in segments):
        return "a .git folder"
    # huggingface_hub keeps its own records of a `--local-dir` download in .cache/huggingface/
    # (which file came from which commit, with which etag): a repository file there would
    # overwrite them on download, and `hub verify` of the copy would then fail.
    folded = [s.casefold().rstrip(". ") for s in segments]
    if len(folded) > 2 and folded[0] == ".cache" and folded[1] == "huggingface":
        return "inside .cache/huggingface/, where huggingface_hub keeps its download records"
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    for segment in segments:
        reason = _segment_problem(segment)
        if reason:
            return reason
    return ""
