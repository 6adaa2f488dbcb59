"""A waiver's reason and approver are text a person wrote, and its expiry a date: a null, empty or
non-text value is refused with the file and line (it used to become the string "null" or "~")."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from modelward.policy.waivers import WaiverError, load_waivers

SHA = "aa" * 32


def _load(tmp_path: Path, reason: str, approved_by: str, expires: str) -> Path:
    p = tmp_path / "waivers.yaml"
    p.write_text(
        f"waivers:\n  - sha256: {SHA}\n    reason: {reason}\n    approved_by: {approved_by}\n"
        f"    expires: {expires}\n"
    )
    return p


@pytest.mark.parametrize(
    ("reason", "approved_by", "expires", "needle"),
    [
        ("~", "sec@example.com", "2099-01-01", ":3: 'reason' must not be empty (it is null)"),
        ("null", "sec@example.com", "2099-01-01", ":3: 'reason' must not be empty (it is null)"),
        ("", "sec@example.com", "2099-01-01", ":3: 'reason' must not be empty (it is null)"),
        ("''", "sec@example.com", "2099-01-01", ":3: 'reason' must not be empty"),
        ("'  '", "sec@example.com", "2099-01-01", ":3: 'reason' must not be empty"),
        ("r", "null", "2099-01-01", ":4: 'approved_by' must not be empty (it is null)"),
        ("r", "~", "2099-01-01", ":4: 'approved_by' must not be empty (it is null)"),
        ("r", "yes", "2099-01-01", ":4: 'approved_by' must be text, not 'yes' (put it in quotes)"),
        ("r", "12345", "2099-01-01", ":4: 'approved_by' must be text, not '12345'"),
        ("3.5", "a", "2099-01-01", ":3: 'reason' must be text, not '3.5'"),
        ("r", "a", "~", ":5: 'expires' must not be empty (it is null)"),
        ("r", "a", "20990101", ":5: 'expires' must be a date like 2027-03-31"),
        ("r", "a", "'20990101'", ":5: 'expires' must be a date like 2027-03-31"),
        ("r", "a", "true", ":5: 'expires' must be a date like 2027-03-31"),
        ("r", "a", "2099-1-1", ":5: 'expires' must be a date like 2027-03-31"),
        ("r", "a", "2099-01-01 10:00:00", ":5: 'expires' must be a date like 2027-03-31"),
    ],
)
def test_null_empty_or_non_text_values_are_refused(
    tmp_path: Path, reason: str, approved_by: str, expires: str, needle: str
) -> None:
    p = _load(tmp_path, reason, approved_by, expires)
    with pytest.raises(WaiverError) as exc:
        load_waivers(p)
    assert exc.value.diagnostics().startswith(f"{p}{needle}")


@pytest.mark.parametrize(
    ("entry", "needle"),
    [
        ("rule: ~", ":3: 'rule' must not be empty (it is null)"),
        ("rule:", ":3: 'rule' must not be empty (it is null)"),
    ],
)
def test_a_null_rule_is_refused_not_read_as_the_rule_named_null(
    tmp_path: Path, entry: str, needle: str
) -> None:
    p = tmp_path / "waivers.yaml"
    p.write_text(
        f"waivers:\n  - sha256: {SHA}\n    {entry}\n    reason: r\n    approved_by: a\n"
        "    expires: 2099-01-01\n"
    )
    with pytest.raises(WaiverError) as exc:
        load_waivers(p)
    assert exc.value.diagnostics().startswith(f"{p}{needle}")


def test_quoted_text_and_quoted_dates_are_accepted(tmp_path: Path) -> None:
    p = _load(tmp_path, "'yes, approved'", "'12345'", "'2099-01-01'")
    (w,) = load_waivers(p)
    assert (w.reason, w.approved_by, w.expires) == ("yes, approved", "12345", dt.date(2099, 1, 1))
