"""The README is tested against the code: its --help excerpt and its rule table must be current.

Run ``MODELWARD_UPDATE_DOCS=1 pytest tests/test_docs.py`` to rewrite the generated sections.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from modelward.scan import registry
from modelward.scan.rules import catalog

README = Path(__file__).resolve().parent.parent / "README.md"


def command_help(command: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "modelward", command, "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"},
    ).stdout
    return "\n".join(line.rstrip() for line in out.strip().splitlines())


def load_every_rule() -> None:
    """Import every module that declares rules (the catalogue fills on import)."""
    import modelward.inventory.packages
    import modelward.inventory.runtimes  # noqa: F401  (declares the runtime and package rules)
    from modelward.inventory.stores import stores

    registry.load()
    stores()


def rules_table() -> str:
    load_every_rule()
    lines = ["| rule | default severity | what it means |", "| --- | --- | --- |"]
    for rid, r in sorted(catalog().items()):
        lines.append(f"| `{rid}` | {r.severity.label} | {r.title} |")
    return "\n".join(lines)


def policy_rules() -> str:
    """The bundled policy pack's rules with their rationale, from the .rego header comments."""
    from modelward.policy.packdoc import markdown

    return markdown()


def sections() -> dict[str, str]:
    return {
        "rules": rules_table(),
        "help:scan": command_help("scan"),
        "help:inventory": command_help("inventory"),
        "help:server": command_help("server"),
        "help:hub": command_help("hub"),
        "help:fleet": command_help("fleet"),
        "help:agent": command_help("agent"),
        "policy-rules": policy_rules(),
    }


def check_or_update() -> list[str]:
    text = README.read_text(encoding="utf-8")
    stale = []
    for name, body in sections().items():
        pattern = re.compile(
            rf"(<!-- {re.escape(name)}:start -->\n)(.*?)(<!-- {re.escape(name)}:end -->)", re.S
        )
        m = pattern.search(text)
        assert m, f"README lacks the {name} markers"
        if m.group(2) != body + "\n":
            stale.append(name)
            text = text[: m.start(2)] + body + "\n" + text[m.end(2) :]
    if stale and os.environ.get("MODELWARD_UPDATE_DOCS"):
        README.write_text(text, encoding="utf-8")
        return []
    return stale


def test_readme_generated_sections_are_current() -> None:
    stale = check_or_update()
    assert not stale, (
        f"README sections {stale} are out of date: run MODELWARD_UPDATE_DOCS=1 pytest tests/test_docs.py"
    )


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    assert "modelward scan" in blocks[0]
    assert "./scripts/test" in blocks[1]
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    assert "./scripts/test" in ci


def test_every_rule_id_is_family_kebab() -> None:
    load_every_rule()
    families = {"pickle", "gguf", "keras", "onnx", "archive", "safetensors", "format", "tf"}
    families |= {"torchscript", "template", "numpy", "tflite", "coreml", "hdf5", "joblib", "hf"}
    families |= {"ollama", "huggingface", "jan", "llamacpp", "localai", "runtime", "package"}
    for rid in catalog():
        assert rid.split(".")[0] in families, rid
