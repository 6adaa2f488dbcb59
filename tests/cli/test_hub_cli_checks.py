"""``modelward hub ...`` checks found by an audit: verify of revoked or unapproved revisions, the
push output, tag checks before hashing and the help texts."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_hub_cli import Cli
from tests.server.conftest import make_model_dir


@pytest.fixture
def cli(
    live_server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(capsys, monkeypatch, live_server.url)


# ------------------------------------------------------------------------------------------ verify
def test_verify_refuses_a_revoked_revision(cli: Cli, live_server: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    commit = cli.json("push", str(folder), "--repo", "acme/gone", "--tag", "v1")["commit"]
    cli.json("approve", "acme/gone", commit, "--reason", "ok")
    code, out, err = cli("verify", str(folder), "--repo", "acme/gone", "--revision", "v1")
    assert code == 0 and out.startswith("OK:"), err
    cli.json("revoke", "acme/gone", commit, "--reason", "CVE-2099-1 in the tokenizer")
    # admin (and reviewers, publishers): the signature comes with the state
    code, out, err = cli("verify", str(folder), "--repo", "acme/gone", "--revision", commit)
    assert code == 1 and not out.startswith("OK"), out
    assert f"acme/gone @ {commit} was revoked on " in err
    assert "by admin (MODELWARD_ADMIN_TOKEN): CVE-2099-1 in the tokenizer" in err
    assert "do not use this copy" in err
    code, out, _ = cli(
        "verify", str(folder), "--repo", "acme/gone", "--revision", "v1", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and "was revoked on" in doc["error"]
    # a reader gets 403 for the revoked revision: the same clear refusal, exit 1 (not 2)
    reader = live_server.token("reader")
    code, _, err = cli(
        "verify", str(folder), "--repo", "acme/gone", "--revision", commit, token=reader
    )
    assert code == 1, err
    assert f"acme/gone @ {commit} was revoked: CVE-2099-1 in the tokenizer" in err
    assert "do not use this copy" in err and "could not be fetched" not in err


def test_verify_refuses_revisions_never_approved(
    cli: Cli, live_server: Any, tmp_path: Path
) -> None:
    folder = make_model_dir(tmp_path)
    commit = cli.json("push", str(folder), "--repo", "acme/wait")["commit"]
    code, _, err = cli("verify", str(folder), "--repo", "acme/wait", "--revision", commit)
    assert code == 1 and f"acme/wait @ {commit} is in review" in err and "do not use" in err
    reader = live_server.token("reader")
    code, _, err = cli(
        "verify", str(folder), "--repo", "acme/wait", "--revision", commit, token=reader
    )
    assert code == 1 and "is not approved" in err and "do not use this copy" in err
    cli.json("reject", "acme/wait", commit, "--reason", "license unknown")
    code, _, err = cli("verify", str(folder), "--repo", "acme/wait", "--revision", commit)
    assert code == 1 and "was rejected on" in err and "license unknown" in err
    # real fetch failures stay exit 2
    code, _, err = cli("verify", str(folder), "--repo", "acme/absent")
    assert code == 2, err
    code, _, err = cli(
        "verify", str(folder), "--repo", "acme/wait", "--server", "http://127.0.0.1:9"
    )
    assert code == 2 and "cannot reach" in err


def test_verify_help_names_its_repo_and_exit_codes(cli: Cli) -> None:
    code, out, _ = cli("verify", "--help")
    assert code == 0
    assert "to create the revision in" not in out
    assert "downloaded from" in out and "revoked" in out and "Exit codes" in out


# -------------------------------------------------------------------------------------------- push
def test_push_refuses_a_link_out_of_the_folder(cli: Cli, live_server: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path, "m1")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"ssh key")
    os.symlink("../outside/secret.txt", folder / "link_out")
    code, out, err = cli("push", str(folder), "--repo", "acme/links")
    assert code == 2 and out == ""
    assert "link_out -> " in err and "secret.txt" in err and "nothing was uploaded" in err
    assert not live_server.hub.blobs.exists(hashlib.sha256(b"ssh key").hexdigest())
    assert cli.json("review") == []


# -------------------------------------------------------------------------------------------- help
def test_approve_and_reject_say_what_revision_may_be(cli: Cli, tmp_path: Path) -> None:
    for command in ("approve", "reject"):
        code, out, _ = cli(command, "--help")
        assert code == 0 and "a tag or main" not in out and "in review" in out, out
        code, _, err = cli(command, "acme/x", "main", "--reason", "ok")
        assert code == 2
        assert err.strip() == (
            "modelward: error: main names the approved revision; give the commit id of the "
            "revision in review: hub review"
        )
    folder = make_model_dir(tmp_path)
    commit = cli.json("push", str(folder), "--repo", "acme/first")["commit"]
    cli.json("approve", "acme/first", commit, "--reason", "ok")  # main exists now: still refused
    code, _, err = cli("approve", "acme/first", "main", "--reason", "ok")
    assert code == 2 and "give the commit id of the revision in review" in err


def test_gc_help_tells_the_grace_hour(cli: Cli) -> None:
    code, out, _ = cli("gc", "--help")
    assert code == 0 and "last hour are kept" in " ".join(out.split())


# ------------------------------------------------------------------------------------ push output
def test_push_says_a_critical_revision_can_only_be_rejected(cli: Cli, tmp_path: Path) -> None:
    from tests.server.test_hub_api import EVIL_PICKLE

    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "evil.pkl").write_bytes(EVIL_PICKLE)
    code, out, err = cli("push", str(evil), "--repo", "acme/evil")
    assert code == 0, err
    assert "  1 file; uploaded 1 " in out
    assert "cannot be approved (critical finding: " in out and " in evil.pkl)" in out, out
    assert "can only reject it: `modelward hub reject acme/evil " in out
    assert "hub approve" not in out
    clean = make_model_dir(tmp_path, "clean")
    code, out, _ = cli("push", str(clean), "--repo", "acme/clean")
    assert code == 0 and "next: a reviewer runs `modelward hub approve acme/clean " in out
    assert " 5 files; " in out


def test_push_json_lists_the_skipped_files(cli: Cli, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    os.symlink(tmp_path, folder / "dirlink")  # a link to a folder: left out, never followed
    os.mkfifo(folder / "pipe")
    doc = cli.json("push", str(folder), "--repo", "acme/skips")
    assert {"path": "pipe", "reason": "not a regular file"} in doc["skipped"]
    assert any(
        s["path"] == "dirlink/" and "link to a folder" in s["reason"] for s in doc["skipped"]
    )


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("main", "--tag: 'main' is moved by approval and cannot be set as a tag"),
        (
            "latest",
            "--tag: 'latest' is moved by approval and cannot be set as a tag (latest means main)",
        ),
        ("bad tag!", "tag 'bad tag!' must be 1-80 letters"),
        ("a" * 40, "(not a 40-hex commit id)"),
    ],
)
def test_push_checks_the_tag_before_reading_the_folder(
    cli: Cli, tmp_path: Path, tag: str, message: str
) -> None:
    # the folder does not exist: the tag is refused first, before anything is hashed
    for args in (
        ("push", str(tmp_path / "absent")),
        ("import", "hf-cache", "org/absent", "--cache-dir", str(tmp_path)),
        ("import", "ollama", "absent:1b", "--models-dir", str(tmp_path)),
    ):
        code, out, err = cli(*args, "--repo", "acme/tags", "--tag", tag)
        assert code == 2 and out == "" and message in err, err
