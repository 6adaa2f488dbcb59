"""The iterative walk over a parsed template: scopes, bindings and the checks each node gets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelward.scan.templates.backdoor import BackdoorChecks, Ctx
from modelward.scan.templates.issues import Issue
from modelward.scan.templates.ssti import SstiChecks

if TYPE_CHECKING:
    from jinja2 import nodes


class Walker(SstiChecks, BackdoorChecks):
    """Walks the tree once, without recursion, running every check."""

    def __init__(self, issues: list[Issue]) -> None:
        self.issues = issues
        self.env: dict[str, Any] = {}  # names bound to constants (``{% set a = '_' ~ '_' %}``)
        self.tainted: set[str] = set()  # names bound to message content
        self.assigned: set[str] = set()  # every name the template binds itself
        self._seen: set[tuple[str, str]] = set()

    # ---------------------------------------------------------------- traversal
    def run(self, tree: nodes.Template) -> None:
        from jinja2 import nodes as n

        stack: list[tuple[n.Node, Ctx]] = [(tree, Ctx())]
        while stack:
            node, ctx = stack.pop()
            children: list[tuple[n.Node, Ctx]] = []
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
