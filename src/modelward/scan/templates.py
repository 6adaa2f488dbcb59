"""Static analysis of Jinja2 chat templates: sandbox escapes, obfuscation and prompt-injection backdoors.

Templates are parsed with Jinja2's *parser* only (``Environment().parse``): nothing is compiled,
rendered or run. The abstract syntax tree is walked iteratively (no recursion on attacker-controlled
depth) and checked for:

* ``template.ssti`` (critical): access to dunder or private attributes (``__class__``, ``__globals__``,
  ``_TemplateReference__context`` ...), frame/code introspection attributes, import machinery, in any
  spelling Jinja accepts (``.attr``, ``['attr']``, ``|attr('attr')``, escaped ``'\\x5f\\x5f'`` strings,
  names built from constants with ``~``, ``+``, ``*``, ``%``, ``format``, ``join``, ``replace`` ...);
  the payload class of CVE-2024-34359 ("Llama Drama").
* ``template.obfuscated-access`` (high): attribute names computed at render time from values the
  scanner cannot resolve (``|attr(x)``, ``obj[a ~ b]``): real chat templates never do this.
* ``template.suspicious-construct`` (medium): Jinja features no chat template needs (``include``,
  ``import``, ``extends``, ``self``, ``config``, ``request``, Python builtins by name ...).
* ``template.hidden-instructions`` (high, medium for a bare URL): literal text that injects instructions
  into the conversation: text emitted only when a message contains some trigger word, natural-language
  instructions added to every turn inside the message loop, or tell-tale phrases ("ignore previous
  instructions", "do not tell the user", exfiltration links, shell commands) anywhere.
* ``template.malformed`` (medium): a template Jinja cannot parse (it is also searched as raw text).

:func:`analyze` returns the issues; :func:`check_template` reports them on a scan context. Both are
meant for every place a chat template is found (GGUF metadata, ``tokenizer_config.json`` ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from modelward.models import Severity
from modelward.scan.rules import SCAN_LIMIT, Rule, rule

if TYPE_CHECKING:
    from jinja2 import Environment, nodes

    from modelward.scan.context import ScanContext

SSTI = rule(
    "template.ssti",
    Severity.CRITICAL,
    "Chat template reaches Python internals: a Jinja2 sandbox escape that runs code when rendered "
    "(critical)",
    "Do not load this model in any runtime that renders its chat template (llama-cpp-python, "
    "transformers, vLLM, Ollama ...); replace the template with the upstream one or delete the file.",
)
OBFUSCATED = rule(
    "template.obfuscated-access",
    Severity.HIGH,
    "Chat template computes the names of the attributes it reads at render time (high)",
    "Treat the template as hostile: compare it with the upstream model's template and replace it.",
)
SUSPICIOUS = rule(
    "template.suspicious-construct",
    Severity.MEDIUM,
    "Chat template uses Jinja features that chat templates never need (medium)",
    "Review the template by hand; replace it with the upstream model's template.",
)
HIDDEN = rule(
    "template.hidden-instructions",
    Severity.HIGH,
    "Chat template injects hidden instructions into the conversation: a prompt-injection backdoor "
    "(high; medium for a bare link)",
    "Read the template's literal text; replace the template with the upstream model's one before "
    "serving the model.",
)
MALFORMED = rule(
    "template.malformed",
    Severity.MEDIUM,
    "Chat template cannot be parsed by Jinja2 (medium)",
    "A runtime that renders it may fail or parse it differently; obtain the model from a trusted "
    "source or replace the template.",
)


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a template."""

    rule: Rule
    message: str
    evidence: str
    severity: Severity | None = None


