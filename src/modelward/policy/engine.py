"""Evaluates Rego policies over an inventory document in-process with regopy (rego-cpp).

The policy folder's ``.rego`` files are loaded (``*_test.rego`` only by :func:`run_tests`), the
settings become ``data.modelward.settings`` and the inventory document ``input``. Package
``modelward`` and every package below it are queried once each; in each, these rules count:

- ``decisions``: structured decisions ``{rule, action, severity, subject, message}`` (a set or, faster
  with rego-cpp whose sets are quadratic to build, an array);
- ``deny`` / ``warn``: Conftest-style messages (strings, or objects with ``msg`` and optional fields).

A policy that fails to parse or evaluate raises :class:`~modelward.errors.PolicyError`: it never
counts as "allow".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelward.errors import PolicyError
from modelward.models import Severity
from modelward.policy.decision import ACTIONS, Decision, Subject
from modelward.policy.settings import Settings

PACK = Path(__file__).with_name("pack")
"""The bundled default policy pack."""

_MAX_ERROR = 4000
_ERRORMSG = re.compile(r"\(errormsg \d+:([^\n]*?)\)?\n")
_LOCATION = re.compile(r"-- (\S+?):(\d+):(\d+)")
_TEST_RULE = re.compile(r"^(test_\w+)\s*(?:if\b|\{|:?=)", re.MULTILINE)
_PACKAGE = re.compile(r"^package\s+([\w.]+)", re.MULTILINE)
_PLAIN = re.compile(r"[ !#-\[\]-~]*\Z")
"""A string rego-cpp prints back correctly: printable ASCII without quote or backslash."""


@dataclass(frozen=True, slots=True)
class TestResult:
    """One ``test_*`` rule of a ``_test.rego`` file."""

    name: str
    file: str
    passed: bool
    error: str | None = None


def policy_files(folder: Path, *, tests: bool = False) -> list[Path]:
    """The ``.rego`` files of ``folder`` (recursively, sorted); ``_test.rego`` files only if asked."""
    if not folder.is_dir():
        raise PolicyError(f"{folder}: not a policy folder")
    files = sorted(p for p in folder.rglob("*.rego") if p.is_file())
    if not tests:
        files = [p for p in files if not p.name.endswith("_test.rego")]
    if not files:
        raise PolicyError(f"{folder}: no .rego files in the policy folder")
    return files


def evaluate(
    inventory: Mapping[str, Any],
    settings: Settings | None = None,
    policy: Path | None = None,
) -> list[Decision]:
    """Evaluate the policy folder (default: the bundled pack) over an inventory document."""
    settings = settings or Settings()
    bundled = policy is None or policy.resolve() == PACK.resolve()
    files = policy_files(policy or PACK)
    doc = _pack_input(inventory, settings) if bundled else inventory
    out: list[Decision] = []
    with _LOCK:  # a compiled policy (one interpreter) serves one evaluation at a time
        compiled = _compiled(files, settings)
        if compiled is None:  # the bundle did not build: the plain queries diagnose the error
            interp = _interpreter(files, settings)
            _check_static(files)
            _set_input(interp, doc)
            for pkg in _packages(files):
                if _counts(pkg):
                    found = _query(interp, files, query=f"data.{pkg}")
                    if isinstance(found, dict):
                        _collect(found, pkg, out, top=pkg == "modelward")
            return sorted(out, key=_order)
        _set_input(compiled.interp, doc)
        for pkg in compiled.packages:
            found = _query(compiled.interp, files, bundle=compiled.bundle, entrypoint=pkg)
            if isinstance(found, dict):
                _collect(found, pkg, out, top=pkg == "modelward")
    return sorted(out, key=_order)


def _counts(pkg: str) -> bool:
    """Whether a package's rules count: ``modelward`` and the packages below it, and Conftest's
    default namespace ``main`` (and below it), so that Conftest policies work unchanged."""
    return pkg in ("modelward", "main") or pkg.startswith(("modelward.", "main."))


def _check_unsafe(files: list[Path]) -> None:
    from modelward.policy import lint

    problems = lint.unsafe_variables(files)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise PolicyError(f"{problems[0]}{more}")


def _check_static(files: list[Path]) -> None:
    """Refuse what OPA's compiler refuses and rego-cpp evaluates silently (see policy/lint.py),
    and a folder none of whose packages would be read."""

    _check_unsafe(files)
    packages = [p for p in _packages(files) if not p.endswith("_test")]
    if packages and not any(_counts(p) for p in packages):
        raise PolicyError(
            f"{files[0].parent}: no package is read ({', '.join(packages)}): modelward reads "
            "decisions, deny and warn rules from package modelward (or below it) and from "
            "Conftest's package main"
        )


@dataclass(frozen=True, slots=True)
class _Compiled:
    """A policy compiled (rego-cpp bundle) for one settings document, with its interpreter."""

    interp: Any
    bundle: Any
    packages: tuple[str, ...]


_LOCK = threading.Lock()
_CACHE: OrderedDict[tuple[Any, ...], _Compiled | None] = OrderedDict()
_CACHE_SIZE = 8


def _compiled(files: list[Path], settings: Settings) -> _Compiled | None:
    """The compiled policy for these files (by content) and settings, built once and kept.

    Querying the interpreter compiles the policy again for each query; a bundle is compiled once,
    with one entry point per package, and serves every later evaluation. ``None`` when the bundle
    does not build (the caller's plain queries then report the error with file and line).
    """
    import regopy  # type: ignore[import-untyped]  # rego-cpp: imported only when used

    key = (
        tuple((str(p), hashlib.sha256(p.read_bytes()).hexdigest()) for p in files),
        json.dumps(settings.to_data(), sort_keys=True),
    )
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    interp = _interpreter(files, settings)
    _check_static(files)
    packages = tuple(p for p in _packages(files) if _counts(p))
    compiled: _Compiled | None = None
    if packages:
        with _captured_stdout():
            try:
                bundle = interp.build(None, [p.replace(".", "/") for p in packages])
            except regopy.RegoError:
                bundle = None
        if bundle is not None and bundle.ok():
            compiled = _Compiled(interp, bundle, packages)
    _CACHE[key] = compiled
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return compiled


def _packages(files: list[Path]) -> list[str]:
    names: dict[str, None] = {}
    for path in files:
        m = _PACKAGE.search(path.read_text(encoding="utf-8", errors="replace"))
        if m is not None:
            names[m.group(1)] = None
    return list(names)


def run_tests(folder: Path | None = None, settings: Settings | None = None) -> list[TestResult]:
    """Run every ``test_*`` rule of the folder's ``_test.rego`` files (default: the bundled pack)."""
    folder = folder or PACK
    files = policy_files(folder, tests=True)
    interp = _interpreter(files, settings or Settings())
    _check_unsafe(files)  # a typo in a test (or a rule) would otherwise just fail or pass silently
    _set_input(interp, {})
    results: list[TestResult] = []
    for path in files:
        if not path.name.endswith("_test.rego"):
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        pkg = _PACKAGE.search(text)
        if pkg is None:
            raise PolicyError(f"{path}:1: no package declaration")
        for name in dict.fromkeys(m.group(1) for m in _TEST_RULE.finditer(text)):
            try:
                value = _query(interp, files, query=f"data.{pkg.group(1)}.{name}")
            except PolicyError as exc:
                results.append(TestResult(name, str(path), False, exc.diagnostics()))
                continue
            results.append(TestResult(name, str(path), value is True))
    return results


def _interpreter(files: list[Path], settings: Settings) -> Any:
    import regopy

    interp = regopy.Interpreter()
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"{path}: cannot read the policy file: {exc}") from None
        _check_shape(path, text)
        error = None
        with _captured_stdout() as printed:
            try:
                interp.add_module(str(path), text)
            except regopy.RegoError as exc:
                error = str(exc)
        if error is not None:
            raise PolicyError(_diagnose(error, "".join(printed), files))
    interp.add_data({"modelward": {"settings": settings.to_data()}})
    return interp


