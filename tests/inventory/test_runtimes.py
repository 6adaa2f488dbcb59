"""Runtimes: real listening sockets from processes that look like runtimes, fake installs whose
versions are read without running them, exposure settings, tunnels, advisories, hostile input."""

from __future__ import annotations

import json
import os
import plistlib
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelward.inventory import advisories, exposure, probes, processes, runtimes, versions
from modelward.models import CollectError, Runtime, Severity

BACKENDS = ["proc", "psutil"] if sys.platform.startswith("linux") else ["psutil"]

FAKE_OLLAMA = textwrap.dedent(
    """
    import http.server, json, socket, sys, threading, time
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = {"/api/version": {"version": "0.1.30"},
                    "/api/ps": {"models": [{"name": "llama3:8b", "size_vram": 1}]}}.get(self.path)
            data = json.dumps(body).encode()
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        def log_message(self, *a):
            pass
    srv = http.server.HTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    wide = socket.socket()
    wide.bind(("0.0.0.0", 0))
    wide.listen()
    print(srv.server_address[1], wide.getsockname()[1], flush=True)
    time.sleep(60)
    """
)
LISTENER = textwrap.dedent(
    """
    import socket, sys, time
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    print(s.getsockname()[1], flush=True)
    time.sleep(60)
    """
)
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


@pytest.fixture()
def children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


def start(
    procs: list[subprocess.Popen[str]], argv: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    p = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, **(env or {})},
    )
    procs.append(p)
    assert p.stdout is not None
    return p, p.stdout.readline().strip()


def run(tmp_path: Path, **kw: object) -> tuple[list[Runtime], list[CollectError]]:
    errors: list[CollectError] = []
    env = kw.pop("env", None) or {"PATH": str(tmp_path / "nothing")}
    homes = kw.pop("homes", None) or [tmp_path / "home"]
    found = runtimes.collect_runtimes(
        env,  # type: ignore[arg-type]
        errors=errors,
        homes=homes,  # type: ignore[arg-type]
        etc=tmp_path / "etc",
        **kw,  # type: ignore[arg-type]
    )
    return found, errors


def by_pid(found: list[Runtime], pid: int) -> Runtime:
    hits = [r for r in found if pid in r.pids]
    assert len(hits) == 1, found
    return hits[0]


def rules(r: Runtime) -> dict[str, list[tuple[Severity, str]]]:
    out: dict[str, list[tuple[Severity, str]]] = {}
    for f in r.findings:
        out.setdefault(f.rule, []).append((f.severity, f.evidence))
    return out


# ---------------------------------------------------------------------------- real sockets
@pytest.mark.parametrize("backend", BACKENDS)
def test_fake_ollama_sockets_probe_and_findings(
    tmp_path: Path, children: list[subprocess.Popen[str]], backend: str
) -> None:
    env = {"OLLAMA_ORIGINS": "*", "OLLAMA_HOST": "0.0.0.0", "HF_TOKEN": "hf_secret"}
    cmd = f"exec -a ollama {sys.executable} -c '{FAKE_OLLAMA}' serve"
    p, line = start(children, ["bash", "-c", cmd], env)
    loop_port, wide_port = map(int, line.split())
    found, errors = run(tmp_path, backend=backend)
    r = by_pid(found, p.pid)
    assert r.name == "ollama" and r.running
    assert r.version == "0.1.30"  # from the loopback probe of /api/version
    listen = {(x.address, x.port): x.exposed for x in r.listen}
    assert listen[("127.0.0.1", loop_port)] is False
    assert listen[("0.0.0.0", wide_port)] is True
    got = rules(r)
    [(sev, evidence)] = got["runtime.exposed"]
    assert sev is Severity.CRITICAL  # exposed and known-vulnerable
    assert f"0.0.0.0:{wide_port}" in evidence and "llama3:8b" in evidence  # /api/ps
    assert f"127.0.0.1:{loop_port}" not in evidence
    cves = {e.split(":")[0] for _s, e in got["runtime.vulnerable-version"]}
    assert {"CVE-2024-37032", "CVE-2024-45436"} <= cves and "CVE-2024-28224" not in cves
    assert "CVE-2026-7482" in cves
    settings_ = [e for _s, e in got["runtime.exposure-setting"]]
    assert any("OLLAMA_ORIGINS=*" in e and f"pid {p.pid}" in e for e in settings_)
    assert any("OLLAMA_HOST=0.0.0.0" in e for e in settings_)
    assert all(s is Severity.MEDIUM for s, _e in got["runtime.exposure-setting"])
    assert "hf_secret" not in json.dumps([x.to_dict() for x in found])  # environment never kept
    assert not errors