# ---------------------------------------------------------------------------------------- vocabulary
def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Attribute names that walk from any object to Python internals. Any name starting with "_" is also
# flagged (Jinja's own sandbox refuses them); these are the well-known non-underscore ones.
_DANGEROUS_ATTRS = _names(
    "func_globals func_code f_globals f_locals f_builtins f_back f_code gi_frame gi_code "
    "cr_frame cr_code ag_frame ag_code tb_frame tb_next co_code mro popen system subprocess "
    "check_output import_module exec_module load_module spawnv execv"
)
# The attribute names of attack payloads; a string constant containing one is itself evidence.
_GADGET_NAMES = tuple(
    _names(
        "__class__ __mro__ __base__ __bases__ __subclasses__ __globals__ __builtins__ "
        "__import__ __getattribute__ __code__ __closure__ __reduce__ __reduce_ex__ __loader__ "
        "__spec__ __self__ __func__ __dict__ __init__ _TemplateReference__context"
    )
)
_GADGET_CONST = re.compile("|".join(re.escape(g) for g in _GADGET_NAMES if g != "__init__"))
_FORMAT_ATTR = re.compile(r"\{[^{}]{0,40}(?:\.|\[)\s*_")
# Global names that only matter to someone walking from them to Python internals.
_TEMPLATE_GADGETS = frozenset(
    {"self", "config", "request", "url_for", "get_flashed_messages", "session", "g", "lipsum"}
)
_PY_NAMES = _names(
    "__builtins__ __import__ __loader__ __spec__ eval exec compile getattr setattr delattr "
    "globals locals vars open os subprocess sys importlib builtins"
)
# Raw-text signatures, used when a template cannot be parsed (or is too large to parse).
_RAW_SSTI = re.compile(
    "|".join(re.escape(g) for g in _GADGET_NAMES if g != "__init__")
    + r"|\\x5f\\x5f|\\u005f\\u005f|\\137\\137|\|\s*attr\s*\(\s*['\"]_|\.\s*__init__\s*\.",
)

# Literal text: role markers and special tokens are stripped before words are counted.
_MARKER = re.compile(
    r"<\|[^|<>]{0,60}\|>|<｜[^｜]{0,60}｜>|</?[^<>\s]{1,40}>|\[/?[A-Z][A-Z_]{1,30}\]|<<?/?SYS>>?"
)
_WORD = re.compile(r"[^\W\d_]{2,}")
_CUE = re.compile(
    r"\b(?:always|never|must|should|ignore|disregard|forget|do not|don't|remember|make sure|"
    r"recommend|include|mention|tell|say|reply|respond|answer|pretend|act as|you are|you will|"
    r"instead|insert|append)\b",
    re.IGNORECASE,
)
_STRONG = (
    (
        re.compile(
            r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}?\b(?:previous|prior|above|"
            r"earlier|preceding|all|any|system|safety|original)\b[^.\n]{0,30}?\b(?:instructions?|"
            r"prompts?|rules?|messages?|guidelines?|context|directives?)\b",
            re.IGNORECASE,
        ),
        "tells the model to ignore its instructions",
    ),
    (
        re.compile(
            r"\b(?:do not|don't|never|without)\b[^.\n]{0,24}?\b(?:tell(?:ing)?|reveal(?:ing)?|"
            r"mention(?:ing)?|disclos(?:e|ing)|inform(?:ing)?|notify(?:ing)?|let(?:ting)?|"
            r"alert(?:ing)?|warn(?:ing)?)\b[^.\n]{0,12}?\b(?:the )?users?\b",
            re.IGNORECASE,
        ),
        "hides something from the user",
    ),
    (
        re.compile(r"\b(?:secretly|covertly|exfiltrat\w*)\b", re.IGNORECASE),
        "asks for covert behaviour",
    ),
    (
        re.compile(r"!\[[^\]\n]{0,80}\]\(\s*(?:https?:)?//", re.IGNORECASE),
        "embeds a markdown image link (a data exfiltration channel)",
    ),
    (
        re.compile(
            r"\b(?:curl|wget)\s+-{0,2}\w|\brm\s+-rf\b|\bpowershell(?:\.exe)?\s+-|/bin/(?:ba)?sh\b|"
            r"\bnc\s+-e\b|\bbase64\s+-d\b",
            re.IGNORECASE,
        ),
        "contains a shell command",
    ),
    (
        re.compile(
            r"\bfrom now on\b|\bnew (?:system )?instructions\b|\bdeveloper mode\b|\bjailbr(?:ea|o)k",
            re.IGNORECASE,
        ),
        "rewrites the model's instructions",
    ),
)
_URL = re.compile(r"\bhttps?://[^\s'\"<>)]+|\bwww\.[a-z0-9-]+\.[a-z]{2,}\b", re.IGNORECASE)
_TOOLISH = _names(
    "tools tool functions builtin_tools custom_tools documents tools_in_user_message "
    "tool_calls available_tools xml_tools python_tools"
)
_FIRST_KEYS = _names("system loop.first loop.index0 loop.index")
_CONTENT_KEYS = frozenset({"content", "text", "reasoning_content", "thinking"})
_TEXT_METHODS = frozenset(
    {"startswith", "endswith", "find", "rfind", "index", "rindex", "count", "search", "match"}
)
_FOLD_FILTERS = _names(
    "join replace lower upper reverse string format first last list title capitalize trim"
)
_STR_METHODS = _names(
    "lower upper strip lstrip rstrip split rsplit replace casefold title splitlines"
)
_BUILD_METHODS = frozenset({"format", "join", "replace", "lower", "upper", "strip", "swapcase"})
_SAFE_PERCENT = re.compile(r"(?:[^%]|%%|%[-+ #0]?\d{0,2}(?:\.\d{1,2})?[sdicrxXoeEfFgGa])*")
_SAFE_BRACES = re.compile(r"(?:[^{}]|\{\d{0,2}\}|\{\{|\}\})*")
_MAX_FOLD = 4096
_MAX_DEPTH = 60

