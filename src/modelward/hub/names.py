"""Repository names and file paths that both the Hugging Face and the OCI/Ollama protocols accept."""

from __future__ import annotations

import re

from modelward.errors import InvalidName

# OCI distribution-spec path component, lowercase only (HF accepts it too). Ollama additionally
# forbids dots in the namespace and wants exactly two segments of at most 80 characters.
_COMPONENT = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}\Z")
_MAX_PATH_BYTES = 1024


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
    return repo


def validate_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid OCI tag that is not a 40-hex commit id."""
    if not _TAG.match(tag) or is_commit(tag):
        raise InvalidName(
            f"tag {tag!r} must be 1-128 letters, digits, '_', '.' or '-' (not a 40-hex commit id)",
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
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return "not valid UTF-8"
    return ""
