"""Policy settings: a YAML file that feeds the policy as ``data.modelward.settings``.

Common needs take no Rego::

    approved_sha256: [3f2a...]            # artifacts the organisation has vetted
    approved_origins: [acme/*, llama3.1:8b]  # hub repos or model names (``prefix*`` globs)
    allowed_licenses: [apache-2.0, mit]
    denied_licenses: [cc-by-nc-4.0]
    commercial: true                     # non-commercial and unknown licenses deny instead of warn
    allowed_formats: [safetensors, gguf]
    allowed_runtimes: [ollama]
    allow_network_exposure: false
    block_severity: high                 # scanner findings at or above it quarantine
    allow_cloud_models: false
    stop_exposed_runtimes: false
    agent_enforce: false                 # the endpoint agent carries out quarantine/stop decisions

Errors name the file, the line and the key (with a suggestion for a misspelt key); a key given
twice is an error, not "the last one wins".
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from modelward.errors import UsageError
from modelward.models import Severity

_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


class SettingsError(UsageError):
    """The settings file is not valid; the message names the file, line and key."""


@dataclass(frozen=True, slots=True)
class Settings:
    approved_sha256: tuple[str, ...] = ()
    approved_origins: tuple[str, ...] = ()
    allowed_licenses: tuple[str, ...] = ()
    denied_licenses: tuple[str, ...] = ()
    commercial: bool = False
    allowed_formats: tuple[str, ...] = ()
    allowed_runtimes: tuple[str, ...] = ()
    allow_network_exposure: bool = False
    block_severity: Severity = Severity.HIGH
    allow_cloud_models: bool = False
    stop_exposed_runtimes: bool = False
    agent_enforce: bool = False
    """Read by ``modelward agent run`` only (from the server's bundle): carry out decisions."""
    source: str | None = field(default=None, compare=False)
    """The file the settings came from (``None``: the defaults)."""

    def to_data(self) -> dict[str, Any]:
        """The ``data.modelward.settings`` document (lists are empty when nothing is configured)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "source":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Severity):
                value = value.label
            out[f.name] = value
        return out


_LISTS = {
    "approved_sha256",
    "approved_origins",
    "allowed_licenses",
    "denied_licenses",
    "allowed_formats",
    "allowed_runtimes",
}
_BOOLS = {
    "commercial",
    "allow_network_exposure",
    "allow_cloud_models",
    "stop_exposed_runtimes",
    "agent_enforce",
}
KEYS = sorted(_LISTS | _BOOLS | {"block_severity"})


class DuplicateKey(Exception):
    """A mapping names the same key twice (YAML would silently keep the last one)."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} (first set on line {first}); keep only one")
        self.line = line


def _check_keys(node: Any) -> None:
    """Raise :class:`DuplicateKey` when a mapping node names one (scalar) key twice."""
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node.value, str):
            continue  # `<<: *defaults` (keys after it override on purpose), complex keys
        key = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise DuplicateKey(key_node.value, line, seen[key])
        seen[key] = line


def _check_tree(node: Any) -> None:
    """:func:`_check_keys` on every mapping of a composed document (no values constructed)."""
    import yaml

    todo, done = [node], set()
    while todo:
        n = todo.pop()
        if id(n) in done:  # aliases share nodes
            continue
        done.add(id(n))
        if isinstance(n, yaml.MappingNode):
            _check_keys(n)
            todo += [x for pair in n.value for x in pair]
        elif isinstance(n, yaml.SequenceNode):
            todo += n.value


def _strict_loader() -> type[Any]:
    """A ``yaml.SafeLoader`` that refuses a key given twice in one mapping."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                _check_keys(node)
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def parse_yaml(
    path: Path, text: str, error: type[UsageError], *, construct: bool = True
) -> tuple[Any, Any]:
    """``(root node, value)`` of a YAML document, refusing duplicate keys; errors name file:line.

    With ``construct=False`` only the nodes are read (the value is ``None``): for callers that
    validate the nodes themselves and report a bad value with its own line."""
    import yaml

    loader = _strict_loader()(text)
    try:
        node = loader.get_single_node()
        value = None
        if node is not None and construct:
            value = loader.construct_document(node)
        elif node is not None:
            _check_tree(node)
    except DuplicateKey as exc:
        raise error(f"{path}:{exc.line}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise error(
            f"{path}{line}: not valid YAML ({getattr(exc, 'problem', None) or exc})"
        ) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2020-13-01
        raise error(f"{path}: not valid YAML ({exc})") from None
    finally:
        loader.dispose()
    return node, value


def load_settings(path: Path) -> Settings:
    """Parse and validate a settings file; errors name the file, line and key."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the settings file: {exc}") from None
    node, value = parse_yaml(path, text, SettingsError)
    if node is None or value is None:
        return Settings(source=str(path))
    if not isinstance(node, yaml.MappingNode) or not isinstance(value, dict):
        raise SettingsError(
            f"{path}:{node.start_mark.line + 1}: settings must be a mapping of keys"
        )
    values: dict[str, Any] = {}
    for key_node, _ in node.value:
        name = key_node.value
        where = f"{path}:{key_node.start_mark.line + 1}"
        if name not in KEYS:
            close = difflib.get_close_matches(str(name), KEYS, n=1, cutoff=0.6)
            hint = (
                f" (did you mean {close[0]!r}?)"
                if close
                else f"; expected one of: {', '.join(KEYS)}"
            )
            raise SettingsError(f"{where}: unknown key {name!r}{hint}")
        values[name] = _check(where, name, value.get(name))
    return Settings(source=str(path), **values)


def _check(where: str, name: str, value: Any) -> Any:
    if name in _BOOLS:
        if not isinstance(value, bool):
            raise SettingsError(f"{where}: {name!r} must be true or false, not {value!r}")
        return value
    if name == "block_severity":
        try:
            return Severity.parse(str(value))
        except ValueError as exc:
            raise SettingsError(f"{where}: 'block_severity': {exc}") from None
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise SettingsError(f"{where}: {name!r} must be a list of strings")
    items = [str(v).strip() for v in value]
    if name == "approved_sha256":
        items = [v.lower().removeprefix("sha256:") for v in items]
        bad = [v for v in items if not _SHA256.match(v)]
        if bad:
            raise SettingsError(f"{where}: 'approved_sha256': {bad[0]!r} is not 64 hex digits")
    elif name in ("allowed_licenses", "denied_licenses", "allowed_formats"):
        items = [v.lower() for v in items]
    return tuple(dict.fromkeys(items))