_ENV: Environment | None = None


def _environment() -> Environment:
    """A parse-only Jinja environment that accepts what chat-template runtimes accept."""
    global _ENV
    if _ENV is None:
        from jinja2 import Environment, nodes
        from jinja2.ext import Extension
        from jinja2.parser import Parser

        class _Generation(Extension):
            """``{% generation %}`` blocks of Hugging Face transformers' assistant masks."""

            tags = {"generation"}  # noqa: RUF012 (jinja's class attribute)

            def parse(self, parser: Parser) -> nodes.Node:
                lineno = next(parser.stream).lineno
                body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
                return nodes.Scope(body, lineno=lineno)

        _ENV = Environment(
            extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _Generation],
            autoescape=False,
        )
    return _ENV


# ------------------------------------------------------------------------------------------ public
def analyze(text: str, *, max_chars: int = 4 << 20) -> list[Issue]:
    """Every issue in chat template ``text``. Never raises for any input."""
    issues: list[Issue] = []
    if len(text) > max_chars:
        issues.append(
            Issue(
                SCAN_LIMIT,
                f"Chat template of {len(text):,} characters is larger than the "
                f"{max_chars:,} parsed; only searched as text.",
                evidence=f"{len(text)} characters",
            )
        )
        issues.extend(raw_issues(text))
        return issues
    from jinja2 import TemplateSyntaxError

    try:
        tree = _environment().parse(text)
    except TemplateSyntaxError as exc:
        issues.append(
            Issue(
                MALFORMED,
                f"Jinja2 cannot parse the chat template (line {exc.lineno}: {exc.message}).",
                evidence=_snippet(text, exc.lineno),
            )
        )
        issues.extend(raw_issues(text))
        return issues
    except RecursionError:
        issues.append(
            Issue(MALFORMED, "Chat template is nested too deeply to parse.", evidence=text[:120])
        )
        issues.extend(raw_issues(text))
        return issues
    except Exception as exc:  # the parser met something it does not handle: still report
        issues.append(
            Issue(
                MALFORMED,
                f"Jinja2 failed on the chat template ({type(exc).__name__}).",
                evidence=str(exc)[:200],
            )
        )
        issues.extend(raw_issues(text))
        return issues
    _Walker(issues).run(tree)
    return issues


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


def check_template(
    ctx: ScanContext, text: str, location: str, *, max_chars: int | None = None
) -> list[Issue]:
    """Analyse ``text`` and report its issues on ``ctx`` at ``location``; returns them too."""
    limit = ctx.limits.max_template_bytes if max_chars is None else max_chars
    issues = analyze(text, max_chars=limit)
    for issue in issues:
        ctx.report(
            issue.rule,
            issue.message,
            evidence=issue.evidence,
            location=location,
            severity=issue.severity,
        )
    return issues


def _snippet(text: str, lineno: int | None) -> str:
    lines = text.splitlines()
    if lineno and 0 < lineno <= len(lines):
        return lines[lineno - 1][:200]
    return text[:200]


# ------------------------------------------------------------------------------------------ walker
class _Ctx(NamedTuple):
    """What the path from the root to a node says about when the node's text is emitted."""

    trigger: str | None = None  # the message-content test that guards the node
    loop: bool = False  # inside a loop over the messages
    tools: bool = False  # under a condition about tools/documents
    first: bool = False  # under a first-turn / system-role condition


