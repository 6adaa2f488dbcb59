"""The parse-only Jinja environment and small helpers over its syntax tree (no recursion)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jinja2 import Environment, nodes


def names(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text`` (vocabulary tables)."""
    return frozenset(text.split())


_ENV: Environment | None = None


def environment() -> Environment:
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


def iter_nodes(node: nodes.Node, limit: int = 20_000) -> Iterator[nodes.Node]:
    """``node`` and its descendants, iteratively, at most ``limit`` of them."""
    stack = [node]
    seen = 0
    while stack and seen < limit:
        cur = stack.pop()
        seen += 1
        yield cur
        stack.extend(cur.iter_child_nodes())


def key_of(node: nodes.Node) -> str | None:
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


def is_const(node: nodes.Node) -> bool:
    from jinja2 import nodes as n

    return isinstance(node, n.Const)


def dump(node: nodes.Node) -> str:
    """A short, readable rendering of an expression for evidence."""
    text = repr(node)
    return text if len(text) <= 240 else text[:237] + "..."
