"""Every rule of the bundled pack is documented (for the README) in its .rego header comment."""

from __future__ import annotations

import json
from pathlib import Path

from modelward.policy.engine import PACK, policy_files
from modelward.policy.packdoc import markdown, rule_docs

GOLDEN = Path(__file__).with_name("pack_decisions.golden.json")


def test_every_rule_the_pack_decides_is_documented_once() -> None:
    decided = {d["rule"] for ds in json.loads(GOLDEN.read_text("utf-8")).values() for d in ds}
    documented = [d.rule for d in rule_docs()]
    assert len(documented) == len(set(documented))
    assert decided == set(documented)
    assert all(len(d.text) > 40 for d in rule_docs())


def test_every_family_file_documents_a_rule() -> None:
    files = {d.file for d in rule_docs()}
    for path in policy_files(PACK):
        if path.name != "lib.rego":
            assert path.name in files


def test_the_table_has_a_row_per_rule_and_escapes_cells(tmp_path: Path) -> None:
    (tmp_path / "x.rego").write_text(
        "# Family note.\n#\n# odd-rule: a | b and *c*\n#   continued.\npackage x\n"
    )
    text = markdown(tmp_path)
    assert "| `odd-rule` | `x.rego` | a \\| b and \\*c\\* continued. |" in text
    assert text.endswith("`x.rego`: Family note.")
    assert markdown().count("\n| `") == len(rule_docs())