class _Walker:
    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        self.env: dict[str, Any] = {}  # names bound to constants (``{% set a = '_' ~ '_' %}``)
        self.tainted: set[str] = set()  # names bound to message content
        self.assigned: set[str] = set()  # every name the template binds itself
        self._seen: set[tuple[str, str]] = set()

    def add(
        self, rule_: Rule, message: str, evidence: str, severity: Severity | None = None
    ) -> None:
        key = (rule_.id, evidence)
        if key in self._seen:
            return
        self._seen.add(key)
        self.issues.append(Issue(rule_, message, evidence[:300], severity))

    # ---------------------------------------------------------------- traversal
    def run(self, tree: nodes.Template) -> None:
        from jinja2 import nodes as n

        stack: list[tuple[n.Node, _Ctx]] = [(tree, _Ctx())]
        while stack:
            node, ctx = stack.pop()
            children: list[tuple[n.Node, _Ctx]] = []
            if isinstance(node, n.Output):
                for child in node.nodes:
                    if isinstance(child, n.TemplateData):
                        self.check_text(child.data, ctx)
                    else:
                        for text, trig in self.output_strings(child, ctx.trigger, 0):
                            self.check_text(text, ctx._replace(trigger=trig))
                        children.append((child, ctx))
            elif isinstance(node, n.If):
                children.append((node.test, ctx))
                inner = self.branch_ctx(node.test, ctx)
                children.extend((c, inner) for c in node.body)
                for c in (*node.elif_, *node.else_):
                    children.append((c, inner._replace(tools=ctx.tools, first=ctx.first)))
            elif isinstance(node, n.For):
                children.append((node.iter, ctx))
                inner = ctx
                if self.mentions_messages(node.iter):
                    inner = ctx._replace(loop=True)
                if node.test is not None:
                    children.append((node.test, inner))
                children.extend((c, inner) for c in (*node.body, *node.else_))
                children.append((node.target, ctx))
                self.bind(node.target, None, tainted=self.is_tainted(node.iter))
            elif isinstance(node, n.Assign):
                value = node.node
                for text, trig in self.output_strings(value, ctx.trigger, 0):
                    self.check_text(text, ctx._replace(trigger=trig))
                self.bind(node.target, self.fold(value, 0), tainted=self.is_tainted(value))
                children.append((value, ctx))
            else:
                if isinstance(node, n.AssignBlock):
                    self.bind(node.target, self.fold_body(node.body), tainted=False)
                if isinstance(node, (n.Macro, n.CallBlock)):
                    if isinstance(node, n.Macro):
                        self.assigned.add(node.name)
                    for arg in node.args:
                        self.bind(arg, None, tainted=False)
                elif isinstance(node, n.With):
                    for target in node.targets:
                        self.bind(target, None, tainted=False)
                self.check_node(node, ctx)
                children.extend((c, ctx) for c in node.iter_child_nodes())
            stack.extend(reversed(children))

    def bind(self, target: nodes.Node, value: Any, *, tainted: bool) -> None:
        from jinja2 import nodes as n

        if isinstance(target, n.Name):
            key = target.name
        elif isinstance(target, n.NSRef):
            key = f"{target.name}.{target.attr}"
        else:
            for sub in target.iter_child_nodes():
                self.bind(sub, None, tainted=tainted)
            return
        self.assigned.add(key)
        if value is None:
            self.env.pop(key, None)
        else:
            self.env[key] = value
        if tainted:
            self.tainted.add(key)

    # ---------------------------------------------------------------- security checks
    def check_node(self, node: nodes.Node, ctx: _Ctx) -> None:
        from jinja2 import nodes as n

        if isinstance(node, n.Getattr):
            self.check_attr_name(node.attr, f".{node.attr}")
            base = node.node
            if (
                isinstance(base, n.Name)
                and base.name in _TEMPLATE_GADGETS
                and base.name not in self.assigned
            ):
                self.add(
                    SUSPICIOUS,
                    f"Chat template reads attribute {node.attr!r} of the template global "
                    f"{base.name!r}, a first step towards Python internals.",
                    f"{base.name}.{node.attr}",
                )
        elif isinstance(node, n.Getitem):
            value = self.fold(node.arg, 0)
            if isinstance(value, str):
                self.check_attr_name(value, f"[{value!r}]", item=True)
            elif value is None and self.builds_string(node.arg):
                self.add(
                    OBFUSCATED,
                    "Chat template looks up an item whose name it builds at render time.",
                    _dump(node),
                )
        elif isinstance(node, n.Filter):
            self.check_filter(node)
        elif isinstance(node, n.Name):
            self.check_name(node)
        elif isinstance(node, n.Const):
            self.check_const(node.value)
        elif isinstance(node, n.Keyword):
            if node.key.startswith("__"):
                self.add(
                    SSTI if node.key in _GADGET_NAMES else OBFUSCATED,
                    f"Chat template passes the keyword {node.key!r}, a way to spell a dunder "
                    f"name without writing it as a string.",
                    node.key,
                )
        elif isinstance(node, n.Call):
            self.check_call(node)
        elif isinstance(node, (n.Include, n.Import, n.FromImport, n.Extends)):
            self.add(
                SUSPICIOUS,
                f"Chat template uses {{% {type(node).__name__.lower()} %}}, which loads other "
                f"templates or files when rendered.",
                _dump(node),
            )

    def check_attr_name(self, name: str, shown: str, *, item: bool = False) -> None:
        if name.startswith("_"):
            self.add(
                SSTI,
                f"Chat template {'looks up item' if item else 'reads attribute'} {name!r}: "
                f"private and dunder attributes lead to Python internals "
                f"(sandbox escape, CVE-2024-34359).",
                shown,
            )
        elif name in _DANGEROUS_ATTRS and not item:
            self.add(
                SSTI,
                f"Chat template reads attribute {name!r}, which only matters on Python internals.",
                shown,
            )

    def check_filter(self, node: nodes.Filter) -> None:
        if node.name != "attr":
            return
        arg = node.args[0] if node.args else None
        if arg is None:
            return
        value = self.fold(arg, 0)
        if isinstance(value, str):
            if value.startswith("_") or value in _DANGEROUS_ATTRS:
                self.add(
                    SSTI,
                    f"Chat template reads attribute {value!r} through the attr filter "
                    f"(sandbox escape, CVE-2024-34359).",
                    f"|attr({value!r})",
                )
            else:
                self.add(
                    SUSPICIOUS,
                    "Chat template uses the attr filter, which chat templates do not need.",
                    f"|attr({value!r})",
                )
        else:
            self.add(
                OBFUSCATED,
                "Chat template reads an attribute whose name is computed at render time "
                "(|attr with a non-constant name).",
                _dump(node),
            )

    def check_name(self, node: nodes.Name) -> None:
        name = node.name
        if node.ctx != "load" or name in self.assigned:
            return
        if name in ("__builtins__", "__import__", "__loader__", "__spec__"):
            self.add(SSTI, f"Chat template names Python's {name!r}.", name)
        elif name in _PY_NAMES:
            self.add(
                SUSPICIOUS,
                f"Chat template refers to {name!r}, a Python builtin or module Jinja does not "
                f"provide.",
                name,
            )

    def check_const(self, value: Any) -> None:
        if not isinstance(value, str):
            return
        m = _GADGET_CONST.search(value) or _FORMAT_ATTR.search(value)
        if m:
            self.add(
                SSTI,
                "Chat template contains a string that names Python internals "
                f"({m.group(0)!r}), as sandbox-escape payloads do.",
                value[:200],
            )

    def check_call(self, node: nodes.Call) -> None:
        from jinja2 import nodes as n

        callee = node.node
        if isinstance(callee, n.Getattr) and callee.attr in ("format", "format_map"):
            fmt = self.fold(callee.node, 0)
            if isinstance(fmt, str) and _FORMAT_ATTR.search(fmt):
                self.add(
                    SSTI,
                    "Chat template formats a string that reads private attributes.",
                    fmt[:200],
                )
        # Results of string building are checked where they are used (attr, getitem).

    # ---------------------------------------------------------------- constant folding
    def fold(self, node: nodes.Node, depth: int) -> Any:
        """The value of ``node`` when it is built from constants only, else ``None``."""
        if depth > _MAX_DEPTH:
            return None
        try:
            value = self._fold(node, depth + 1)
        except (TypeError, ValueError, IndexError, KeyError, OverflowError, AttributeError):
            return None
        if isinstance(value, str) and len(value) > _MAX_FOLD:
            return None
        return value

    def _fold(self, node: nodes.Node, depth: int) -> Any:
        from jinja2 import nodes as n

        if isinstance(node, n.Const):
            v = node.value
            return v if isinstance(v, (str, int, float)) and not isinstance(v, bool) else None
        if isinstance(node, n.Name):
            return self.env.get(node.name)
        if isinstance(node, n.Getattr) and isinstance(node.node, n.Name):
            return self.env.get(f"{node.node.name}.{node.attr}")
        if isinstance(node, (n.List, n.Tuple)):
            items = [self.fold(i, depth) for i in node.items]
            return None if any(i is None for i in items) else items
        if isinstance(node, n.Concat):
            parts = [self.fold(i, depth) for i in node.nodes]
            if any(p is None for p in parts):
                return None
            return "".join(str(p) for p in parts)
        if isinstance(node, (n.Add, n.Mul, n.Mod)):
            left, right = self.fold(node.left, depth), self.fold(node.right, depth)
            if left is None or right is None:
                return None
            return _binop(type(node).__name__, left, right)
        if isinstance(node, n.Filter) and node.node is not None:
            if node.name not in _FOLD_FILTERS:
                return None
            base = self.fold(node.node, depth)
            args = [self.fold(a, depth) for a in node.args]
            if base is None or any(a is None for a in args):
                return None
            return _filter(node.name, base, args)
        if isinstance(node, n.Call):
            callee = node.node
            if isinstance(callee, n.Name) and callee.name == "dict" and not node.args:
                return [kw.key for kw in node.kwargs]
            if isinstance(callee, n.Getattr) and callee.attr in _BUILD_METHODS:
                base = self.fold(callee.node, depth)
                args = [self.fold(a, depth) for a in node.args]
                if not isinstance(base, str) or any(a is None for a in args) or node.kwargs:
                    return None
                return _method(callee.attr, base, args)
            return None
        if isinstance(node, n.Getitem):
            base = self.fold(node.node, depth)
            if base is None:
                return None
            if isinstance(node.arg, n.Slice):
                s = node.arg
                bounds = [None if x is None else self.fold(x, depth) for x in (s.start, s.stop)]
                step = None if s.step is None else self.fold(s.step, depth)
                if any(isinstance(b, str) for b in (*bounds, step)):
                    return None
                return base[slice(bounds[0], bounds[1], step)]
            key = self.fold(node.arg, depth)
            return base[key] if isinstance(key, int) else None
        return None

    def fold_body(self, body: list[nodes.Node]) -> str | None:
        """The text a ``{% set x %}...{% endset %}`` block assigns, when it is constant."""
        from jinja2 import nodes as n

        parts: list[str] = []
        for stmt in body:
            if not isinstance(stmt, n.Output):
                return None
            for item in stmt.nodes:
                value = item.data if isinstance(item, n.TemplateData) else self.fold(item, 0)
                if value is None:
                    return None
                parts.append(str(value))
        text = "".join(parts)
        return text if len(text) <= _MAX_FOLD else None

    def builds_string(self, node: nodes.Node) -> bool:
        """Whether ``node`` builds a string out of pieces (concatenation, formatting ...)."""
        from jinja2 import nodes as n

        for sub in _iter_nodes(node):
            if isinstance(sub, (n.Concat, n.Mod, n.Mul)):
                return True
            if isinstance(sub, n.Add) and (
                (isinstance(sub.left, n.Const) and isinstance(sub.left.value, str))
                or (isinstance(sub.right, n.Const) and isinstance(sub.right.value, str))
            ):
                return True
            if isinstance(sub, n.Filter) and sub.name in _FOLD_FILTERS:
                return True
            if (
                isinstance(sub, n.Call)
                and isinstance(sub.node, n.Getattr)
                and sub.node.attr in _BUILD_METHODS
            ):
                return True
        return False

    # ---------------------------------------------------------------- conversation context
    def is_tainted(self, node: nodes.Node, depth: int = 0) -> bool:
        """Whether the value of ``node`` is (derived from) message text."""
        from jinja2 import nodes as n

        if depth > _MAX_DEPTH:
            return False
        if isinstance(node, n.Name):
            return node.name in self.tainted or node.name in _CONTENT_KEYS
        if isinstance(node, (n.Getattr, n.Getitem)):
            key: Any = node.attr if isinstance(node, n.Getattr) else None
            if isinstance(node, n.Getitem):
                key = node.arg.value if isinstance(node.arg, n.Const) else None
                if key is None or isinstance(key, int):  # content[0], content[a:b]
                    return self.is_tainted(node.node, depth + 1)
            if key in _CONTENT_KEYS:
                return True
            if (
                isinstance(node, n.Getattr)
                and isinstance(node.node, n.Name)
                and f"{node.node.name}.{node.attr}" in self.tainted
            ):
                return True
            return key in _STR_METHODS and self.is_tainted(node.node, depth + 1)
        if isinstance(node, n.Call):
            return self.is_tainted(node.node, depth + 1)
        if isinstance(node, n.Filter):
            return node.node is not None and self.is_tainted(node.node, depth + 1)
        if isinstance(node, n.Concat):
            return any(self.is_tainted(x, depth + 1) for x in node.nodes)
        if isinstance(node, n.Add):
            return self.is_tainted(node.left, depth + 1) or self.is_tainted(node.right, depth + 1)
        if isinstance(node, n.CondExpr):
            return self.is_tainted(node.expr1, depth + 1) or (
                node.expr2 is not None and self.is_tainted(node.expr2, depth + 1)
            )
        return False

    def mentions_messages(self, node: nodes.Node) -> bool:
        from jinja2 import nodes as n

        return any(isinstance(s, n.Name) and "messages" in s.name for s in _iter_nodes(node))

    def branch_ctx(self, test: nodes.Node, ctx: _Ctx) -> _Ctx:
        trigger = self.content_trigger(test) or ctx.trigger
        tools = ctx.tools
        first = ctx.first
        for sub in _iter_nodes(test):
            key = _key_of(sub)
            if key is None:
                continue
            if key in _TOOLISH:
                tools = True
            if key in _FIRST_KEYS or "system_" in key or key.endswith(".found"):
                first = True
        return ctx._replace(trigger=trigger, tools=tools, first=first)

    def content_trigger(self, test: nodes.Node) -> str | None:
        """A word that message content is tested for, when ``test`` is such a test."""
        from jinja2 import nodes as n

        for sub in _iter_nodes(test):
            if isinstance(sub, n.Compare):
                operands = [sub.expr, *(op.expr for op in sub.ops)]
                ops = {op.op for op in sub.ops}
                if not ops & {"in", "notin", "eq", "ne"}:
                    continue
                words = _word_consts(operands)
                if words and any(self.is_tainted(o) for o in operands if not _is_const(o)):
                    return str(words[0])
            elif isinstance(sub, n.Call) and isinstance(sub.node, n.Getattr):
                if sub.node.attr in _TEXT_METHODS and self.is_tainted(sub.node.node):
                    words = _word_consts(sub.args)
                    if words:
                        return str(words[0])
            elif isinstance(sub, n.Test) and sub.name in ("in", "eq", "equalto", "sameas"):
                words = _word_consts(sub.args)
                if words and self.is_tainted(sub.node):
                    return str(words[0])
        return None

    def output_strings(
        self, node: nodes.Node, trigger: str | None, depth: int
    ) -> Iterator[tuple[str, str | None]]:
        """Literal strings that ``node`` emits, with the content trigger that guards each."""
        from jinja2 import nodes as n

        if depth > _MAX_DEPTH:
            return
        if isinstance(node, n.Const):
            if isinstance(node.value, str):
                yield node.value, trigger
        elif isinstance(node, (n.Add, n.Concat)):
            parts = [node.left, node.right] if isinstance(node, n.Add) else node.nodes
            texts: list[str] = []
            for part in parts:
                for text, t in self.output_strings(part, trigger, depth + 1):
                    if t != trigger:
                        yield text, t
                    else:
                        texts.append(text)
            if texts:
                yield " ".join(texts), trigger
        elif isinstance(node, n.CondExpr):
            inner = self.content_trigger(node.test) or trigger
            yield from self.output_strings(node.expr1, inner, depth + 1)
            if node.expr2 is not None:
                yield from self.output_strings(node.expr2, inner, depth + 1)
        elif isinstance(node, n.Filter) and node.node is not None:
            yield from self.output_strings(node.node, trigger, depth + 1)

    def check_text(self, text: str, ctx: _Ctx) -> None:
        if not text or not text.strip():
            return
        plain = _MARKER.sub(" ", text)
        shown = " ".join(text.split())[:200]
        for pattern, what in _STRONG:
            if pattern.search(plain):
                self.add(
                    HIDDEN,
                    f"Chat template text {what}; it is added to the prompt the model sees.",
                    shown,
                )
                return
        words = _WORD.findall(plain)
        if ctx.trigger is not None and len(words) >= 2:
            self.add(
                HIDDEN,
                f"Chat template adds text to the prompt only when a message contains "
                f"{ctx.trigger!r}: a conversation-triggered backdoor.",
                shown,
            )
            return
        url = _URL.search(plain)
        if url:
            self.add(
                HIDDEN,
                "Chat template adds a link to the prompt the model sees.",
                shown,
                severity=Severity.HIGH if ctx.loop or ctx.trigger else Severity.MEDIUM,
            )
            return
        if (
            ctx.loop
            and not ctx.tools
            and not ctx.first
            and len(words) >= 8
            and _CUE.search(plain) is not None
        ):
            self.add(
                HIDDEN,
                "Chat template adds natural-language instructions to the conversation's turns "
                "that the user never wrote.",
                shown,
            )