@pytest.mark.parametrize("backend", BACKENDS)
def test_llama_server_script_on_path_with_tunnel(
    tmp_path: Path, children: list[subprocess.Popen[str]], backend: str
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    script = bindir / "llama-server"
    script.write_text(f"#!{sys.executable}\n{LISTENER}")
    script.chmod(0o755)
    p, line = start(children, [str(script), "--host", "0.0.0.0", "-m", "x.gguf"])
    port = int(line)
    tunnel = f'exec -a ngrok {sys.executable} -c "{SLEEPER}" http localhost:{port}'
    t, _ = start(children, ["bash", "-c", tunnel])
    found, _errors = run(tmp_path, backend=backend, env={"PATH": str(bindir)})
    r = by_pid(found, p.pid)
    assert r.name == "llama.cpp"
    assert r.executable == str(script)  # the installed entry found on PATH, joined to its process
    assert [x for x in found if x.executable == str(script)] == [r]
    assert r.version is None and r.running
    assert [(x.address, x.port, x.exposed) for x in r.listen] == [("0.0.0.0", port, True)]
    got = rules(r)
    assert got["runtime.exposed"][0][0] is Severity.HIGH  # no known version: high, not critical
    assert any("--host 0.0.0.0" in e for _s, e in got["runtime.exposure-setting"])
    [(sev, evidence)] = got["runtime.tunnel"]
    assert sev is Severity.HIGH and f"pid {t.pid}" in evidence and str(port) in evidence
    assert "runtime.vulnerable-version" not in got
    assert all(t.pid not in x.pids for x in found)  # the tunnel is not a runtime


def test_loopback_only_listener_is_not_exposed(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    code = LISTENER.replace('"0.0.0.0"', '"127.0.0.1"')
    p, line = start(children, ["bash", "-c", f"exec -a koboldcpp {sys.executable} -c '{code}'"])
    found, _ = run(tmp_path, probes=False)
    r = by_pid(found, p.pid)
    assert r.name == "koboldcpp"
    assert [(x.address, x.port, x.exposed) for x in r.listen] == [("127.0.0.1", int(line), False)]
    assert r.findings == ()


def test_no_processes_option(tmp_path: Path, children: list[subprocess.Popen[str]]) -> None:
    start(children, ["bash", "-c", f'exec -a ollama {sys.executable} -c "{SLEEPER}"'])
    found, _ = run(tmp_path, processes=False)
    assert all(not r.running for r in found)


def test_python_runtimes_by_module_and_script(
    tmp_path: Path, children: list[subprocess.Popen[str]]
) -> None:
    venv = tmp_path / "venv"
    site = venv / "lib" / "python3.11" / "site-packages"
    dist = site / "vllm-0.6.3.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm\nVersion: 0.6.3\n\nbody\n")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "bin").mkdir()
    python = venv / "bin" / "python"
    python.symlink_to(sys.executable)
    pkg = tmp_path / "fake" / "vllm" / "entrypoints" / "openai"  # a harmless stand-in module
    pkg.mkdir(parents=True)
    for d in (pkg.parent.parent, pkg.parent, pkg):
        (d / "__init__.py").write_text("")
    (pkg / "api_server.py").write_text(SLEEPER)
    module = "vllm.entrypoints.openai.api_server"
    cmd = f"exec -a {python} {sys.executable} -m {module} --port 8000"  # argv[0]: the venv's
    p1, _ = start(children, ["bash", "-c", cmd], {"PYTHONPATH": str(tmp_path / "fake")})
    found, _errors = run(tmp_path, probes=False)
    r = by_pid(found, p1.pid)
    assert r.name == "vllm" and r.version == "0.6.3"  # from the venv argv[0] names
    assert r.executable == str(python) and r.findings == ()
    webui = processes.Proc(
        1,
        "python",
        "/usr/bin/python3",
        ("python", "server.py", "--listen"),
        "/home/a/text-generation-webui",
    )
    hit = runtimes.match_process(webui)
    assert hit is not None and hit[0].name == "text-generation-webui"
    other = processes.Proc(1, "python", "/usr/bin/python3", ("python", "server.py"), "/srv/app")
    assert runtimes.match_process(other) is None
    comfy = processes.Proc(1, "python", "/usr/bin/python3", ("python", "/opt/ComfyUI/main.py"))
    hit = runtimes.match_process(comfy)
    assert hit is not None and hit[0].name == "comfyui"
    mlx = processes.Proc(1, "python3", None, ("python3", "-m", "mlx_lm.server", "--port", "8080"))
    hit = runtimes.match_process(mlx)
    assert hit is not None and hit[0].name == "mlx-lm"
    uv = processes.Proc(
        1, "uvicorn", None, ("/x/bin/python", "/x/bin/uvicorn", "open_webui.main:app")
    )
    hit = runtimes.match_process(uv)
    assert hit is not None and hit[0].name == "open-webui"
    assert (
        runtimes.match_process(processes.Proc(1, "vim", "/usr/bin/vim", ("vim", "ollama"))) is None
    )
    lf = processes.Proc(1, "mistral.llamaf", None, ("./mistral-7b.llamafile", "--server"))
    hit = runtimes.match_process(lf)
    assert hit is not None and hit[0].name == "llamafile"