_MAX_POLICY_BYTES = 4 << 20
_MAX_NESTING = 200


def _check_shape(path: Path, text: str) -> None:
    """Refuse a policy file rego-cpp cannot take safely: larger than 4 MiB, or brackets nested
    deeper than 200 (its parser recurses: 100,000 nested brackets crash the process)."""
    from modelward.policy import lint

    if len(text) > _MAX_POLICY_BYTES:
        raise PolicyError(
            f"{path}: policy error: {len(text)} characters, more than {_MAX_POLICY_BYTES}: "
            "not a policy file"
        )
    depth, line = lint.max_nesting(text)
    if depth > _MAX_NESTING:
        raise PolicyError(
            f"{path}:{line}: policy error: brackets nested {depth} deep, more than {_MAX_NESTING}"
        )


def _set_input(interp: Any, doc: Mapping[str, Any]) -> None:
    """Hand a document to the interpreter as ``input`` (strings escaped, see :func:`_escaped`)."""
    import regopy

    try:
        interp.set_input(_input(doc))
    except (regopy.RegoError, TypeError, ValueError, RecursionError) as exc:
        raise PolicyError(
            f"the inventory could not be given to the policy: {_short(str(exc))}"
        ) from None


def _input(doc: Mapping[str, Any]) -> Any:
    """A ``regopy.Input`` of the document, built with about half the cost of regopy's own.

    Hand-written: regopy's builder (``rego_input_from_value``) checks each value against a chain of
    ABCs and copies each string into a fresh buffer, which made handing 10,000 artifacts over take
    longer than evaluating them. This calls the same C functions with less Python in between, and
    escapes strings on the way (see :func:`_escaped`).
    """
    import regopy
    from regopy import rego_shared as rs

    lib = rs.rego
    put_str, put_int, put_float = lib.regoInputString, lib.regoInputInt, lib.regoInputFloat
    put_bool, put_null = lib.regoInputBoolean, lib.regoInputNull
    put_item, put_obj, put_arr = lib.regoInputObjectItem, lib.regoInputObject, lib.regoInputArray
    impl = rs.rego_new_input()
    failed = 0

    keys: dict[str, bytes] = {}  # object keys repeat: encode each once
    plain = _PLAIN.match

    def text(v: str) -> bytes:
        if plain(v) is None:
            v = json.dumps(v)[1:-1]
        return v.encode()

    def add(v: Any) -> None:
        nonlocal failed
        t = type(v)
        if t is str:
            failed |= put_str(impl, v.encode() if plain(v) is not None else text(v))
        elif t is dict or isinstance(v, Mapping):
            for k, x in v.items():
                key = keys.get(k)
                if key is None:
                    key = keys[k] = text(str(k))
                failed |= put_str(impl, key)
                add(x)
                failed |= put_item(impl)
            failed |= put_obj(impl, len(v))
        elif t is list or t is tuple:
            for x in v:
                add(x)
            failed |= put_arr(impl, len(v))
        elif t is bool:
            failed |= put_bool(impl, v)
        elif v is None:
            failed |= put_null(impl)
        elif t is int:
            failed |= put_int(impl, v)
        elif t is float:
            failed |= put_float(impl, v)
        else:
            raise TypeError(f"a {t.__name__} value is not JSON")

    value = object.__new__(regopy.Input)  # its __del__ frees the C input
    value._impl = impl
    add(doc)
    if failed:
        raise ValueError("rego-cpp refused a value")
    return value


