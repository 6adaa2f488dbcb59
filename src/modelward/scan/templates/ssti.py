"""Sandbox-escape checks: dunder/private attributes, Python internals, obfuscated names, loaders."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from modelward.scan.templates.fold import Folder
from modelward.scan.templates.issues import OBFUSCATED, SSTI, SUSPICIOUS, Reporter
from modelward.scan.templates.parse import dump, names

if TYPE_CHECKING:
    from jinja2 import nodes

    from modelward.scan.templates.backdoor import Ctx

# Attribute names that walk from any object to Python internals. Any name starting with "_" is also
# flagged (Jinja's own sandbox refuses them); these are the well-known non-underscore ones.
_DANGEROUS_ATTRS = names(
    "func_globals func_code f_globals f_locals f_builtins f_back f_code gi_frame gi_code "
    "cr_frame cr_code ag_frame ag_code tb_frame tb_next co_code mro popen system subprocess "
    "check_output import_module exec_module load_module spawnv execv"
)
# The attribute names of attack payloads; a string constant containing one is itself evidence.
GADGET_NAMES = tuple(
    names(
        "__class__ __mro__ __base__ __bases__ __subclasses__ __globals__ __builtins__ "
        "__import__ __getattribute__ __code__ __closure__ __reduce__ __reduce_ex__ __loader__ "
        "__spec__ __self__ __func__ __dict__ __init__ _TemplateReference__context"
    )
)
_GADGET_CONST = re.compile("|".join(re.escape(g) for g in GADGET_NAMES if g != "__init__"))
_FORMAT_ATTR = re.compile(r"\{[^{}]{0,40}(?:\.|\[)\s*_")
# Global names that only matter to someone walking from them to Python internals.
_TEMPLATE_GADGETS = frozenset(
    {"self", "config", "request", "url_for", "get_flashed_messages", "session", "g", "lipsum"}
)
_PY_NAMES = names(
    "__builtins__ __import__ __loader__ __spec__ eval exec compile getattr setattr delattr "
    "globals locals vars open os subprocess sys importlib builtins"
)


class SstiChecks(Folder, Reporter):
    """Checks each node for a way from the template to Python internals."""

    assigned: set[str]  # every name the template binds itself

    def check_node(self, node: nodes.Node, ctx: Ctx) -> None:
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
                    dump(node),
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
                    SSTI if node.key in GADGET_NAMES else OBFUSCATED,
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
                dump(node),
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
                dump(node),
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
