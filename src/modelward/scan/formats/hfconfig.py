"""Hugging Face repository configs: chat templates in JSON/Jinja files, and remote-code references.

``transformers`` renders the ``chat_template`` of ``tokenizer_config.json`` (or
``chat_template.json`` / ``chat_template.jinja``) in a sandbox, but the same template is what a
backdoored model uses to inject hidden instructions, and other runtimes render it unsandboxed.
``auto_map`` entries in ``config.json``/``tokenizer_config.json`` name Python files that
``trust_remote_code=True`` imports and runs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from modelward.models import Severity
from modelward.scan import templates
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.rules import rule
from modelward.scan.source import Source

MAX_JSON = 16 << 20
"""Config files larger than this are not parsed (tokenizer.json, which has no template, can be)."""
_KEYS = (b'"chat_template"', b'"auto_map"')

REMOTE_CODE = rule(
    "hf.remote-code",
    Severity.MEDIUM,
    "The config names Python code that trust_remote_code=True would import and run",
    "Load without trust_remote_code, or review the named Python files (and pin the revision) first.",
)
MALFORMED = rule(
    "hf.malformed",
    Severity.LOW,
    "A Hugging Face config file that looks like JSON could not be parsed",
    "Re-download the file from its source; a loader will reject it too.",
)


@register
class HuggingFaceConfig(Detector):
    """A JSON config holding a chat template or ``auto_map``, or a ``.jinja`` chat template."""

    format = "hf-config"
    extensions = (".jinja",)
    priority = 250
    """After every binary format: only JSON text reaches it."""

    def matches(self, head: bytes, src: Source) -> bool:
        if head.lstrip()[:1] != b"{" or src.size > MAX_JSON:
            return False
        data = head if src.size <= len(head) else src.read(0, src.size)
        return any(k in data for k in _KEYS)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        raw = bytes(src.read(0, min(src.size, MAX_JSON)))
        start = raw.lstrip()[:2]
        if start[:1] != b"{" or start in (b"{{", b"{%", b"{#"):  # a .jinja file: the template
            name = ctx.prefix.rsplit("/", 1)[-1] if ctx.prefix else os.path.basename(ctx.path)
            if "chat_template" not in name:  # other Jinja files (code generators ...) are not
                ctx.format = "unknown"  # prompts: nothing to say about them
                return
            text = raw.decode("utf-8", "replace")
            ctx.metadata["chat_template"] = True
            templates.check_template(ctx, text, "chat template")
            return
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            ctx.report(MALFORMED, "The file is not valid JSON.", evidence=str(exc)[:200])
            return
        if not isinstance(doc, dict):
            return
        self._templates(doc, ctx)
        self._auto_map(doc, ctx)

    @staticmethod
    def _templates(doc: dict[str, Any], ctx: ScanContext) -> None:
        tpl = doc.get("chat_template")
        found: list[tuple[str, str]] = []
        if isinstance(tpl, str):
            found.append(("chat_template", tpl))
        elif isinstance(tpl, list):  # named templates: [{"name": ..., "template": ...}]
            for i, entry in enumerate(tpl[:64]):
                if isinstance(entry, dict) and isinstance(entry.get("template"), str):
                    name = str(entry.get("name", i))[:80]
                    found.append((f"chat_template[{name}]", entry["template"]))
        if found:
            ctx.metadata["chat_template"] = True
            ctx.metadata["chat_templates"] = [name for name, _ in found]
        for name, text in found:
            templates.check_template(ctx, text, name)

    @staticmethod
    def _auto_map(doc: dict[str, Any], ctx: ScanContext) -> None:
        auto_map = doc.get("auto_map")
        if not isinstance(auto_map, dict) or not auto_map:
            return
        refs: list[str] = []
        for value in auto_map.values():
            items = value if isinstance(value, list) else [value]
            refs.extend(str(v)[:200] for v in items if isinstance(v, str))
        ctx.metadata["auto_map"] = sorted(set(refs))[:64]
        for ref in sorted(set(refs)):
            other_repo = "--" in ref  # "org/repo--module.Class": code from another repository
            ctx.report(
                REMOTE_CODE,
                "trust_remote_code=True would import and run "
                + ("code from another repository: " if other_repo else "this repository's code: ")
                + ref.split("--")[-1].rsplit(".", 1)[0]
                + ".py",
                evidence=ref,
                location="auto_map",
                severity=Severity.HIGH if other_repo else None,
            )
