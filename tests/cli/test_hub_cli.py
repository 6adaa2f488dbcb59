"""``modelward hub ...`` against a live server: push, imports, review decisions, verify, admin."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.cli import main
from tests.inventory.homes import (
    COMMIT_A,
    layer,
    make_hf_cache,
    tiny_gguf,
    write_blob,
    write_manifest,
)
from tests.server.conftest import ADMIN_TOKEN, make_model_dir, publish, start_live
from tests.server.test_hub_api import EVIL_PICKLE


class Cli:
    """Runs ``modelward`` in-process against one server; returns (exit code, stdout, stderr)."""

    def __init__(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, url: str
    ):
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        monkeypatch.setenv("MODELWARD_SERVER", url)
        monkeypatch.delenv("MODELWARD_TOKEN", raising=False)

    def __call__(
        self, *args: str, token: str | None = ADMIN_TOKEN, stdin: str | None = None
    ) -> tuple[int, str, str]:
        self.capsys.readouterr()
        if token is None:
            self.monkeypatch.delenv("MODELWARD_TOKEN", raising=False)
        else:
            self.monkeypatch.setenv("MODELWARD_TOKEN", token)
        if stdin is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        try:
            main(["hub", *args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, token: str | None = ADMIN_TOKEN) -> Any:
        code, out, err = self(*args, "--format", "json", token=token)
        assert code == 0, err
        return json.loads(out)


@pytest.fixture
def cli(
    live_server: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    return Cli(capsys, monkeypatch, live_server.url)


def test_push_review_approve_verify(cli: Cli, live_server: Any, tmp_path: Path) -> None:
    folder = make_model_dir(tmp_path)
    publisher = live_server.token("publisher")
    reviewer = live_server.token("reviewer")
    pushed = cli.json("push", str(folder), "--repo", "acme/tiny", "--tag", "v1", token=publisher)
    assert pushed["repo"] == "acme/tiny" and pushed["state"] == "in_review"
    commit = pushed["commit"]
    assert len(commit) == 40 and pushed["uploaded"] == pushed["files"] == 5
    again = cli.json("push", str(folder), "--repo", "acme/tiny", token=publisher)
    assert again["commit"] == commit and again["uploaded"] == 0 and again["already_present"] == 5
    code, out, _ = cli("review", token=reviewer)
    assert code == 0 and commit in out and "acme/tiny" in out
    assert [r["commit"] for r in cli.json("review", token=reviewer)] == [commit]
    code, _, err = cli("approve", "acme/tiny", commit, "--reason", "ok", token=publisher)
    assert code == 2 and "publisher role may not review" in err
    code, out, _ = cli("approve", "acme/tiny", commit, "--reason", "scan clean", token=reviewer)
    assert code == 0 and f"approved acme/tiny @ {commit} (now main)" in out
    code, out, err = cli(
        "verify", str(folder), "--repo", "acme/tiny", token=live_server.token("reader")
    )
    assert code == 0 and out.startswith("OK:"), err
    doc = cli.json("verify", str(folder), "--repo", "acme/tiny", "--revision", "v1")
    assert doc["ok"] and doc["commit"] == commit and doc["problems"] == []
    data = bytearray((folder / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (folder / "model.safetensors").write_bytes(bytes(data))
    code, _, err = cli("verify", str(folder), "--repo", "acme/tiny")
    assert code == 1 and "model.safetensors" in err
    shown = cli.json("show", "acme/tiny", "v1")
    assert shown["state"] == "approved" and shown["provenance"]["kind"] == "upload"
    code, out, _ = cli("revoke", "acme/tiny", commit, "--reason", "bad")
    assert code == 0 and out.startswith("revoked")
    events = cli.json("audit", "--repo", "acme/tiny")
    assert {"approve", "revoke"} <= {e["action"] for e in events}


def test_critical_and_high_findings(cli: Cli, tmp_path: Path) -> None:
    evil = make_model_dir(tmp_path, "evil")
    (evil / "evil.pkl").write_bytes(EVIL_PICKLE)
    rev = cli.json("push", str(evil), "--repo", "acme/evil")
    assert rev["max_severity"] == "critical"
    code, _, err = cli("approve", "acme/evil", rev["commit"], "--reason", "x", "--override")
    assert code == 2 and "critical" in err
    code, out, _ = cli("reject", "acme/evil", rev["commit"], "--reason", "pickle runs os.system")
    assert code == 0 and out.startswith("rejected")
    masq = make_model_dir(tmp_path, "masq")
    with zipfile.ZipFile(masq / "extra.safetensors", "w") as z:
        z.writestr("a.txt", "x")
    rev = cli.json("push", str(masq), "--repo", "acme/masq")
    assert rev["max_severity"] == "high"
    code, _, err = cli("approve", "acme/masq", rev["commit"], "--reason", "x")
    assert code == 2 and "override" in err
    code, _, err = cli("approve", "acme/masq", rev["commit"], "--reason", "known", "--override")
    assert code == 0, err


def test_import_hf_cache_and_ollama(cli: Cli, tmp_path: Path) -> None:
    make_hf_cache(tmp_path / "hub", hostile=False)
    rev = cli.json(
        "import",
        "hf-cache",
        "org/tiny",
        "--cache-dir",
        str(tmp_path / "hub"),
        "--repo",
        "acme/tiny",
    )
    shown = cli.json("show", "acme/tiny", rev["commit"])
    assert shown["provenance"]["kind"] == "hf-cache"
    assert shown["provenance"]["revision"] == COMMIT_A
    assert {f["path"] for f in shown["files"]} == {
        "README.md",
        "config.json",
        "model.safetensors",
        "onnx/model.onnx",
    }
    models = tmp_path / "ollama"
    gguf = tiny_gguf(tmp_path / "t.gguf")
    model_hex = write_blob(models, gguf)
    tmpl = write_blob(models, b"{{ .Prompt }}")
    write_manifest(
        models,
        ("registry.ollama.ai", "library", "tiny", "1b"),
        {"model_format": "gguf"},
        [layer("model", model_hex, len(gguf)), layer("template", tmpl, 13)],
    )
    code, out, err = cli(
        "import", "ollama", "tiny:1b", "--models-dir", str(models), "--repo", "acme/tiny-gguf"
    )
    assert code == 0, err
    assert "acme/tiny-gguf @ " in out and "in_review" in out
    commit = out.split(" @ ")[1].split()[0]
    shown = cli.json("show", "acme/tiny-gguf", commit)
    assert {f["path"]: f["sha256"] for f in shown["files"]} == {
        "model.gguf": model_hex,
        "ollama/template": tmpl,
    }
    assert shown["provenance"]["name"] == "tiny:1b"
    code, _, err = cli(
        "import", "ollama", "absent:1b", "--models-dir", str(models), "--repo", "a/b"
    )
    assert code == 2 and "not found" in err


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Any]:
    from modelward.server.app import create_app
    from modelward.server.settings import ServerSettings

    settings = ServerSettings(
        data_dir=tmp_path / "upstream",
        database_url=f"sqlite:///{tmp_path / 'upstream.db'}",
        admin_token=ADMIN_TOKEN,
    )
    application = create_app(settings)
    live, server, thread = start_live(application)
    try:
        yield live
    finally:
        server.should_exit = True
        thread.join(10)
        application.state.db.dispose()


def test_import_upstream_on_server_and_here(cli: Cli, upstream: Any, tmp_path: Path) -> None:
    published = publish(upstream.hub, "team/tiny", make_model_dir(tmp_path, "up"))
    token = upstream.token("reader")
    args = ("--endpoint", upstream.url, "team/tiny", "--upstream-token", token)
    on_server = cli.json("import", "upstream", *args, "--repo", "acme/a")
    here = cli.json("import", "upstream", *args, "--fetch-here", "--repo", "acme/b")
    assert on_server["commit"] == here["commit"] == published.commit
    assert on_server["provenance"]["revision"] == published.commit
    shown = cli.json("show", "acme/b", here["commit"])
    assert (
        shown["provenance"]["kind"] == "huggingface" and shown["provenance"]["repo"] == "team/tiny"
    )


def test_admin_commands_and_errors(cli: Cli, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from modelward.hub.ollama_auth import public_key_line

    doc = cli.json("token", "create", "--role", "reader", "--name", "ci")
    assert doc["token"].startswith("mw_") and doc["role"] == "reader"
    code, out, _ = cli("token", "create", "--role", "publisher")
    assert code == 0 and "shown once" in out
    code, _, err = cli("token", "create", "--role", "root")
    assert code == 2 and "--role" in err
    line = public_key_line(Ed25519PrivateKey.generate(), "alice@laptop")
    code, out, err = cli("ollama-key", "add", "-", stdin=line + "\n")
    assert code == 0 and "alice@laptop" in out, err
    (tmp_path / "k.pub").write_text(line)
    code, _, err = cli("ollama-key", "add", str(tmp_path / "k.pub"), "--name", "again")
    assert code == 2 and "already registered" in err
    assert cli.json("gc") == {"dry_run": True, "blobs": []}
    code, _, err = cli("review", token=None)
    assert code == 2 and "no token given" in err
    code, _, err = cli("review", token="mw_" + "x" * 43)
    assert code == 2 and "invalid or revoked token" in err
    code, _, err = cli("review", "--server", "http://127.0.0.1:9")
    assert code == 2 and "cannot reach the hub at http://127.0.0.1:9" in err
    code, _, err = cli("push", str(tmp_path), "--repo", "Bad/Name")
    assert code == 2 and "lowercase" in err


def test_a_reviewer_tags_an_approved_revision(cli: Cli, live_server: Any, tmp_path: Path) -> None:
    publisher = live_server.token("publisher")
    reviewer = live_server.token("reviewer")
    commit = cli.json(
        "push", str(make_model_dir(tmp_path)), "--repo", "acme/tagged", token=publisher
    )["commit"]
    code, _, err = cli("tag", "acme/tagged", commit, "v1.2", "--reason", "x", token=reviewer)
    assert code == 2 and "approved" in err  # only an approved revision can be named
    cli.json("approve", "acme/tagged", commit, "--reason", "ok", token=reviewer)
    code, _, err = cli("tag", "acme/tagged", commit, "v1.2", "--reason", "x", token=publisher)
    assert code == 2 and "may not" in err
    code, _, err = cli("tag", "acme/tagged", commit, "t" * 81, "--reason", "x", token=reviewer)
    assert code == 2 and "80" in err
    code, out, _ = cli("tag", "acme/tagged", commit, "v1.2", "--reason", "evals ok", token=reviewer)
    assert code == 0 and out.strip() == f"tagged acme/tagged @ {commit} as v1.2: evals ok"
    assert cli.json("show", "acme/tagged", "v1.2")["commit"] == commit
    code, out, _ = cli("audit", "--repo", "acme/tagged", token=reviewer)
    assert code == 0 and "evals ok  [tag=v1.2]" in out  # the table says what the detail holds
    events = cli.json("audit", "--repo", "acme/tagged")
    assert any(e["action"] == "tag" and "evals ok" in str(e) for e in events), events


def test_show_of_a_repo_without_an_approved_revision_points_at_the_queue(
    cli: Cli, tmp_path: Path
) -> None:
    rev = cli.json("push", str(make_model_dir(tmp_path)), "--repo", "acme/fresh")
    code, _, err = cli("show", "acme/fresh")
    assert code == 2 and "has no approved revision (latest is in_review)" in err, err
    assert "`modelward hub review` lists the revisions in review" in err
    assert cli.json("show", "acme/fresh", rev["commit"])["state"] == "in_review"
