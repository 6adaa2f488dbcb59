"""Checks OPA's compiler makes and rego-cpp does not: unsafe variables, and where a name is used.

rego-cpp (1.5) evaluates a rule whose body reads a variable nothing binds (``msg := nosuchvar``, a
typo) as undefined: the rule silently produces nothing, and a ``deny`` with a typo would pass
everything. OPA refuses such a policy at compile time (``rego_unsafe_var_error: var nosuchvar is
unsafe``); :func:`unsafe_variables` finds the same mistakes so the engine can refuse it too, with
file and line. rego-cpp offers no syntax tree to Python, so this reads the tokens: hand-written
because no maintained Rego parser exists for Python.

The check is deliberately lenient (it may miss an unsafe variable, it must never refuse a valid
policy): a name counts as bound if any occurrence in its rule could bind it (``x :=``, ``x =``,
``= x``, ``some x``, ``every x``, a function parameter, an index ``a[x]``, a pattern ``[x, y] :=``),
and names followed by ``(`` (function calls: rego-cpp reports unknown functions itself), rule names
of the same package, import aliases and keywords are never variables.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TOKEN = re.compile(
    r"""
    (?P<newline>\n)
  | (?P<space>[ \t\r\f]+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<number>\d[\d.eE+-]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>:=|==|!=|<=|>=|[=<>+\-*/%&|()\[\]{},;.:])
  | (?P<other>.)
    """,
    re.VERBOSE,
)
_KEYWORDS = frozenset(
    {
        "package", "import", "default", "if", "contains", "else", "some", "every", "in", "not",
        "with", "as", "true", "false", "null", "input", "data", "future", "rego", "_",
    }
)  # fmt: skip
_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = frozenset(_OPEN.values())


@dataclass(slots=True)
class _Token:
    kind: str
    text: str
    line: int
    first: bool  # the first token of its line
    depth: int = 0  # brackets open before it
    group: int = -1  # index of the token that opened the innermost bracket around it
    closer: int = -1  # for an opening bracket: index of its closing bracket


@dataclass(slots=True)
class _Rule:
    name: str
    tokens: list[_Token]
    head_end: int  # index (in tokens) where the body or value starts


@dataclass(slots=True)
class _Module:
    path: Path
    package: str
    aliases: set[str] = field(default_factory=set)
    rules: list[_Rule] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Problem:
    """An unsafe variable: ``path:line``, the rule and the variable."""

    path: Path
    line: int
    rule: str
    name: str

    def __str__(self) -> str:
        return (
            f"{self.path}:{self.line}: policy error: var {self.name} is unsafe: nothing in rule "
            f"{self.rule} binds it, so the rule never applies (a typo?)"
        )


def _tokens(text: str) -> list[_Token]:
    """The tokens of a policy with their line and bracket depth (the links between brackets are
    made per rule, by :func:`_local`)."""
    out: list[_Token] = []
    line, first = 1, True
    depth = 0
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup or "other"
        value = m.group()
        if kind == "newline":
            line, first = line + 1, True
            continue
        if kind in ("space", "comment"):
            continue
        if kind == "op" and value in _CLOSE and depth:
            depth -= 1  # a closing bracket stands at the depth of its opener
        out.append(_Token(kind, value, line, first, depth))
        first = False
        if kind in ("string", "raw"):
            line += value.count("\n")
        if kind == "op" and value in _OPEN:
            depth += 1
    return out


_CONTINUED = frozenset(
    {"if", ":=", "=", "contains", "else", ",", "|", "&", "+", "-", "*", "/", "%", "==", "!=",
     "<", ">", "<=", ">=", "in", "not", "some", "every", "with", "as", "default"}
)  # fmt: skip
"""A line ending with one of these goes on in the next line (`r contains x if` + its body)."""


def _starts_rule(toks: Sequence[_Token], i: int) -> bool:
    """Whether ``toks[i]`` begins a new statement: a name at the start of a line, outside any
    bracket, that neither continues the line before (ending in ``if``, ``:=``, an operator ...) nor
    is ``if``/``else`` itself (a rule's brace or body may start on its own line)."""
    t = toks[i]
    if not (t.first and t.depth == 0 and t.kind == "name") or t.text in ("if", "else"):
        return False
    return i == 0 or toks[i - 1].text not in _CONTINUED


def _module(path: Path, text: str) -> _Module | None:
    toks = _tokens(text)
    mod: _Module | None = None
    i = 0
    while i < len(toks):
        t = toks[i]
        end = i + 1
        while end < len(toks) and not _starts_rule(toks, end):
            end += 1
        stmt = toks[i:end]
        if t.text == "package":
            mod = _Module(path, ".".join(x.text for x in stmt[1:] if x.kind == "name"))
        elif t.text == "import" and mod is not None:
            names = [x.text for x in stmt[1:] if x.kind == "name"]
            if "as" in names or (names and names[0] not in ("rego", "future")):
                mod.aliases.add(names[-1])
        elif mod is not None and t.kind == "name":
            name = stmt[1].text if t.text == "default" and len(stmt) > 1 else t.text
            head_end = next(
                (
                    k
                    for k, x in enumerate(stmt)
                    if x.depth == 0 and x.text in ("if", "{", ":=", "=", "contains")
                ),
                len(stmt),
            )
            mod.rules.append(_Rule(name, stmt, head_end))
        i = end
    return mod


def _regions(toks: Sequence[_Token]) -> tuple[set[int], set[int]]:
    """Token indices that declare variables (``some``/``every`` up to their ``in``: patterns
    included) and that name a ``with`` target (``with input.x as``, ``with count as``)."""
    declared: set[int] = set()
    targets: set[int] = set()
    for k, t in enumerate(toks):
        if t.text in ("some", "every"):
            j = k + 1
            while j < len(toks):
                u = toks[j]
                if (u.text == "in" and u.depth == t.depth) or u.text in (";", "|"):
                    break
                if u.first and u.depth <= t.depth:
                    break
                declared.add(j)
                j += 1
        elif t.text == "with":
            j = k + 1
            while j < len(toks) and toks[j].text != "as":
                targets.add(j)
                j += 1
    return declared, targets


def _call_output(toks: Sequence[_Token], k: int) -> bool:
    """Inside the last argument of a call that is a statement of its own (its value unused):
    OPA's output argument, ``walk(input, [path, value])``, ``count(xs, n)``."""
    g = toks[k].group
    while g > 0 and toks[g].text != "(":  # out of the literals around it: [path, value]
        g = toks[g].group
    if g <= 0 or toks[g - 1].kind != "name":
        return False
    start = g - 1
    while start >= 2 and toks[start - 1].text == "." and toks[start - 2].kind == "name":
        start -= 2
    before = toks[start - 1] if start > 0 else None
    statement = toks[start].first or before is None or before.text in (";", "{", "if", "|")
    if not statement:
        return False
    depth = toks[g].depth + 1  # no comma at the argument level after the name: the last argument
    end = toks[g].closer if toks[g].closer > 0 else len(toks)
    return not any(toks[j].text == "," and toks[j].depth == depth for j in range(k + 1, end))


def _binds(toks: Sequence[_Token], k: int, head_end: int, declared: set[int]) -> bool:
    """Whether the name at ``toks[k]`` could bind a variable there (lenient: see the module doc)."""
    prev = toks[k - 1].text if k else ""
    nxt = toks[k + 1].text if k + 1 < len(toks) else ""
    if nxt in (":=", "=") or prev in ("=", "some", "every") or k in declared:
        return True
    if k < head_end and toks[k].depth > 0:  # a function's parameter, or a partial rule's key
        return True
    if _call_output(toks, k):
        return True
    # inside brackets: an index a[x], or a pattern [x, y] := ... / {"k": x} = ...
    g = toks[k].group
    while g >= 0:
        opener = toks[g]
        before = toks[g - 1] if g > 0 else None
        if (
            opener.text == "["
            and before is not None
            and (before.kind == "name" or before.text in ("]", ")"))
        ):
            return True
        after = toks[opener.closer + 1].text if 0 <= opener.closer + 1 < len(toks) else ""
        if after in (":=", "=") or (before is not None and before.text == "="):
            return True
        g = opener.group
    return False


def _call_or_field(toks: Sequence[_Token], k: int) -> bool:
    """A field (``x.name``) or a function's name (``name(``, ``ns.name(``): not a variable."""
    if k and toks[k - 1].text == ".":
        return True
    j = k + 1
    while j + 1 < len(toks) and toks[j].text == "." and toks[j + 1].kind == "name":
        j += 2
    return j < len(toks) and toks[j].text == "("


def _texts(files: Iterable[Path]) -> Iterator[tuple[Path, str]]:
    """The readable policy files with their text (the engine reports unreadable ones itself)."""
    for path in files:
        try:
            yield path, path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue


def _modules(files: Iterable[Path]) -> Iterator[_Module]:
    for path, text in _texts(files):
        mod = _module(path, text)
        if mod is not None:
            yield mod


def unsafe_variables(files: Iterable[Path]) -> list[Problem]:
    """Variables used in a rule that nothing in the rule binds, across a policy's files."""
    modules = list(_modules(files))
    rules_of: dict[str, set[str]] = {}
    for mod in modules:
        rules_of.setdefault(mod.package, set()).update(r.name for r in mod.rules)
    problems: list[Problem] = []
    for mod in modules:
        known = _KEYWORDS | rules_of[mod.package] | mod.aliases
        for rule in mod.rules:
            problems.extend(_check_rule(mod, rule, known))
    return problems


def _check_rule(mod: _Module, rule: _Rule, known: frozenset[str] | set[str]) -> list[Problem]:
    toks = _local(rule.tokens)  # bracket links as indices within the rule
    declared, targets = _regions(toks)
    bound: set[str] = set()
    used: dict[str, int] = {}
    for k, t in enumerate(toks):
        if t.kind != "name" or t.text in known or k in targets or _call_or_field(toks, k):
            continue
        if k == 0 or (k == 1 and toks[0].text == "default"):
            continue  # the rule's own name
        if _binds(toks, k, rule.head_end, declared):
            bound.add(t.text)
        else:
            used.setdefault(t.text, t.line)
    return [
        Problem(mod.path, line, rule.name, name) for name, line in used.items() if name not in bound
    ]


def _local(toks: list[_Token]) -> list[_Token]:
    """Copies of a rule's tokens, each linked to the bracket around it (``group``) and each
    opening bracket to its closing one (``closer``), by index within the rule."""
    out = [_Token(t.kind, t.text, t.line, t.first, t.depth) for t in toks]
    stack: list[int] = []
    for i, t in enumerate(out):
        t.group = stack[-1] if stack else -1
        if t.kind == "op" and t.text in _OPEN:
            stack.append(i)
        elif t.kind == "op" and t.text in _CLOSE and stack:
            out[stack.pop()].closer = i
            t.group = stack[-1] if stack else -1
    return out


def first_use(files: Iterable[Path], name: str) -> tuple[Path, int] | None:
    """Where a name (a function, a rule) is first used as a call or a reference: ``(file, line)``."""
    last = name.rsplit(".", 1)[-1]
    pattern = re.compile(rf"(?<![\w.]){re.escape(last)}\s*\(|\.{re.escape(last)}\s*\(")
    for path, text in _texts(files):
        for lineno, line in enumerate(text.splitlines(), 1):
            code = line.split("#", 1)[0]
            if pattern.search(code):
                return path, lineno
    return None


def conflicting_rules(files: Iterable[Path]) -> list[tuple[str, list[tuple[Path, int]]]]:
    """Complete rules assigned more than once without a body (``x := 1`` and ``x := 2``): the
    evaluation fails with a conflict (OPA: eval_conflict_error). Each name with its places."""
    places: dict[tuple[str, str], list[tuple[Path, int]]] = {}
    for mod in _modules(files):
        path = mod.path
        for rule in mod.rules:
            toks = rule.tokens
            if (
                len(toks) > 2
                and toks[0].kind == "name"
                and toks[1].text == ":="
                and not any(t.text in ("if", "{") and t.depth == 0 for t in toks[2:])
            ):
                places.setdefault((mod.package, rule.name), []).append((path, toks[0].line))
    return [(f"{pkg}.{name}", where) for (pkg, name), where in places.items() if len(where) > 1]


def max_nesting(text: str) -> tuple[int, int]:
    """The deepest nesting of brackets in a policy text and the line where it is reached
    (strings and comments skipped)."""
    depth = deepest = 0
    line = where = 1
    for m in _TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind == "newline":
            line += 1
        elif kind in ("string", "raw"):
            line += value.count("\n")
        elif kind == "op" and value in _OPEN:
            depth += 1
            if depth > deepest:
                deepest, where = depth, line
        elif kind == "op" and value in _CLOSE:
            depth = max(0, depth - 1)
    return deepest, where


def rule_definition(files: Iterable[Path], ref: str) -> tuple[Path, int] | None:
    """Where rule ``pkg.name`` (``ref``) is first defined: ``(file, line)``."""
    pkg, _, name = ref.rpartition(".")
    for mod in _modules(files):
        for rule in mod.rules:
            if mod.package == pkg and rule.name == name:
                return mod.path, rule.tokens[0].line
    return None