# ---------------------------------------------------------------------------- installs
GO_INFO = (
    b"\x7fELF junk" + b"\0" * 5000 + versions.GO_BUILDINFO + b"\x08\x02" + b"\0" * 16
    + b"go1.22.5\nbuild\t-ldflags=\"-w -s \\\"-X=github.com/ollama/ollama/version.Version=0.1.30\\\"\"\n"
)  # fmt: skip


def fake_home(tmp_path: Path) -> tuple[Path, Path]:
    home = tmp_path / "home"
    bindir = tmp_path / "bin"
    bindir.mkdir(parents=True)
    marker = tmp_path / "was-run"
    ollama = bindir / "ollama"  # would leave a marker if it were ever executed
    ollama.write_bytes(b"#!/bin/sh\ntouch " + str(marker).encode() + b"\n" + GO_INFO)
    ollama.chmod(0o755)
    app = home / "Applications" / "LM Studio.app" / "Contents"
    app.mkdir(parents=True)
    (app / "Info.plist").write_bytes(plistlib.dumps({"CFBundleShortVersionString": "0.3.9"}))
    internal = home / ".lmstudio" / ".internal"
    internal.mkdir(parents=True)
    (internal / "http-server-config.json").write_text(
        json.dumps({"port": 1234, "networkInterface": "0.0.0.0", "cors": False})
    )
    lms = home / ".lmstudio" / "bin" / "lms"
    lms.parent.mkdir(parents=True)
    lms.write_bytes(b"\x7fELF")
    comfy = home / "ComfyUI"
    comfy.mkdir()
    (comfy / "main.py").write_text("print('hi')\n")
    (comfy / "comfyui_version.py").write_text('__version__ = "0.3.27"\n')
    cellar = tmp_path / "opt" / "homebrew" / "Cellar" / "llama.cpp" / "5600" / "bin"
    cellar.mkdir(parents=True)
    (cellar / "llama-server").write_bytes(b"\x7fELF")
    (cellar / "llama-server").chmod(0o755)
    (bindir / "llama-server").symlink_to(cellar / "llama-server")
    win = tmp_path / "appdata" / "Programs" / "LM Studio"
    (win / "resources" / "app").mkdir(parents=True)
    (win / "LM Studio.exe").write_bytes(b"MZ")
    (win / "resources" / "app" / "package.json").write_text(
        '{"name": "lm-studio", "version": "0.3.4"}'
    )
    dropins = tmp_path / "etc" / "systemd" / "system" / "ollama.service.d"
    dropins.mkdir(parents=True)
    (dropins / "override.conf").write_text(
        '[Service]\nEnvironment="OLLAMA_HOST=0.0.0.0:11434" "OLLAMA_KEEP_ALIVE=5m"\n'
    )
    return home, bindir


