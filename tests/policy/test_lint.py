"""Static checks rego-cpp does not make (policy/lint.py): unsafe variables, unknown functions and
conflicting rules reported with file and line, and which packages count (Conftest's ``main``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from modelward.errors import PolicyError
from modelward.policy import lint
from modelward.policy.engine import PACK, evaluate, policy_files

HERE = Path(__file__).parent
CORPUS = HERE / "rego" / "valid_corpus.rego"
CORPUS2 = HERE / "rego" / "valid_corpus2.rego"
INV: dict[str, Any] = {
    "schema": "modelward.inventory/v1",
    "host": {},
    "artifacts": [{"path": "/m/a.gguf", "sha256": "a" * 64, "format": "gguf", "findings": []}],
    "runtimes": [],
    "packages": [],
    "errors": [],
}


def write(folder: Path, body: str, name: str = "p.rego", package: str = "modelward.custom") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"package {package}\n\nimport rego.v1\n\n{body}\n")
    return path


def test_the_bundled_pack_and_its_tests_have_no_unsafe_variable() -> None:
    assert lint.unsafe_variables(policy_files(PACK, tests=True)) == []


def test_valid_policies_are_not_refused() -> None:
    """Every way of binding a variable (some, every, :=, =, patterns, indexes, parameters,
    comprehensions, with, imports, rules of the package): none is called unsafe, and rego-cpp
    evaluates the file."""
    assert lint.unsafe_variables([CORPUS, CORPUS2]) == []
    evaluate(INV, policy=CORPUS.parent)


@pytest.mark.parametrize(
    ("body", "name", "line"),
    [
        (
            "deny contains msg if {\n  some a in input.artifacts\n  msg := nosuchvar\n}",
            "nosuchvar",
            7,
        ),
        ("x := y", "y", 5),
        ("allow if {\n  y == 1\n}", "y", 6),
        ("ids := [x | some a in input.artifacts; x := a.pth; x != z]", "z", 5),
        ("f(a) := b", "b", 5),
        ("w if {\n  walk(input, [p, v])\n  q == 1\n}", "q", 7),
        ("w if {\n  x := count([nope])\n  x > 0\n}", "nope", 6),
        (
            'deny contains msg if {\n  some a in input.artifacts\n  msg := concat("", [a.path, sufix])\n}',
            "sufix",
            7,
        ),
    ],
)
def test_an_unsafe_variable_is_an_error_with_file_and_line(
    tmp_path: Path, body: str, name: str, line: int
) -> None:
    path = write(tmp_path, body)
    problems = lint.unsafe_variables([path])
    assert [(p.name, p.line) for p in problems] == [(name, line)]
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    assert f"{path}:{line}: policy error: var {name} is unsafe" in info.value.diagnostics()


def test_the_cli_refuses_an_unsafe_policy_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path / "p", "deny contains msg if {\n  some a in input.artifacts\n  msg := typo\n}"
    )
    inv = tmp_path / "inv.json"
    inv.write_text(__import__("json").dumps(INV))
    with pytest.raises(SystemExit) as exc:
        main(["policy", "check", "--inventory", str(inv), "--policy", str(path.parent)])
    assert exc.value.code == 2
    assert f"{path}:7: policy error: var typo is unsafe" in capsys.readouterr().err


def test_an_unknown_function_is_located(tmp_path: Path) -> None:
    path = write(
        tmp_path, "deny contains m if {\n  some a in input.artifacts\n  m := no_such_fn(a)\n}"
    )
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    assert f"{path}:7: policy error: Function not found: no_such_fn" in info.value.diagnostics()


def test_an_unknown_imported_function_is_located(tmp_path: Path) -> None:
    path = tmp_path / "p.rego"
    path.write_text(
        "package modelward.custom\n\nimport data.modelward.nolib\nimport rego.v1\n\n"
        "deny contains m if {\n  some a in input.artifacts\n  m := nolib.fn(a)\n}\n"
    )
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    assert f"{path}:8: policy error: Function not found: data.modelward.nolib.fn" in (
        info.value.diagnostics()
    )


def test_a_rule_assigned_twice_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, 'foo := 1\n\nfoo := 2\n\ndeny contains "x" if foo == 1')
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    text = info.value.diagnostics()
    assert f"{path}:5: policy error: rule modelward.custom.foo is assigned more than once" in text
    assert f"{path}:7" in text


def test_conftest_package_main_rules_count(tmp_path: Path) -> None:
    write(
        tmp_path,
        'deny contains msg if {\n  some a in input.artifacts\n  msg := concat("", [a.path, " denied"])\n}\n\n'
        'violation contains {"msg": "a violation", "rule": "v1"} if true\n\n'
        'deny_unsigned contains "unsigned" if true\n\n'
        'warn_old contains "old" if true\n\n'
        'helper := "not a decision"',
        package="main",
    )
    got = evaluate(INV, policy=tmp_path)
    assert sorted((d.action, d.message) for d in got) == [
        ("deny", "/m/a.gguf denied"),
        ("deny", "a violation"),
        ("deny", "unsigned"),
        ("warn", "old"),
    ]


def test_a_folder_whose_packages_are_never_read_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, 'deny contains "x" if true', package="acme.rules")
    with pytest.raises(PolicyError, match=r"no package is read \(acme\.rules\).*package main"):
        evaluate(INV, policy=tmp_path)


def test_old_style_conftest_partial_sets_count(tmp_path: Path) -> None:
    """Rego v0 Conftest policies (``deny[msg] { ... }``): rego-cpp hands such a set back as an
    object of ``true`` values; its keys are the messages (objects for ``violation[{...}]``)."""
    (tmp_path / "p.rego").write_text(
        "package main\n\n"
        'deny[msg] {\n  a := input.artifacts[_]\n  msg := sprintf("bad %v", [a.path])\n}\n\n'
        'warn[msg] { msg := "w" }\n\n'
        'violation[{"msg": m, "rule": "v0"}] { m := "a violation" }\n'
    )
    got = evaluate(INV, policy=tmp_path)
    assert sorted((d.action, d.rule, d.message) for d in got) == [
        ("deny", "main", "bad /m/a.gguf"),
        ("deny", "v0", "a violation"),
        ("warn", "main", "w"),
    ]


@pytest.mark.parametrize("value", ["true", '"a string"', "7", '{"k": 1}'])
def test_a_deny_that_is_not_a_set_is_an_error(tmp_path: Path, value: str) -> None:
    write(tmp_path, f"deny := {value}")
    with pytest.raises(PolicyError, match=r"data\.modelward\.custom\.deny is .*, not a set"):
        evaluate(INV, policy=tmp_path)


def test_deeply_nested_brackets_are_refused_before_rego_cpp_parses_them(tmp_path: Path) -> None:
    path = write(tmp_path, "x := " + "[" * 100_000 + "]" * 100_000)
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    assert f"{path}:5: policy error: brackets nested 100000 deep" in info.value.diagnostics()


def test_a_recursive_rule_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, 'a if b\n\nb if a\n\ndeny contains "x" if a')
    with pytest.raises(PolicyError) as info:
        evaluate(INV, policy=tmp_path)
    assert f"{path}:" in info.value.diagnostics() and "ecursion" in info.value.diagnostics()


def test_policy_test_refuses_an_unsafe_variable_in_a_test(tmp_path: Path) -> None:
    write(tmp_path, 'deny contains "x" if input.bad')
    test = write(
        tmp_path,
        "test_typo if {\n  nosuch == 1\n}",
        name="p_test.rego",
        package="modelward.custom_test",
    )
    from modelward.policy.engine import run_tests

    with pytest.raises(PolicyError, match=f"{test}:6: policy error: var nosuch is unsafe"):
        run_tests(tmp_path)