# ------------------------------------------------------------------------------------------ helpers
def _iter_nodes(node: nodes.Node, limit: int = 20_000) -> Iterator[nodes.Node]:
    """``node`` and its descendants, iteratively, at most ``limit`` of them."""
    stack = [node]
    seen = 0
    while stack and seen < limit:
        cur = stack.pop()
        seen += 1
        yield cur
        stack.extend(cur.iter_child_nodes())


def _key_of(node: nodes.Node) -> str | None:
    """The name, attribute, or string constant a node stands for (``loop.first``, ``tools``)."""
    from jinja2 import nodes as n

    if isinstance(node, n.Name):
        return node.name
    if isinstance(node, n.Getattr):
        if isinstance(node.node, n.Name):
            return f"{node.node.name}.{node.attr}"
        return node.attr
    if isinstance(node, n.Const) and isinstance(node.value, str):
        return node.value
    return None


def _is_const(node: nodes.Node) -> bool:
    from jinja2 import nodes as n

    return isinstance(node, n.Const)


def _word_consts(exprs: list[nodes.Expr]) -> list[str]:
    """String constants with a natural-language word in them (not markers such as ``</think>``)."""
    from jinja2 import nodes as n

    out = []
    for e in exprs:
        if (
            isinstance(e, n.Const)
            and isinstance(e.value, str)
            and re.search(r"[^\W\d_]{3,}", _MARKER.sub(" ", e.value))
        ):
            out.append(e.value)
    return out


