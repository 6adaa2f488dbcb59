"""Network exposure: bind addresses, settings that widen a runtime's reach, tunnels to its port.

Everything here is a pure function over text already read (an address, a command line, an
environment, a systemd unit, a JSON settings file), so that hostile content can only yield a
setting or nothing.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from modelward.inventory.fsread import read_head

MAX_CONFIG = 256 << 10

ENV_KEYS = ("OLLAMA_HOST", "OLLAMA_ORIGINS", "LLAMA_ARG_HOST", "GRADIO_SERVER_NAME", "GRADIO_SHARE")
"""Environment variables read from a runtime's process environment (nothing else is kept)."""

TUNNELS = ("ngrok", "cloudflared", "tailscale", "lt", "localtunnel", "bore", "frpc", "zrok")
"""Process names of tunnelling tools (``tailscale`` counts only with ``funnel``)."""


@dataclass(frozen=True, slots=True)
class Setting:
    """A setting that widens exposure: ``what`` it is (``OLLAMA_HOST=0.0.0.0``) and ``where`` set."""

    what: str
    where: str


def is_exposed(address: str) -> bool:
    """True unless ``address`` is a loopback address (``0.0.0.0``, ``::`` and LAN IPs are exposed)."""
    text = address.strip().strip("[]")
    if "%" in text:  # fe80::1%eth0
        text = text.split("%", 1)[0]
    if text.lower() == "localhost":
        return False
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return True  # a host name or garbage: resolvable to anything, treat as reachable
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return not ip.ipv4_mapped.is_loopback
    return not ip.is_loopback


def host_of(value: str) -> str:
    """The host part of ``OLLAMA_HOST``-style values: ``http://0.0.0.0:11434`` -> ``0.0.0.0``."""
    v = value.strip()
    if "://" in v:
        v = v.split("://", 1)[1]
    v = v.split("/", 1)[0]
    if v.startswith("["):  # [::]:11434
        return v[1 : v.find("]")] if "]" in v else v[1:]
    if v.count(":") == 1:
        v = v.split(":", 1)[0]
    return v


def env_settings(env: Mapping[str, str], where: str) -> list[Setting]:
    """Settings in an environment that widen exposure."""
    out: list[Setting] = []
    host = env.get("OLLAMA_HOST")
    if host is not None and host.strip():
        h = host_of(host)
        if h == "" or is_exposed(h):  # ":11434" listens on every interface
            out.append(Setting(f"OLLAMA_HOST={host.strip()[:200]}", where))
    origins = env.get("OLLAMA_ORIGINS", "")
    if any(o.strip().split("://")[-1].split(":")[0] == "*" for o in origins.split(",")):
        out.append(Setting(f"OLLAMA_ORIGINS={origins.strip()[:200]}", where))
    for key in ("LLAMA_ARG_HOST", "GRADIO_SERVER_NAME"):
        value = env.get(key, "").strip()
        if value and is_exposed(value):
            out.append(Setting(f"{key}={value[:200]}", where))
    if env.get("GRADIO_SHARE", "").strip().lower() in ("1", "true", "yes"):
        out.append(Setting("GRADIO_SHARE=true", where))
    return out


_HOST_FLAGS = ("--host", "--listen-host", "--server-name", "--bind", "--address")


def argv_settings(argv: Sequence[str], where: str) -> list[Setting]:
    """Command-line options that widen exposure: ``--listen``, ``--share``, ``--host 0.0.0.0``."""
    out: list[Setting] = []
    args = list(argv[:4096])
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in ("--listen", "--share", "--public-api", "--tunnel"):
            if flag == "--listen" and not eq and i + 1 < len(args):
                nxt = args[i + 1]
                if not nxt.startswith("-") and _addresses(nxt) and not _any_exposed(nxt):
                    continue  # --listen 127.0.0.1 (ComfyUI)
            if eq and value and flag == "--listen" and not _any_exposed(value):
                continue
            out.append(Setting(arg[:200] if eq else flag, where))
        elif flag in _HOST_FLAGS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
            if value and _any_exposed(value):
                out.append(Setting(f"{flag} {value[:200]}", where))
    return out


def _addresses(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


def _any_exposed(text: str) -> bool:
    return any(is_exposed(host_of(a) or a) for a in _addresses(text))


def systemd_settings(text: str, where: str) -> list[Setting]:
    """Settings in ``Environment=`` lines of a systemd unit or drop-in."""
    env: dict[str, str] = {}
    for line in text.splitlines()[:10_000]:
        line = line.strip()
        if not line.startswith("Environment="):
            continue
        body = line[len("Environment=") :]
        try:
            words = shlex.split(body)
        except ValueError:
            words = [w.strip("\"'") for w in body.split()]
        for w in words:
            k, eq, v = w.partition("=")
            if eq:
                env[k.strip()] = v
    return env_settings(env, where)


def read_text(path: Path | str, limit: int = MAX_CONFIG) -> str | None:
    """The beginning of a small text file, or None when it cannot be read."""
    data = read_head(path, limit)
    return None if data is None else data.decode("utf-8", "replace")


def lmstudio_settings(path: Path) -> list[Setting]:
    """LM Studio's ``.internal/http-server-config.json``: ``networkInterface`` not loopback."""
    text = read_text(path)
    if text is None:
        return []
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return []
    if not isinstance(data, dict):
        return []
    out: list[Setting] = []
    iface = data.get("networkInterface")
    if isinstance(iface, str) and iface.strip() and is_exposed(iface):
        out.append(Setting(f"networkInterface={iface.strip()[:100]}", str(path)))
    if data.get("cors") is True:
        out.append(Setting("cors=true", str(path)))
    return out


_PORT = re.compile(r"(?<![\d.])(\d{2,5})(?![\d.])")


def tunnel_ports(name: str, argv: Sequence[str]) -> set[int] | None:
    """The ports a tunnelling process forwards (None when it is not a tunnel)."""
    base = _basename(argv[0]) if argv else ""
    names = {_basename(name), base}
    args = list(argv[1:256])
    if len(argv) > 1 and base in ("node", "nodejs", "npx") and "localtunnel" in " ".join(args):
        names.add("localtunnel")
    hit = names & set(TUNNELS)
    if not hit:
        return None
    if hit == {"tailscale"} and "funnel" not in args:
        return None
    ports: set[int] = set()
    for arg in args:
        if len(arg) > 512:
            continue
        for m in _PORT.finditer(arg):
            n = int(m.group(1))
            if 1 <= n <= 65535:
                ports.add(n)
    return ports


def _basename(text: str) -> str:
    b = text.replace("\\", "/").rsplit("/", 1)[-1].lower()
    return b[:-4] if b.endswith(".exe") else b
