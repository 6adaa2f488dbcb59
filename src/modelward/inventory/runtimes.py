"""Local inference runtimes: installed and running, their versions, sockets, exposure and advisories.

:func:`collect_runtimes` finds the runtimes of :data:`SPECS` as executables on ``PATH`` and in
their known install locations, and as running processes (by name, ``python -m module`` or console
script); joins each process to the TCP sockets it listens on; and reports:

- ``runtime.exposed``: a socket bound to a non-loopback address (critical with a vulnerable version);
- ``runtime.vulnerable-version``: the version is in the bundled advisory table (:mod:`.advisories`);
- ``runtime.exposure-setting``: ``OLLAMA_HOST=0.0.0.0``, ``OLLAMA_ORIGINS=*``, ``--listen``, ... in a
  process's command line or environment, the current environment, a systemd drop-in or LM Studio's
  server settings;
- ``runtime.tunnel``: ngrok, cloudflared, ``tailscale funnel``, localtunnel forwarding a runtime port.

Versions are read without running any binary: app bundle ``Info.plist``, Electron
``package.json``, the Go build information embedded in Ollama and LocalAI binaries (a bounded
search for the ``-X ...version.Version=`` linker flag), package-manager paths (Homebrew Cellar,
Nix store), the ``dist-info`` of the Python ones, ComfyUI's ``comfyui_version.py``, and optionally
Ollama's loopback ``/api/version``. Probes only ever go to 127.0.0.1 or ::1, without proxies or
redirects, with a 0.5 s timeout; they fail silently. GPU processes (NVML) are not inspected.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from modelward.inventory import advisories, versions
from modelward.inventory import exposure as ex
from modelward.inventory import probes as loopback
from modelward.inventory import processes as ps
from modelward.models import CollectError, Finding, Listen, Runtime, Severity
from modelward.scan.rules import Rule, rule

EXPOSED = rule(
    "runtime.exposed",
    Severity.HIGH,
    "A local inference runtime listens on a network-reachable address",
    "Bind the runtime to 127.0.0.1 (e.g. OLLAMA_HOST=127.0.0.1, --host 127.0.0.1), or put it "
    "behind an authenticating proxy and a firewall; these APIs have no authentication.",
)
VULNERABLE = rule(
    "runtime.vulnerable-version",
    Severity.HIGH,
    "A local inference runtime has a version with a known vulnerability",
    "Upgrade the runtime to a fixed version (see the CVE).",
)
SETTING = rule(
    "runtime.exposure-setting",
    Severity.MEDIUM,
    "A runtime setting widens its network exposure",
    "Remove the setting (OLLAMA_HOST=0.0.0.0, OLLAMA_ORIGINS=*, --listen, --share, --host "
    "0.0.0.0) unless the runtime must serve other machines, and then protect it.",
)
TUNNEL = rule(
    "runtime.tunnel",
    Severity.HIGH,
    "A tunnel forwards a local inference runtime's port to the network",
    "Stop the tunnel, or protect the runtime with authentication before sharing it.",
)


@dataclass(frozen=True, slots=True)
class Spec:
    """How a runtime shows itself: executable names, Python modules, ports, version sources."""

    name: str
    executables: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    hinted: tuple[tuple[str, str], ...] = ()
    """(script or executable basename, word its path or working folder must contain)."""
    dist: str | None = None
    ports: tuple[int, ...] = ()
    go: bool = False
    formulas: tuple[str, ...] = ()
    env_prefixes: tuple[str, ...] = ()


SPECS: tuple[Spec, ...] = (
    Spec("ollama", ("ollama", "ollama_llama_server", "ollama app"), ports=(11434,), go=True,
         formulas=("ollama",), env_prefixes=("OLLAMA_",)),
    Spec("lmstudio", ("lm studio", "lm-studio", "lmstudio", "lms"), ports=(1234,)),
    Spec("llama.cpp", ("llama-server", "llama-cli", "llama-run"), ports=(8080,),
         formulas=("llama.cpp", "llama-cpp"), env_prefixes=("LLAMA_ARG_",)),
    Spec("llama-cpp-python", modules=("llama_cpp.server",), dist="llama-cpp-python", ports=(8000,)),
    Spec("llamafile", ("llamafile",), ports=(8080,)),
    Spec("vllm", ("vllm",), modules=("vllm.entrypoints",), dist="vllm", ports=(8000,)),
    Spec("koboldcpp", ("koboldcpp", "koboldcpp.py"), ports=(5001,)),
    Spec("localai", ("local-ai", "localai"), ports=(8080,), go=True),
    Spec("text-generation-webui", hinted=(("server.py", "text-generation-webui"),
         ("one_click.py", "text-generation-webui"), ("server.py", "oobabooga")),
         ports=(7860, 5000), env_prefixes=("GRADIO_",)),
    Spec("jan", ("jan",), ports=(1337,)),
    Spec("gpt4all", ("gpt4all",), hinted=(("chat", "gpt4all"),), dist="gpt4all", ports=(4891,)),
    Spec("mlx-lm", ("mlx_lm.server",), modules=("mlx_lm.server",), dist="mlx-lm", ports=(8080,)),
    Spec("comfyui", ("comfyui",), hinted=(("main.py", "comfyui"),), ports=(8188,)),
    Spec("open-webui", ("open-webui",), modules=("open_webui",), dist="open-webui", ports=(8080,)),
)  # fmt: skip
_BY_NAME = {s.name: s for s in SPECS}


@dataclass(slots=True)
class _Entry:
    spec: Spec
    executable: str | None
    version: str | None = None
    key: str | None = None
    procs: list[ps.Proc] = field(default_factory=list)
    settings: list[ex.Setting] = field(default_factory=list)
    listen: set[tuple[str, int]] = field(default_factory=set)
    tunnels: list[tuple[ps.Proc, int]] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------- entry point
def collect_runtimes(
    env: Mapping[str, str],
    *,
    probes: bool = True,
    errors: list[CollectError],
    homes: Sequence[Path] | None = None,
    processes: bool = True,
    backend: str = "auto",
    etc: Path = Path("/etc"),
) -> list[Runtime]:
    """The runtimes installed (``PATH`` from ``env``, known locations in ``homes``) and running.

    ``homes`` defaults to the current user's home (every home when run as root);
    ``processes=False`` skips the process table (and so sockets, tunnels, probes);
    ``etc`` is where systemd drop-ins are read (tests point it elsewhere).
    """
    if homes is None:
        from modelward.inventory import host

        homes = host.all_homes() if host.is_root() else [Path.home()]
    entries: list[_Entry] = []
    procs: list[ps.Proc] = []

    def phase(what: str, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:  # a bug or an unforeseen platform quirk costs one phase only
            errors.append(CollectError(what, f"runtime inventory incomplete: {exc!r}"))

    phase("runtimes", lambda: entries.extend(_installed(env, homes)))
    if processes:
        try:
            procs = ps.process_table(backend=backend)
        except Exception as exc:  # psutil missing or the process table unreadable
            errors.append(CollectError("processes", f"could not read the process table: {exc}"))
        phase("processes", lambda: _attach_processes(entries, procs, backend))
        phase("sockets", lambda: _attach_sockets(entries, backend, errors))
        phase("processes", lambda: _attach_tunnels(entries, procs))
    phase("runtime settings", lambda: _attach_settings(entries, env, homes, etc))
    if probes and processes:
        for e in entries:
            if e.spec.name == "ollama" and e.procs:
                phase("probes", functools.partial(_probe, e))
    return sorted((_runtime(e) for e in entries), key=lambda r: (r.name, r.executable or ""))


# ---------------------------------------------------------------------------- installed
def _installed(env: Mapping[str, str], homes: Sequence[Path]) -> list[_Entry]:
    entries: list[_Entry] = []
    seen: set[str] = set()

    def add(spec: Spec, path: Path, version_from: Path | None = None) -> None:
        try:
            if not path.exists():
                return
            key = os.path.realpath(path)
        except (OSError, ValueError):
            return
        if key in seen:
            return
        seen.add(key)
        version = read_version(spec, str(path), version_from)
        entries.append(_Entry(spec, str(path), version, key))

    path_dirs = [d for d in env.get("PATH", "").split(os.pathsep) if d][:256]
    exts = ("", ".exe") if os.name == "nt" else ("",)
    for spec in SPECS:
        for exe in spec.executables:
            if " " in exe or exe.endswith(".py"):
                continue
            for d in path_dirs:
                for ext in exts:
                    p = Path(d) / (exe + ext)
                    if _is_executable(p):
                        add(spec, p)
    for spec_name, path, version_from in _known_locations(env, homes):
        add(_BY_NAME[spec_name], path, version_from)
    return entries


def _is_executable(p: Path) -> bool:
    try:
        return p.is_file() and os.access(p, os.X_OK)
    except (OSError, ValueError):
        return False


def _known_locations(
    env: Mapping[str, str], homes: Sequence[Path]
) -> list[tuple[str, Path, Path | None]]:
    """(runtime, executable or install folder, where its version is read) outside ``PATH``."""
    out: list[tuple[str, Path, Path | None]] = []
    for d in ("/usr/local/bin", "/usr/bin", "/opt/homebrew/bin", "/snap/bin"):
        out.append(("ollama", Path(d, "ollama"), None))
        out.append(("localai", Path(d, "local-ai"), None))
        for exe in ("llama-server", "llama-cli"):
            out.append(("llama.cpp", Path(d, exe), None))
    for apps in [Path("/Applications")] + [h / "Applications" for h in homes]:
        for name, app in (("ollama", "Ollama.app"), ("lmstudio", "LM Studio.app"),
                          ("jan", "Jan.app"), ("comfyui", "ComfyUI.app")):  # fmt: skip
            out.append((name, apps / app, apps / app))
        out.append(("gpt4all", apps / "gpt4all" / "bin" / "gpt4all.app", None))
    for home in homes:
        for rel in (".lmstudio/bin/lms", ".cache/lm-studio/bin/lms"):
            out.append(("lmstudio", home / rel, None))
        out.append(("gpt4all", home / "gpt4all" / "bin" / "chat", None))
        out.append(("llama.cpp", home / "llama.cpp" / "build" / "bin" / "llama-server", None))
        for folder in ("ComfyUI", "comfy/ComfyUI"):
            out.append(("comfyui", home / folder / "main.py", home / folder))
        out.append(("text-generation-webui", home / "text-generation-webui" / "server.py", None))
    local = env.get("LOCALAPPDATA", "").strip()
    if local:
        programs = Path(local) / "Programs"
        out.append(("ollama", programs / "Ollama" / "ollama.exe", None))
        out.append(("lmstudio", programs / "LM Studio" / "LM Studio.exe", programs / "LM Studio"))
        out.append(("jan", programs / "jan" / "Jan.exe", programs / "jan"))
    if sys.platform.startswith("linux"):  # LM Studio and Jan .deb / unpacked installs
        out.append(("lmstudio", Path("/opt/LM Studio/lm-studio"), Path("/opt/LM Studio")))
        out.append(("jan", Path("/opt/Jan/jan"), Path("/opt/Jan")))
    return out


# ---------------------------------------------------------------------------- versions
def read_version(spec: Spec, path: str, folder: Path | None = None) -> str | None:
    """The version of the runtime at ``path`` (an executable, script or app), never running it."""
    return versions.read_version(
        path,
        folder,
        formulas=spec.formulas,
        dist=spec.dist,
        go=spec.go,
        comfyui=spec.name == "comfyui",
    )


# ---------------------------------------------------------------------------- processes
def match_process(proc: ps.Proc) -> tuple[Spec, str | None, list[str]] | None:
    """The runtime a process belongs to, its program, and the paths its version is read from.

    The program is the executable (or, for a Python runtime run as a script, the script); the
    version paths put the interpreter as the command line names it first (``/venv/bin/python``:
    ``/proc/<pid>/exe`` resolves a venv's interpreter to the system one).
    """
    argv = proc.argv
    arg0 = argv[0] if argv else proc.name
    names = {_base(arg0), _base(proc.name)}
    if proc.exe:
        names.add(_base(proc.exe))
    exe = proc.exe or (arg0 if os.path.isabs(arg0) else None)
    if any(n.startswith(("python", "pypy", "uvicorn")) for n in names):
        module, script = _python_target(argv)
        for spec in SPECS:
            if module is not None and any(
                module == m or module.startswith((m + ".", m + ":")) for m in spec.modules
            ):
                program = arg0 if os.path.isabs(arg0) else exe  # the venv's, not resolved
                return spec, program, [arg0, *([exe] if exe else [])]
            if script is not None:
                b = _base(script)
                full = _abs(script, proc.cwd)
                if b in spec.executables or any(
                    b == name and _hinted(hint, full) for name, hint in spec.hinted
                ):
                    return spec, full, [full, arg0]
    for spec in SPECS:
        if names & set(spec.executables) or any(
            script in names and _hinted(hint, proc.exe, arg0, proc.cwd)
            for script, hint in spec.hinted
        ):
            return spec, exe, [exe] if exe else []
    if any(n.endswith(".llamafile") for n in names):
        return _BY_NAME["llamafile"], exe, []
    return None


_APP_SERVERS = frozenset({"uvicorn", "gunicorn", "hypercorn", "granian"})


def _python_target(argv: Sequence[str]) -> tuple[str | None, str | None]:
    """``(module, script)`` a Python command line runs (``-m x`` or the first non-option)."""
    args = list(argv[1:64])
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-m" and i + 1 < len(args):
            return args[i + 1], None
        if a.startswith("-m") and len(a) > 2:
            return a[2:], None
        if a == "-c" or a.startswith("-c"):
            return None, None
        if a in ("-W", "-X", "--check-hash-based-pycs"):
            i += 2
            continue
        if a.startswith("-"):
            i += 1
            continue
        if ":" in a and "/" not in a and "\\" not in a:  # uvicorn open_webui.main:app
            return a, None
        if _base(a) in _APP_SERVERS:  # python /venv/bin/uvicorn open_webui.main:app
            i += 1
            continue
        return None, a
    return None, None


def _hinted(hint: str, *paths: str | None) -> bool:
    return any(p and hint in p.lower() for p in paths)


def _abs(path: str, cwd: str | None) -> str:
    return path if os.path.isabs(path) or cwd is None else os.path.join(cwd, path)


def _base(text: str) -> str:
    b = text.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower()
    return b[:-4] if b.endswith(".exe") else b


def _attach_processes(entries: list[_Entry], procs: list[ps.Proc], backend: str) -> None:
    by_key = {e.key: e for e in entries if e.key}
    for proc in procs:
        hit = match_process(proc)
        if hit is None:
            continue
        spec, program, version_paths = hit
        key = None
        if program:
            try:
                key = os.path.realpath(program)
            except (OSError, ValueError):
                key = None
        entry = _find_entry(entries, by_key, spec, key)
        if entry is None:
            version = None
            for path in version_paths:
                version = read_version(spec, path)
                if version:
                    break
            entry = _Entry(spec, program, version, key)
            entries.append(entry)
            if key:
                by_key[key] = entry
        entry.procs.append(proc)
        entry.settings.extend(ex.argv_settings(proc.argv, f"command line of pid {proc.pid}"))
        if spec.env_prefixes:
            penv = ps.process_environ(proc.pid, ex.ENV_KEYS, backend=backend)
            where = f"environment of pid {proc.pid}"
            entry.settings.extend(_relevant(spec, ex.env_settings(penv, where)))


def _find_entry(
    entries: list[_Entry], by_key: dict[str, _Entry], spec: Spec, key: str | None
) -> _Entry | None:
    """The installed runtime a process runs: same program, inside its app, or the only one."""
    if key:
        entry = by_key.get(key)
        if entry is not None and entry.spec is spec:
            return entry
        for e in entries:  # /Applications/Ollama.app/Contents/Resources/ollama
            if e.spec is spec and e.key and key.startswith(e.key.rstrip(os.sep) + os.sep):
                return e
        return None
    same = [e for e in entries if e.spec is spec]
    return same[0] if len(same) == 1 else None  # program unknown (another user's process)


def _relevant(spec: Spec, settings: list[ex.Setting]) -> list[ex.Setting]:
    return [s for s in settings if s.what.startswith(spec.env_prefixes)]


def _attach_sockets(entries: list[_Entry], backend: str, errors: list[CollectError]) -> None:
    pids = {p.pid for e in entries for p in e.procs}
    hints = {p.pid: _expected_ports(e.spec, p) for e in entries for p in e.procs}
    try:
        socks = ps.listening(pids, backend=backend, hints=hints)
    except Exception as exc:  # psutil missing: sockets unknown, the run goes on
        errors.append(CollectError("sockets", f"could not read listening sockets: {exc}"))
        return
    for e in entries:
        for p in e.procs:
            e.listen.update(socks.get(p.pid, ()))


def _expected_ports(spec: Spec, proc: ps.Proc) -> set[int]:
    """The runtime's default ports and any ``--port N`` on the process's command line."""
    ports = set(spec.ports)
    args = list(proc.argv[:4096])
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in ("--port", "-p", "--listen-port", "--server-port"):
            value = value if eq else (args[i + 1] if i + 1 < len(args) else "")
            if value.isdigit() and 0 < int(value) < 65536:
                ports.add(int(value))
    return ports


def _attach_tunnels(entries: list[_Entry], procs: list[ps.Proc]) -> None:
    for proc in procs:
        ports = ex.tunnel_ports(proc.name, proc.argv)
        if not ports:
            continue
        for e in entries:
            mine = {port for _a, port in e.listen}
            if not mine and e.procs:
                mine = set(e.spec.ports)
            for port in sorted(ports & mine):
                e.tunnels.append((proc, port))


def _attach_settings(
    entries: list[_Entry], env: Mapping[str, str], homes: Sequence[Path], etc: Path
) -> None:
    for e in entries:
        if e.spec.env_prefixes:
            e.settings.extend(_relevant(e.spec, ex.env_settings(env, "current environment")))
        if e.spec.name == "ollama":
            for unit in _systemd_files(etc):
                text = ex.read_text(unit)
                if text is not None:
                    e.settings.extend(ex.systemd_settings(text, str(unit)))
        if e.spec.name == "lmstudio":
            for home in homes:
                e.settings.extend(
                    ex.lmstudio_settings(
                        home / ".lmstudio" / ".internal" / "http-server-config.json"
                    )
                )


def _systemd_files(etc: Path) -> list[Path]:
    out = [etc / "systemd" / "system" / "ollama.service"]
    dropins = etc / "systemd" / "system" / "ollama.service.d"
    with contextlib.suppress(OSError):
        out += sorted(dropins.glob("*.conf"))[:100]
    return out


# ---------------------------------------------------------------------------- probes
def _probe(e: _Entry) -> None:
    targets: list[tuple[str, int]] = []
    for address, port in sorted(e.listen):
        if address == "0.0.0.0" or address.startswith("127."):
            targets.append(("127.0.0.1", port))
        elif address in ("::", "::1"):
            targets.append(("::1", port))  # a LAN address only: not probed (never off loopback)
    if not e.listen:
        targets = [("127.0.0.1", p) for p in e.spec.ports]
    found = loopback.ollama(targets)
    if found is not None:
        version, loaded = found
        e.version = e.version or version
        e.loaded.extend(loaded)


# ---------------------------------------------------------------------------- findings
def _finding(
    r: Rule, message: str, evidence: str, location: str, sev: Severity | None = None
) -> Finding:
    return Finding(r.id, sev or r.severity, message, evidence, location, r.remediation)


def _runtime(e: _Entry) -> Runtime:
    name = e.spec.name
    where = e.executable or ""
    vulns = advisories.matching(name, e.version)
    findings: list[Finding] = []
    listen = tuple(Listen(a, p, ex.is_exposed(a)) for a, p in sorted(e.listen))
    exposed = [x for x in listen if x.exposed]
    if exposed:
        addrs = ", ".join(f"{x.address}:{x.port}" for x in exposed)
        evidence = f"listening on {addrs}"
        if e.loaded:
            evidence += f"; serving {', '.join(e.loaded[:10])}"
        if vulns:
            evidence += f"; vulnerable version {e.version} ({', '.join(a.cve for a in vulns)})"
        findings.append(
            _finding(
                EXPOSED,
                f"{name} listens on {addrs}, reachable from other machines",
                evidence,
                where,
                Severity.CRITICAL if vulns else Severity.HIGH,
            )
        )
    for adv in vulns:
        findings.append(
            _finding(
                VULNERABLE,
                f"{name} {e.version} is affected by {adv.cve}: {adv.title}",
                f"{adv.cve}: {name} {adv.affected} (found {e.version})",
                where,
                adv.severity,
            )
        )
    seen: set[tuple[str, str]] = set()
    for s in e.settings:
        if (s.what, s.where) in seen:
            continue
        seen.add((s.what, s.where))
        findings.append(
            _finding(
                SETTING,
                f"{name}: {s.what} widens its network exposure",
                f"{s.what} ({s.where})",
                where,
            )
        )
    for proc, port in e.tunnels:
        findings.append(
            _finding(
                TUNNEL,
                f"{_base(proc.argv[0] if proc.argv else proc.name)} (pid {proc.pid}) forwards "
                f"{name}'s port {port} to the network",
                f"pid {proc.pid} {_base(proc.name)} -> port {port}",  # never its arguments: tokens
                where,
            )
        )
    return Runtime(
        name=name,
        version=e.version,
        executable=e.executable,
        running=bool(e.procs),
        pids=tuple(sorted({p.pid for p in e.procs})),
        listen=listen,
        findings=tuple(findings),
    )
