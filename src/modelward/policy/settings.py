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
twice is an error, not "the last one wins". The same YAML reader serves the waivers file: both
refuse files over 10 MiB, nesting deeper than 64 levels, and YAML aliases and merge keys (``*name``,
``<<: *defaults``): values are written out in full, so no document expands into more values than
its text holds.
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


MAX_FILE_BYTES = 10 * 1024 * 1024
"""Settings and waivers files larger than this are refused (they are a few kilobytes in practice)."""
MAX_DEPTH = 64
"""Deeper nesting of lists and mappings is refused (the settings need two levels, waivers three)."""


class YamlRefused(Exception):
    """A YAML document is refused before any value is built; ``line`` is 1-based (0: unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(message)
        self.line = line


class DuplicateKey(YamlRefused):
    """A mapping names the same key twice (YAML would silently keep the last one)."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} (first set on line {first}); keep only one", line)


def _check_keys(node: Any) -> None:
    """Refuse a merge key (``<<``) and a (scalar) key given twice in one mapping node."""
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        line = key_node.start_mark.line + 1
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise YamlRefused(
                "YAML merge keys ('<<') are not supported: write the keys out in each entry", line
            )
        if not isinstance(key_node.value, str):
            continue  # complex keys: the callers refuse them as unknown keys
        key = (key_node.tag, key_node.value)
        if key in seen:
            raise DuplicateKey(key_node.value, line, seen[key])
        seen[key] = line


def _check_tree(node: Any) -> None:
    """:func:`_check_keys` on every mapping of a composed document (iteratively: no recursion)."""
    import yaml

    todo = [node]
    while todo:
        n = todo.pop()
        if isinstance(n, yaml.MappingNode):
            _check_keys(n)
            todo += [x for pair in n.value for x in pair]
        elif isinstance(n, yaml.SequenceNode):
            todo += n.value


def _strict_loader() -> type[Any]:
    """A ``yaml.SafeLoader`` that refuses aliases (so no "billion laughs" expansion: the document
    holds at most as many values as its text has characters) and nesting deeper than
    :data:`MAX_DEPTH` (the composer recurses once per level)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise YamlRefused(
                    f"YAML aliases (*{event.anchor}) are not supported: write the values out in full",
                    event.start_mark.line + 1,
                )
            self.depth += 1
            try:
                if self.depth > MAX_DEPTH:
                    event = self.peek_event()  # type: ignore[no-untyped-call]
                    line = event.start_mark.line + 1
                    raise YamlRefused(f"nested more than {MAX_DEPTH} levels deep", line)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return StrictLoader


def read_yaml_text(path: Path, error: type[UsageError], what: str) -> str:
    """The text of a settings or waivers file (``what``: "settings file"), at most
    :data:`MAX_FILE_BYTES`; errors name the file."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise error(f"{path}: the {what} is larger than {MAX_FILE_BYTES >> 20} MiB: refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(f"{path}:{line}: cannot read the {what}: not UTF-8 text") from None


def parse_yaml(
    path: Path, text: str, error: type[UsageError], *, construct: bool = True
) -> tuple[Any, Any]:
    """``(root node, value)`` of a YAML document, refusing duplicate keys, merge keys, aliases
    and deep nesting; every error is one line naming the file (and the line when known).

    With ``construct=False`` only the nodes are read (the value is ``None``): for callers that
    validate the nodes themselves and report a bad value with its own line."""
    import yaml
    from yaml.reader import ReaderError

    loader = None
    try:
        loader = _strict_loader()(text)  # the reader refuses NUL and other control characters
        node = loader.get_single_node()
        value = None
        if node is not None:
            _check_tree(node)
            if construct:
                value = loader.construct_document(node)
    except YamlRefused as exc:
        raise error(f"{path}{f':{exc.line}' if exc.line else ''}: {exc}") from None
    except ReaderError as exc:
        at = text.count("\n", 0, max(exc.position, 0)) + 1
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else repr(char)
        raise error(f"{path}:{at}: not valid YAML (character {shown} is not allowed)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path}{line}: not valid YAML ({_one_line(problem)})") from None
    except RecursionError:
        raise error(f"{path}: not valid YAML (nested too deeply)") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a date like 2020-13-01
        raise error(f"{path}: not valid YAML ({_one_line(str(exc))})") from None
    finally:
        if loader is not None:
            loader.dispose()
    return node, value


def _one_line(text: str) -> str:
    return " ".join(text.split())


def load_settings(path: Path) -> Settings:
    """Parse and validate a settings file; errors name the file, line and key."""
    import yaml

    text = read_yaml_text(path, SettingsError, "settings file")
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
        if not isinstance(name, str):
            raise SettingsError(f"{where}: a key must be a plain name")
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
