"""Who and where: the host section of an inventory, and the homes an inventory covers."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import socket
import sys
from pathlib import Path

from modelward import __version__
from modelward.models import HostInfo


def host_info() -> HostInfo:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    osname = {"darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    when = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return HostInfo(socket.gethostname(), osname, user, when, __version__)


def all_homes() -> list[Path]:
    """Every user's home that exists (for a run as root)."""
    homes: list[Path] = []
    try:
        import pwd

        for entry in pwd.getpwall():
            home = Path(entry.pw_dir)
            shell = entry.pw_shell or ""
            if entry.pw_uid != 0 and (entry.pw_uid < 1000 or shell.endswith(("nologin", "false"))):
                continue  # system accounts (their stores are found by the system-wide locations)
            if home.is_dir() and home not in homes:
                homes.append(home)
    except (ImportError, OSError):
        pass
    return homes or [Path.home()]


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def known_homes() -> dict[str, Path]:
    """Home folders by real path (to tell whether a root given on the command line is a home)."""
    out = {os.path.realpath(Path.home()): Path.home()}
    for h in all_homes():
        out[os.path.realpath(h)] = h
    return out