def _binop(op: str, left: Any, right: Any) -> Any:
    if op == "Add":
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, (int, float)) and isinstance(right, (int, float)):
            return left + right
        return None
    if op == "Mul":
        if isinstance(left, str) and isinstance(right, int) and 0 <= right <= 64:
            return left * right
        if isinstance(right, str) and isinstance(left, int) and 0 <= left <= 64:
            return right * left
        return None
    if op == "Mod" and isinstance(left, str):
        return _percent(left, right)
    return None


def _percent(fmt: str, args: Any) -> str | None:
    if not _SAFE_PERCENT.fullmatch(fmt):
        return None
    values = tuple(args) if isinstance(args, list) else (args,)
    if not all(isinstance(v, (str, int, float)) for v in values):
        return None
    return fmt % values


def _filter(name: str, base: Any, args: list[Any]) -> Any:
    if name == "join":
        sep = args[0] if args else ""
        if isinstance(base, list) and isinstance(sep, str):
            return sep.join(str(x) for x in base)
        if isinstance(base, str) and isinstance(sep, str):
            return sep.join(base)
        return None
    if name == "format":
        return _percent(base, args) if isinstance(base, str) else None
    if name == "replace":
        if isinstance(base, str) and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
            return base.replace(args[0], args[1])
        return None
    if name == "list":
        return list(base) if isinstance(base, (str, list)) else None
    if name in ("first", "last"):
        return base[0 if name == "first" else -1] if base else None
    if name == "reverse":
        return base[::-1] if isinstance(base, (str, list)) else None
    if name == "string":
        return base if isinstance(base, str) else str(base)
    if isinstance(base, str):
        return {
            "lower": base.lower,
            "upper": base.upper,
            "title": base.title,
            "capitalize": base.capitalize,
            "trim": base.strip,
        }[name]()
    return None


def _method(name: str, base: str, args: list[Any]) -> Any:
    if name == "format":
        if not _SAFE_BRACES.fullmatch(base) or not all(
            isinstance(a, (str, int, float)) for a in args
        ):
            return None
        return base.format(*args)
    if name == "join":
        return base.join(str(x) for x in args[0]) if args and isinstance(args[0], list) else None
    if name == "replace":
        if len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
            return base.replace(args[0], args[1])
        return None
    return {
        "lower": base.lower,
        "upper": base.upper,
        "strip": base.strip,
        "swapcase": base.swapcase,
    }[name]()


def _dump(node: nodes.Node) -> str:
    """A short, readable rendering of an expression for evidence."""
    text = repr(node)
    return text if len(text) <= 240 else text[:237] + "..."
