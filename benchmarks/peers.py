"""The peer scanners' own virtual environment, created on demand in the benchmark cache.

picklescan, modelscan and modelaudit are installed from PyPI with pip into
``<cache>/peers-venv`` (never into the project's environment) and reused while present.
Telemetry is switched off through the variables their sources read:

- modelaudit (``modelaudit/telemetry.py``): ``PROMPTFOO_DISABLE_TELEMETRY``, ``NO_ANALYTICS``
  (``CI`` and ``IS_TESTING`` would also disable it but change its output mode, so they are not set);
- modelscan and picklescan send nothing (no network code besides picklescan's ``--url``/``-hf``);
- ``DO_NOT_TRACK``, ``HF_HUB_OFFLINE`` and ``HF_HUB_DISABLE_TELEMETRY`` for any library they pull in.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGES = ("picklescan", "modelscan", "modelaudit")

TELEMETRY_OFF = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "NO_ANALYTICS": "1",
    "DO_NOT_TRACK": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "NO_COLOR": "1",
}


@dataclass(frozen=True)
class Peers:
    """Where the peers live and which versions are installed."""

    venv: Path
    versions: dict[str, str]

    def exe(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    @staticmethod
    def env() -> dict[str, str]:
        """The environment to run a peer with (telemetry off, no project venv on PATH)."""
        env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
        env.update(TELEMETRY_OFF)
        return env


def _versions(venv: Path) -> dict[str, str]:
    code = (
        "import json, importlib.metadata as m; "
        f"print(json.dumps({{p: m.version(p) for p in {list(PACKAGES)!r}}}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    versions: dict[str, str] = json.loads(out.stdout)
    return versions


def ensure(cache: Path, reinstall: bool = False, log: Callable[[str], None] = print) -> Peers:
    """Create (or reuse) the peers' virtual environment under ``cache`` and return it.

    The venv counts as ready only once its ``.complete`` stamp exists, so an interrupted
    install is redone from scratch.
    """
    venv = cache / "peers-venv"
    stamp = venv / ".complete"
    if reinstall or (venv.exists() and not stamp.exists()):
        shutil.rmtree(venv, ignore_errors=True)
    if stamp.exists():
        try:
            return Peers(venv, _versions(venv))
        except (subprocess.CalledProcessError, OSError, ValueError):
            log(f"peers: {venv} is broken; recreating it")
            shutil.rmtree(venv, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    log(f"peers: creating {venv} and installing {' '.join(PACKAGES)} from PyPI (about 30 s)")
    # The base interpreter, not the project's venv, so nothing of the project leaks in.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    proc = subprocess.run([*pip, *PACKAGES], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install of the peers failed:\n{proc.stderr[-3000:]}")
    stamp.write_text("ok\n")
    return Peers(venv, _versions(venv))