def test_installed_runtimes_and_versions(tmp_path: Path) -> None:
    home, bindir = fake_home(tmp_path)
    env = {"PATH": str(bindir), "LOCALAPPDATA": str(tmp_path / "appdata"), "OLLAMA_ORIGINS": "*"}
    found, errors = run(tmp_path, env=env, homes=[home], processes=False)
    assert not errors
    got = {(r.name, r.executable): r for r in found}
    ollama = got["ollama", str(bindir / "ollama")]
    assert ollama.version == "0.1.30" and not ollama.running and ollama.listen == ()
    assert not (tmp_path / "was-run").exists()  # read, never executed
    o = rules(ollama)
    assert "runtime.exposed" not in o
    assert {e.split(":")[0] for _s, e in o["runtime.vulnerable-version"]} >= {"CVE-2024-37032"}
    assert max(s for s, _e in o["runtime.vulnerable-version"]) is Severity.CRITICAL
    where = [e for _s, e in o["runtime.exposure-setting"]]
    assert any("OLLAMA_HOST=0.0.0.0:11434" in e and "override.conf" in e for e in where)
    assert any("OLLAMA_ORIGINS=*" in e and "current environment" in e for e in where)
    app = home / "Applications" / "LM Studio.app"
    assert got["lmstudio", str(app)].version == "0.3.9"
    lms = got["lmstudio", str(home / ".lmstudio" / "bin" / "lms")]
    assert any("networkInterface=0.0.0.0" in e for _s, e in rules(lms)["runtime.exposure-setting"])
    win = tmp_path / "appdata" / "Programs" / "LM Studio"
    assert got["lmstudio", str(win / "LM Studio.exe")].version == "0.3.4"
    assert got["comfyui", str(home / "ComfyUI" / "main.py")].version == "0.3.27"
    llama = got["llama.cpp", str(bindir / "llama-server")]
    assert llama.version == "5600"  # Homebrew Cellar path
    assert {e.split(":")[0] for _s, e in rules(llama)["runtime.vulnerable-version"]} == {
        "CVE-2026-27940"
    }


def test_go_version_bounded_and_hostile(tmp_path: Path) -> None:
    f = tmp_path / "bin"
    f.write_bytes(b"\0" * (3 << 20) + GO_INFO)  # past the first read chunk
    assert versions.go_version(str(f)) == "0.1.30"
    assert versions.go_version(str(f), limit=1 << 20) is None  # the bound is honoured
    cut = tmp_path / "cut"
    cut.write_bytes(b"x" * ((1 << 20) - 5) + versions.GO_BUILDINFO)  # marker across chunks
    assert versions.go_version(str(cut)) is None
    split = tmp_path / "split"
    split.write_bytes(b"x" * ((1 << 20) - 5) + GO_INFO[5005:])
    assert versions.go_version(str(split)) == "0.1.30"
    assert versions.go_version(str(tmp_path / "missing")) is None
    assert versions.go_version(str(tmp_path)) is None  # a folder


