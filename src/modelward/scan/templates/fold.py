"""Constant folding: the value of a template expression built from constants only.

Attack payloads spell ``__globals__`` as ``'_' ~ '_' ~ 'globals' ~ '_' * 2`` or ``'%c' % 95``;
folding recovers the name without rendering anything. Values are capped in size and depth.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modelward.scan.templates.parse import iter_nodes, names

if TYPE_CHECKING:
    from jinja2 import nodes

_FOLD_FILTERS = names(
    "join replace lower upper reverse string format first last list title capitalize trim"
)
_BUILD_METHODS = frozenset({"format", "join", "replace", "lower", "upper", "strip", "swapcase"})
_SAFE_PERCENT = re.compile(r"(?:[^%]|%%|%[-+ #0]?\d{0,2}(?:\.\d{1,2})?[sdicrxXoeEfFgGa])*")
_SAFE_BRACES = re.compile(r"(?:[^{}]|\{\d{0,2}\}|\{\{|\}\})*")
_MAX_FOLD = 4096
MAX_DEPTH = 60


class Folder:
    """Folds expressions against the names the template bound to constants."""

    env: dict[str, Any]  # names bound to constants (``{% set a = '_' ~ '_' %}``)

    def fold(self, node: nodes.Node, depth: int) -> Any:
        """The value of ``node`` when it is built from constants only, else ``None``."""
        if depth > MAX_DEPTH:
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

        for sub in iter_nodes(node):
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
