"""Prompt-injection backdoors: literal text a template adds to the conversation, and when.

Text emitted only when a message contains a trigger word, natural-language instructions added to
every turn inside the message loop, and tell-tale phrases (exfiltration links, shell commands ...).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from modelward.models import Severity
from modelward.scan.templates.fold import MAX_DEPTH
from modelward.scan.templates.issues import HIDDEN, Reporter
from modelward.scan.templates.parse import is_const, iter_nodes, key_of, names

if TYPE_CHECKING:
    from jinja2 import nodes

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
_TOOLISH = names(
    "tools tool functions builtin_tools custom_tools documents tools_in_user_message "
    "tool_calls available_tools xml_tools python_tools"
)
_FIRST_KEYS = names("system loop.first loop.index0 loop.index")
_CONTENT_KEYS = frozenset({"content", "text", "reasoning_content", "thinking"})
_TEXT_METHODS = frozenset(
    {"startswith", "endswith", "find", "rfind", "index", "rindex", "count", "search", "match"}
)
_STR_METHODS = names(
    "lower upper strip lstrip rstrip split rsplit replace casefold title splitlines"
)


class Ctx(NamedTuple):
    """What the path from the root to a node says about when the node's text is emitted."""

    trigger: str | None = None  # the message-content test that guards the node
    loop: bool = False  # inside a loop over the messages
    tools: bool = False  # under a condition about tools/documents
    first: bool = False  # under a first-turn / system-role condition


class BackdoorChecks(Reporter):
    """Follows message content through the template and checks the text it emits."""

    tainted: set[str]  # names bound to message content

    def is_tainted(self, node: nodes.Node, depth: int = 0) -> bool:
        """Whether the value of ``node`` is (derived from) message text."""
        from jinja2 import nodes as n

        if depth > MAX_DEPTH:
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

        return any(isinstance(s, n.Name) and "messages" in s.name for s in iter_nodes(node))

    def branch_ctx(self, test: nodes.Node, ctx: Ctx) -> Ctx:
        trigger = self.content_trigger(test) or ctx.trigger
        tools = ctx.tools
        first = ctx.first
        for sub in iter_nodes(test):
            key = key_of(sub)
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

        for sub in iter_nodes(test):
            if isinstance(sub, n.Compare):
                operands = [sub.expr, *(op.expr for op in sub.ops)]
                ops = {op.op for op in sub.ops}
                if not ops & {"in", "notin", "eq", "ne"}:
                    continue
                words = _word_consts(operands)
                if words and any(self.is_tainted(o) for o in operands if not is_const(o)):
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

        if depth > MAX_DEPTH:
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

    def check_text(self, text: str, ctx: Ctx) -> None:
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