def test_hostile_version_files(tmp_path: Path) -> None:
    (tmp_path / "Info.plist").write_bytes(b"<plist><dict><key>x</dict>")
    assert versions.plist_version(tmp_path / "Info.plist") is None
    (tmp_path / "Info.plist").write_bytes(plistlib.dumps(["not", "a", "dict"]))
    assert versions.plist_version(tmp_path / "Info.plist") is None
    (tmp_path / "package.json").write_text("[" * 100000)
    assert versions.package_json_version(tmp_path / "package.json") is None
    (tmp_path / "package.json").write_text('{"version": 3}')
    assert versions.package_json_version(tmp_path / "package.json") is None
    assert (
        versions.path_version("/usr/local/Cellar/ollama/0.5.7_1/bin/ollama", ["ollama"]) == "0.5.7"
    )
    nix = "/nix/store/" + "a" * 32 + "-ollama-0.3.12/bin/ollama"
    assert versions.path_version(nix, ["ollama"]) == "0.3.12"
    assert versions.path_version("/usr/bin/ollama", ["ollama"]) is None


# ---------------------------------------------------------------------------- pure parts
@pytest.mark.parametrize(
    ("address", "exposed"),
    [
        ("127.0.0.1", False), ("127.1.2.3", False), ("::1", False), ("::ffff:127.0.0.1", False),
        ("localhost", False), ("0.0.0.0", True), ("::", True), ("192.168.1.20", True),
        ("10.0.0.5", True), ("fe80::1%eth0", True), ("::ffff:10.0.0.1", True), ("", True),
    ],
)  # fmt: skip
def test_is_exposed(address: str, exposed: bool) -> None:
    assert exposure.is_exposed(address) is exposed


def test_settings_parsers() -> None:
    env = exposure.env_settings
    assert [s.what for s in env({"OLLAMA_HOST": "http://0.0.0.0:11434"}, "x")] == [
        "OLLAMA_HOST=http://0.0.0.0:11434"
    ]
    assert env({"OLLAMA_HOST": "127.0.0.1:11434"}, "x") == []
    assert env({"OLLAMA_HOST": "[::1]:11434"}, "x") == []
    assert len(env({"OLLAMA_HOST": ":11434"}, "x")) == 1  # empty host: every interface
    assert len(env({"OLLAMA_HOST": "[::]:11434"}, "x")) == 1
    assert len(env({"OLLAMA_ORIGINS": "http://localhost,*"}, "x")) == 1
    assert len(env({"OLLAMA_ORIGINS": "http://*"}, "x")) == 1
    assert env({"OLLAMA_ORIGINS": "http://localhost,app://x"}, "x") == []
    argv = exposure.argv_settings
    assert [s.what for s in argv(["python", "server.py", "--listen", "--share"], "x")] == [
        "--listen",
        "--share",
    ]
    assert argv(["python", "main.py", "--listen", "127.0.0.1"], "x") == []
    assert [s.what for s in argv(["main.py", "--listen", "0.0.0.0,::"], "x")] == ["--listen"]
    assert [s.what for s in argv(["vllm", "serve", "--host=0.0.0.0"], "x")] == ["--host 0.0.0.0"]
    assert argv(["llama-server", "--host", "127.0.0.1"], "x") == []
    assert argv(["llama-server", "--host"], "x") == []
    unit = '[Service]\nEnvironment=OLLAMA_HOST=0.0.0.0\nEnvironment="OLLAMA_ORIGINS=*" broken"\n'
    assert {s.what for s in exposure.systemd_settings(unit, "u")} == {
        "OLLAMA_HOST=0.0.0.0",
        "OLLAMA_ORIGINS=*",
    }


def test_tunnel_ports() -> None:
    tp = exposure.tunnel_ports
    assert tp("ngrok", ["ngrok", "http", "11434"]) == {11434}
    assert tp("cloudflared", ["cloudflared", "tunnel", "--url", "http://localhost:11434"]) == {
        11434
    }
    assert tp("tailscale", ["tailscale", "funnel", "--bg", "8080"]) == {8080}
    assert tp("tailscale", ["tailscale", "up"]) is None
    assert tp(
        "node", ["node", "/usr/lib/node_modules/localtunnel/bin/lt.js", "--port", "1234"]
    ) == {1234}
    assert tp("bash", ["bash", "-c", "ngrok http 1"]) is None
    assert tp("ngrok", ["ngrok", "http", "127.0.0.1:8188"]) == {8188}