# The artifact fields the bundled pack reads (see pack/lib.rego); the rest is not handed over. The
# pack reads `source` only to match the approved origins, which `precomputed` answers.
_PACK_FIELDS = ("path", "sha256", "format")
_PACK_SUB_FIELDS = {"license": ("id",)}
_FINDING_FIELDS = ("rule", "severity")


def _pack_input(inventory: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The input for the bundled pack: the fields it reads, escaped, plus pre-computed facts.

    Handing a document to rego-cpp costs a foreign call per value (and each value it holds slows
    every pass of a rule over the artifacts), and rego-cpp matches strings against sets and globs
    slowly (a set is scanned, not hashed). So each artifact keeps only the fields the pack reads
    once the facts are known (not ``source``) and, when its digest or its origin is on the approved
    lists, gains ``precomputed`` with those true answers of ``lib.digest_approved`` and
    ``lib.origin_approved``; the document gains ``precomputed.license_ids``, the distinct raw
    license ids (``license.license_ids``). The pack computes all of them itself when the document
    has no ``precomputed``, as under ``opa eval``; the
    decisions are the same either way (tests/policy/test_pack_decisions.py pins them).
    """
    digests = frozenset(settings.approved_sha256)
    exact = frozenset(o for o in settings.approved_origins if not o.endswith("*"))
    prefixes = tuple(o[:-1] for o in settings.approved_origins if o.endswith("*"))
    matched: dict[str, bool] = {}

    def origin_ok(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        ok = matched.get(value)
        if ok is None:
            ok = matched[value] = value in exact or value.startswith(prefixes)
        return ok

    arts: Any = inventory.get("artifacts")
    if not isinstance(arts, list | tuple):
        return dict(inventory)
    out_arts: list[Any] = []
    license_ids: dict[str, None] = {}  # the distinct raw license ids (pack/license.rego)
    for a in arts:
        if not isinstance(a, Mapping):
            out_arts.append(a)
            continue
        # Sparse: a null sub-field, an empty list of findings or metadata without "ollama" reads
        # in the pack the same as an absent one (object.get defaults, iteration over nothing).
        out: dict[str, Any] = {k: a[k] for k in _PACK_FIELDS if k in a}
        fmt = out.get("format")
        if isinstance(fmt, str) and not fmt.islower():  # a hand-written "PyTorch" is pytorch
            out["format"] = fmt.lower()
        for key, sub in _PACK_SUB_FIELDS.items():
            if key in a:
                v = a[key]
                out[key] = (
                    {k: v[k] for k in sub if v.get(k) is not None} if isinstance(v, Mapping) else v
                )
        md = a.get("metadata")
        if isinstance(md, Mapping) and "ollama" in md:
            ollama = md["ollama"]
            if isinstance(ollama, Mapping):
                ollama = {"cloud": ollama["cloud"]} if "cloud" in ollama else {}
            out["metadata"] = {"ollama": ollama}
        elif md is not None and not isinstance(md, Mapping):
            out["metadata"] = md
        fs = a.get("findings")
        if isinstance(fs, list | tuple):
            if fs:
                out["findings"] = [_pack_finding(f) for f in fs]
        elif fs is not None:
            out["findings"] = fs
        lic = a.get("license", {})
        if isinstance(lic, Mapping):
            lid = lic.get("id", "unknown")
            if isinstance(lid, str):
                license_ids[lid] = None
        src = a.get("source")
        sha = a.get("sha256")
        facts: dict[str, bool] = {}  # only the true ones: a missing fact reads as false, and
        # with input.precomputed present the pack reads a missing `precomputed` as no true fact
        if isinstance(sha, str) and sha in digests:
            facts["digest_approved"] = True
        if isinstance(src, Mapping) and (origin_ok(src.get("repo")) or origin_ok(src.get("name"))):
            facts["origin_approved"] = True
        if facts:
            out["precomputed"] = facts
        out_arts.append(out)
    doc = {k: v for k, v in inventory.items() if k not in ("artifacts", "precomputed")}
    doc["artifacts"] = out_arts
    doc["precomputed"] = {"license_ids": list(license_ids)}
    return doc


def _pack_finding(f: Any) -> Any:
    """A finding with the fields the pack reads; a severity in capitals (hand-written) lowered."""
    if not isinstance(f, Mapping):
        return f
    out = {k: f[k] for k in _FINDING_FIELDS if k in f}
    sev = out.get("severity")
    if isinstance(sev, str) and not sev.islower():
        out["severity"] = sev.lower()
    return out


def _escaped(value: Any) -> Any:
    """The document with every string JSON-escaped (without its quotes).

    regopy hands Python strings to rego-cpp as raw tokens, and rego-cpp prints string tokens between
    quotes without escaping them: a file name with a quote would otherwise corrupt (or forge fields
    of) the JSON result. rego-cpp's own JSON parser (``set_input_term``) is correct but 2-3x slower.
    Inside the policy such strings look escaped; names without quotes, backslashes, control or
    non-ASCII characters are untouched.
    """
    if isinstance(value, str):
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return value
        return json.dumps(value)[1:-1]
    if isinstance(value, Mapping):
        return {_escaped(str(k)): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    return value


def _query(
    interp: Any,
    files: list[Path],
    *,
    query: str | None = None,
    bundle: Any = None,
    entrypoint: str | None = None,
) -> Any:
    """Run a query (or a bundle's package entry point); the first expression's value or ``None``."""
    import regopy
    from regopy import rego_shared as rs

    error: str | None = None
    text = ""
    with _captured_stdout() as printed:
        try:
            if bundle is not None and entrypoint is not None:
                out = rs.rego_bundle_query_entrypoint(
                    interp._impl, bundle._impl, entrypoint.replace(".", "/")
                )
            else:
                out = rs.rego_query(interp._impl, query)
        except regopy.RegoError as exc:
            error = str(exc)
        else:
            try:
                # regopy's Output object crashes on error outputs: use the C API directly
                if rs.rego_output_ok(out):
                    text = rs.rego_output_string(out)
                else:
                    error = rs.rego_get_error(interp._impl) or "evaluation failed"
            finally:
                rs.rego_free_output(out)
    if error is not None:
        raise PolicyError(_diagnose(error, "".join(printed), files))
    if text.strip() == "undefined":
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise PolicyError(_diagnose(text, "".join(printed), files)) from None
    if isinstance(value, list):  # several results: the first one
        value = value[0] if value else {}
    exprs = value.get("expressions") if isinstance(value, dict) else None
    return exprs[0] if exprs else None


@contextlib.contextmanager
def _captured_stdout() -> Iterator[list[str]]:
    """rego-cpp prints its errors (with file:line:col) on file descriptor 1: keep them for us.

    Yields a list that holds the captured text once the block has ended.
    """
    sys.stdout.flush()
    printed: list[str] = []
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(1)
        os.dup2(tmp.fileno(), 1)
        try:
            yield printed
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            tmp.seek(0)
            printed.append(tmp.read(64 * 1024).decode("utf-8", "replace"))


def _diagnose(error: str, printed: str, files: list[Path]) -> str:
    """A one-screen message with ``file:line`` from rego-cpp's error output."""
    messages = [m.strip() for m in _ERRORMSG.findall(error) if m.strip()]
    locations = [f"{f}:{line}:{col}" for f, line, col in _LOCATION.findall(printed)]
    if not locations:
        for (
            path
        ) in files:  # the error tree gives "LEN:name|offset|len": turn the offset into a line
            m = re.search(re.escape(str(path)) + r"\|(\d+)\|", error)
            if m is not None:
                text = path.read_text(encoding="utf-8", errors="replace")
                off = int(m.group(1))
                line = text.count("\n", 0, off) + 1
                col = off - (text.rfind("\n", 0, off) + 1) + 1
                locations.append(f"{path}:{line}:{col}")
                break
    printed_msgs = _printed_messages(printed)
    what = "; ".join(dict.fromkeys(printed_msgs or messages)) or _short(error)
    if not locations:
        found = _locate(what, files)
        if found is not None:
            return found
    where = locations[0] if locations else "policy"
    return f"{where}: policy error: {what}"


_NOT_FOUND = re.compile(r"Function not found: ([\w.]+)")
_RECURSION = re.compile(r"Recursion detected in rule body: data\.([\w.]+)")


def _locate(what: str, files: list[Path]) -> str | None:
    """A ``file:line`` for the errors rego-cpp reports without one (see policy/lint.py)."""
    from modelward.policy import lint

    m = _NOT_FOUND.search(what)
    if m is not None:
        place = lint.first_use(files, m.group(1))
        if place is not None:
            return f"{place[0]}:{place[1]}: policy error: {what} (not a built-in, nor defined)"
    m = _RECURSION.search(what)
    if m is not None:
        place = lint.rule_definition(files, m.group(1))
        if place is not None:
            return f"{place[0]}:{place[1]}: policy error: {what} (a rule that depends on itself)"
    if "evaluation failed" in what or "conflict" in what:
        for name, places in lint.conflicting_rules(files):
            where = " and ".join(f"{f}:{line}" for f, line in places)
            return (
                f"{places[0][0]}:{places[0][1]}: policy error: rule {name} is assigned more than "
                f"once ({where}): a complete rule may have one value"
            )
    return None


def _printed_messages(printed: str) -> list[str]:
    out: list[str] = []
    lines = printed.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("-- ") and _LOCATION.match(line) and i > 0:
            out.append(lines[i - 1].strip())
    return out


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text[:_MAX_ERROR] + ("..." if len(text) > _MAX_ERROR else "")


def _collect(doc: dict[str, Any], where: str, out: list[Decision], *, top: bool = False) -> None:
    """The decisions of one package (its sub-packages are queried on their own)."""
    for key, value in doc.items():
        if top and key == "settings":
            continue
        kind = "decisions" if key == "decisions" else _conftest_kind(key)
        if kind is None:
            continue
        items = _entries(value, f"data.{where}.{key}")
        if kind == "decisions":
            out.extend(_decision(item, where) for item in items)
        else:
            out.extend(_message(item, kind, where) for item in items)


def _entries(value: Any, name: str) -> list[Any]:
    """The entries of a decisions/deny/warn/violation rule: a set (an array in JSON), or the
    object rego-cpp makes of an old-style partial set (``deny[msg] { ... }``, Rego v0 as many
    Conftest policies are written): its keys, each ``true``; keys that are JSON objects were
    objects (``violation[{"msg": m}]``). Anything else is an error, never silently nothing."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(v is True for v in value.values()):
        out: list[Any] = []
        for k in value:
            if k.startswith("{"):
                try:
                    out.append(json.loads(k))
                    continue
                except ValueError:
                    pass
            out.append(k)
        return out
    kinds = {bool: "a boolean", str: "a string", int: "a number", float: "a number"}
    kind = "an object" if isinstance(value, dict) else kinds.get(type(value), "a value")
    raise PolicyError(
        f"{name} is {kind}, not a set: write `{name.rsplit('.', 1)[-1]} contains ... if {{ ... }}`"
    )


def _conftest_kind(key: str) -> str | None:
    """Conftest's rule names: ``deny``, ``violation`` (a deny) and ``warn``, alone or as a prefix
    (``deny_unsigned``); the action their messages get, or ``None`` for any other rule."""
    for prefix, kind in (("deny", "deny"), ("violation", "deny"), ("warn", "warn")):
        if key == prefix or key.startswith(prefix + "_"):
            return kind
    return None


def _decision(item: Any, where: str) -> Decision:
    if not isinstance(item, dict):
        raise PolicyError(
            f"data.{where}.decisions: an entry is not an object: {_short(repr(item))}"
        )
    missing = [k for k in ("rule", "action", "severity", "subject", "message") if k not in item]
    if missing:
        raise PolicyError(
            f"data.{where}.decisions: an entry lacks {', '.join(missing)}: {_short(json.dumps(item))}"
        )
    action = str(item["action"])
    if action not in ACTIONS:
        raise PolicyError(
            f"data.{where}.decisions: action {action!r} is not one of: {', '.join(ACTIONS)}"
        )
    try:
        severity = Severity.parse(str(item["severity"]))
    except ValueError as exc:
        raise PolicyError(f"data.{where}.decisions: {exc}") from None
    return Decision(
        rule=str(item["rule"]),
        action=action,
        severity=severity,
        subject=_subject(item["subject"], where),
        message=str(item["message"]),
    )


def _subject(value: Any, where: str) -> Subject:
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise PolicyError(
            f"data.{where}.decisions: a subject needs a 'kind': {_short(repr(value))}"
        )

    def text(key: str) -> str | None:
        v = value.get(key)
        return None if v is None else str(v)

    return Subject(kind=value["kind"], path=text("path"), sha256=text("sha256"), name=text("name"))


def _message(item: Any, kind: str, where: str) -> Decision:
    """A Conftest ``deny``/``warn``/``violation`` entry: a message, or an object with ``msg`` (and
    our fields: ``rule``, ``severity``, ``subject``)."""
    fields: dict[str, Any] = dict(item) if isinstance(item, dict) else {"msg": item}
    message = str(fields.get("msg", fields.get("message", "")))
    sev_default = "high" if kind == "deny" else "medium"
    try:
        severity = Severity.parse(str(fields.get("severity", sev_default)))
    except ValueError as exc:
        raise PolicyError(f"data.{where}.{kind}: {exc}") from None
    subject = fields.get("subject")
    return Decision(
        rule=str(fields.get("rule", where)),
        action=kind,
        severity=severity,
        subject=_subject(subject, where) if subject is not None else Subject(kind="input"),
        message=message,
    )


def _order(d: Decision) -> tuple[int, int, str, str, str]:
    s = d.subject
    return (
        -ACTIONS.index(d.action),
        -int(d.severity),
        d.rule,
        s.path or s.name or "",
        d.message,
    )
