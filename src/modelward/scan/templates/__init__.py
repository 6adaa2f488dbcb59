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

Layout: ``issues`` (rules, Issue), ``parse`` (the parse-only environment, tree helpers), ``walk``
(the traversal), ``ssti`` (sandbox escapes), ``fold`` (constant folding), ``backdoor``
(prompt-injection text), ``text`` (raw-text fallback).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from modelward.scan.rules import SCAN_LIMIT
from modelward.scan.templates.issues import (
    HIDDEN,
    MALFORMED,
    OBFUSCATED,
    SSTI,
    SUSPICIOUS,
    Issue,
)
from modelward.scan.templates.parse import environment
from modelward.scan.templates.text import raw_issues
from modelward.scan.templates.walk import Walker

if TYPE_CHECKING:
    from modelward.scan.context import ScanContext

__all__ = [
    "HIDDEN",
    "MALFORMED",
    "OBFUSCATED",
    "SSTI",
    "SUSPICIOUS",
    "Issue",
    "analyze",
    "check_template",
    "raw_issues",
]


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
        tree = environment().parse(text)
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
    Walker(issues).run(tree)
    return issues


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