def test_parse_net_tcp() -> None:
    v4 = (
        b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
        b"   0: 0100007F:2CAA 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 111 1\n"
        b"   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 222 1\n"
        b"   2: 0100007F:2CAA 0100007F:D2F0 01 00000000:00000000 00:00000000 00000000  1000        0 333 1\n"
        b"   3: garbage\n   4: ZZZZ:1F90 00000000:0000 0A 0 0 0 0 0 444 1\n"
    )  # fmt: skip
    got = processes.parse_net_tcp(v4, socket.AF_INET)
    if sys.byteorder == "little":
        assert got == {111: ("127.0.0.1", 11434), 222: ("0.0.0.0", 8080)}
    v6 = (
        b"header\n"
        b"   0: 00000000000000000000000001000000:1F90 00000000000000000000000000000000:0000 0A"
        b" 00000000:00000000 00:00000000 00000000  1000 0 555 1\n"
        b"   1: 00000000000000000000000000000000:04D2 00000000000000000000000000000000:0000 0A"
        b" 00000000:00000000 00:00000000 00000000  1000 0 666 1\n"
    )
    got6 = processes.parse_net_tcp(v6, socket.AF_INET6)
    if sys.byteorder == "little":
        assert got6 == {555: ("::1", 8080), 666: ("::", 1234)}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
