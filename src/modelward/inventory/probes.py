"""Read-only probes of a runtime's API on the loopback interface (Ollama ``/api/version``, ``/api/ps``).

Requests go only to 127.0.0.1 or ::1 (anything else is refused before a socket is opened), with no
proxy (``HTTP_PROXY`` is ignored) and no redirect followed, a short timeout and a bounded
response; every failure is silent.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from email.message import Message as HTTPMessage
from typing import IO

PROBE_TIMEOUT = 0.5
MAX_TARGETS = 8


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None  # never follow a redirect away from loopback


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)


def probe_json(host: str, port: int, path: str, timeout: float = PROBE_TIMEOUT) -> object | None:
    """``GET http://host:port/path`` parsed as JSON; only to 127.0.0.1 or ::1; None on failure."""
    if host not in ("127.0.0.1", "::1") or not 0 < port < 65536:
        return None
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with _OPENER.open(f"http://{netloc}{path}", timeout=timeout) as resp:
            data = resp.read(1 << 20)
        result: object = json.loads(data)
        return result
    except Exception:  # refused, timeout, not JSON, HTTP error: silent by design
        return None


def ollama(targets: Sequence[tuple[str, int]]) -> tuple[str | None, list[str]] | None:
    """``(version, loaded model names)`` from the first target that answers like Ollama."""
    for host, port in list(targets)[:MAX_TARGETS]:
        info = probe_json(host, port, "/api/version")
        if not isinstance(info, dict) or not isinstance(info.get("version"), str):
            continue
        version = info["version"].strip()[:64] or None
        loaded: list[str] = []
        running = probe_json(host, port, "/api/ps")
        models = running.get("models") if isinstance(running, dict) else None
        if isinstance(models, list):
            for m in models[:100]:
                if isinstance(m, dict) and isinstance(m.get("name"), str):
                    loaded.append(m["name"][:200])
        return version, loaded
    return None
