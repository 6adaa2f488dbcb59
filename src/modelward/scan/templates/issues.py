"""The chat-template rules, the Issue value and the collector that records each issue once."""

from __future__ import annotations

from dataclasses import dataclass

from modelward.models import Severity
from modelward.scan.rules import Rule, rule

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


class Reporter:
    """Collects issues, once per (rule, evidence) pair."""

    issues: list[Issue]
    _seen: set[tuple[str, str]]

    def add(
        self, rule_: Rule, message: str, evidence: str, severity: Severity | None = None
    ) -> None:
        key = (rule_.id, evidence)
        if key in self._seen:
            return
        self._seen.add(key)
        self.issues.append(Issue(rule_, message, evidence[:300], severity))