def test_sockets_of_another_users_process(
    tmp_path: Path, children: list[subprocess.Popen[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Descriptors unreadable (the ollama service user's server seen by a normal user): the
    listening socket is attributed by owner uid and expected port."""
    p, line = start(
        children, ["bash", "-c", f"exec -a llama-server {sys.executable} -c '{LISTENER}' --port 0"]
    )
    port = int(line)
    real_listdir = os.listdir

    def denied(path: str) -> list[str]:
        if str(path) == f"/proc/{p.pid}/fd":
            raise PermissionError(13, "Permission denied")
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", denied)
    assert processes.listening([p.pid], backend="proc") == {}  # no hint: nothing guessed
    got = processes.listening([p.pid], backend="proc", hints={p.pid: {port}})
    assert got == {p.pid: [("0.0.0.0", port)]}
    assert processes.listening([p.pid], backend="proc", hints={p.pid: {1}}) == {}
    proc = processes.Proc(p.pid, "llama-server", None, ("llama-server", "--port", str(port)))
    assert port in runtimes._expected_ports(runtimes._BY_NAME["llama.cpp"], proc)


def test_advisory_versions(monkeypatch: pytest.MonkeyPatch) -> None:
    pv = advisories.parse_version
    order = ["0.1.9", "0.1.29", "0.1.34rc1", "0.1.34", "0.1.34.post1", "0.1.35.dev1", "0.2", "v1.0"]
    keys = [pv(v) for v in order]
    assert None not in keys and keys == sorted(keys)  # type: ignore[type-var]
    assert pv("2.5.1+cu121") == pv("2.5.1") and pv("1.0") == pv("1.0.0")
    assert pv("b8146") == pv("8146")
    assert pv("not a version") is None and pv("") is None and pv("1" * 100) is None
    for use_packaging in (True, False):
        if not use_packaging:  # the small parser alone, as on a machine without packaging
            monkeypatch.setitem(sys.modules, "packaging.version", None)
        m = advisories.matching
        assert [a.cve for a in m("llama-cpp-python", "0.2.71")] == ["CVE-2024-34359"]
        assert m("llama-cpp-python", "0.2.72") == []
        assert [a.cve for a in m("torch", "2.5.1+cu121")] == ["CVE-2025-32434"]
        assert m("torch", "2.6.0") == [] and m("torch", "2.13.0+cpu") == []
        assert "CVE-2024-37032" in {a.cve for a in m("ollama", "0.1.33")}
        assert "CVE-2024-37032" not in {a.cve for a in m("ollama", "0.1.34")}
        assert [a.cve for a in m("ollama", "0.17.0")] == ["CVE-2026-7482"]
        assert (
            m("ollama", "0.17.1") == [] and m("ollama", "garbage") == [] and m("ollama", None) == []
        )
        assert [a.cve for a in m("llama.cpp", "b8000")] == ["CVE-2026-27940"]
        assert len(m("llama.cpp", "1500")) == 2
        assert m("llama.cpp", "0.4.1") == [] and m("llama.cpp", "b8146") == []  # semver era
        worst = m("ollama", "0.1.10")
        assert worst[0].severity is Severity.CRITICAL  # worst first
    assert advisories.compare("1.0", "x") is None


def test_probe_only_loopback() -> None:
    assert probes.probe_json("192.168.1.1", 11434, "/api/version") is None
    assert probes.probe_json("example.com", 80, "/") is None
    with socket.socket() as s:  # a closed port: silent
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert probes.probe_json("127.0.0.1", port, "/api/version") is None


# ---------------------------------------------------------------------------- hostile machines
def test_vanishing_and_unreadable_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # its pid now names nothing
    fake = [
        processes.Proc(gone.pid, "ollama", "/usr/bin/ollama", ("ollama", "serve")),
        processes.Proc(gone.pid + 10**7, "llama-server", None, ("llama-server", "--host", "::")),
    ]
    monkeypatch.setattr(processes, "process_table", lambda **kw: fake)
    found, errors = run(tmp_path)
    assert {r.name for r in found} == {"ollama", "llama.cpp"}
    assert all(r.running and r.listen == () for r in found)
    assert processes.process_environ(gone.pid, ["OLLAMA_HOST"]) == {}
    assert processes.listening([gone.pid]) == {}

    def broken(**kw: object) -> list[processes.Proc]:
        raise PermissionError("no /proc")

    monkeypatch.setattr(processes, "process_table", broken)
    found, errors = run(tmp_path)
    assert found == [] and errors[0].path == "processes"

    def bug(*args: object) -> None:
        raise RuntimeError("unforeseen")

    monkeypatch.setattr(processes, "process_table", lambda **kw: fake)
    monkeypatch.setattr(runtimes, "_attach_settings", bug)
    found, errors = run(tmp_path)  # one phase lost, reported; the rest still answers
    assert {r.name for r in found} == {"ollama", "llama.cpp"}
    assert [e.path for e in errors] == ["runtime settings"]


def test_hostile_home_files(tmp_path: Path) -> None:
    home = tmp_path / "home"
    internal = home / ".lmstudio" / ".internal"
    internal.mkdir(parents=True)
    (internal / "http-server-config.json").write_bytes(b"\xff\xfe{{{{")
    lms = home / ".lmstudio" / "bin" / "lms"
    lms.parent.mkdir()
    lms.symlink_to(lms)  # a symlink loop where the CLI should be
    app = home / "Applications" / "Jan.app" / "Contents"
    app.mkdir(parents=True)
    (app / "Info.plist").mkdir()  # a folder where a file should be
    etc = tmp_path / "etc" / "systemd" / "system"
    (etc / "ollama.service.d").mkdir(parents=True)
    (etc / "ollama.service").write_bytes(os.urandom(4096))
    found, errors = run(tmp_path, processes=False)
    assert [(r.name, r.version) for r in found] == [("jan", None)]
    assert errors == []


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_parsers_never_raise(data: bytes) -> None:
    processes.parse_net_tcp(data, socket.AF_INET)
    processes.parse_net_tcp(data, socket.AF_INET6)
    text = data.decode("utf-8", "replace")
    exposure.systemd_settings(text, "x")
    exposure.argv_settings(text.split(), "x")
    exposure.env_settings({"OLLAMA_HOST": text, "OLLAMA_ORIGINS": text}, "x")
    exposure.tunnel_ports("ngrok", text.split() or ["ngrok"])
    exposure.is_exposed(text)
    advisories.parse_version(text)
    advisories.compare(text, "1.0")
