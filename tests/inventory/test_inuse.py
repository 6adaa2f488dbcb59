"""In-use detection with real child processes: a memory-mapped file, files on a command line."""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modelward.inventory import inuse
from modelward.inventory.inuse import files_in_use
from tests.workcount import Calls

BACKENDS = ["proc", "psutil"] if sys.platform.startswith("linux") else ["psutil"]

MAPPER = """
import mmap, os, sys, time
with open(os.environ["MW_MAP"], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
print("ready", flush=True)
time.sleep(60)
"""
SLEEPER = "import time; print('ready', flush=True); time.sleep(60)"


def start(argv: list[str], **kw: object) -> subprocess.Popen[str]:
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, **kw)  # type: ignore[call-overload]
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p  # type: ignore[no-any-return]


@pytest.fixture()
def children() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.kill()
        p.wait()
        if p.stdout is not None:
            p.stdout.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_mapped_file(
    tmp_path: Path, children: list[subprocess.Popen[str]], backend: str
) -> None:
    model = tmp_path / "weights.gguf"
    model.write_bytes(b"GGUF" + bytes(8192))
    env = {**os.environ, "MW_MAP": str(model)}  # not on the command line: only mapped
    p = start([sys.executable, "-c", MAPPER], env=env)
    children.append(p)
    used = files_in_use(backend=backend)
    path = os.path.realpath(model)
    assert path in used
    assert p.pid in used.pids(path)
    if backend == "proc":  # also by inode, whatever path the process sees
        assert p.pid in used.pids("/elsewhere", model.stat())
    assert used.complete and used.processes > 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_files_named_on_the_command_line(
    tmp_path: Path, children: list[subprocess.Popen[str]], backend: str
) -> None:
    (tmp_path / "a.gguf").write_bytes(b"GGUF")
    (tmp_path / "b.bin").write_bytes(b"x")
    (tmp_path / "link.bin").symlink_to("b.bin")
    os.mkfifo(tmp_path / "fifo")
    argv = [sys.executable, "-c", SLEEPER, "--model=a.gguf", "link.bin", str(tmp_path / "fifo")]
    argv += ["-m", "missing.gguf", "--flag"]
    p = start(argv, cwd=tmp_path)
    children.append(p)
    used = files_in_use(backend=backend)
    for name in ("a.gguf", "b.bin"):  # relative to the process's folder, links resolved
        assert p.pid in used.pids(os.path.realpath(tmp_path / name)), name
    assert os.path.realpath(tmp_path / "fifo") not in used  # never a FIFO
    assert os.path.realpath(tmp_path / "link.bin") == os.path.realpath(tmp_path / "b.bin")


@pytest.mark.parametrize("backend", BACKENDS)
def test_own_process_excluded_unless_asked(tmp_path: Path, backend: str) -> None:
    f = tmp_path / "held.bin"
    f.write_bytes(b"x")
    with open(f, "rb"):
        path = os.path.realpath(f)
        assert path not in files_in_use(backend=backend)
        assert os.getpid() in files_in_use(backend=backend, exclude_pids=()).pids(path)


def test_deadline_bounds_the_walk() -> None:
    used = files_in_use(deadline=0.0)
    assert not used.complete


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_proc_walk_reads_little_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    # Speed is benchmarks/inventory_bench.py's (section processes, /proc against psutil); here:
    # the walk completes (a 60 s deadline only guards against a hang) and reads a process's
    # cmdline and maps, lists its fds and reads each link once; never smaps or every fdinfo.
    opened: list[str] = []
    listed: dict[str, int] = {}
    real_open, real_listdir = builtins.open, os.listdir

    def counted_open(path: str, *args: Any, **kw: Any) -> Any:
        opened.append(path)
        return real_open(path, *args, **kw)

    def counted_listdir(path: str) -> list[str]:
        names = real_listdir(path)
        listed[path] = len(names)
        return names

    monkeypatch.setattr(inuse, "open", counted_open, raising=False)
    monkeypatch.setattr(os, "listdir", counted_listdir)
    calls = Calls(monkeypatch)
    calls.patch(os, "readlink")
    used = files_in_use(backend="proc", deadline=60.0)
    assert used.complete and used.processes > 1
    pids = sum(1 for n in real_listdir("/proc") if n.isdigit())
    files = Counter(p.rsplit("/", 1)[-1] for p in opened)
    assert set(files) == {"cmdline", "maps"}
    assert files["cmdline"] <= listed["/proc"] and files["maps"] == used.processes
    assert used.processes <= max(listed["/proc"], pids)
    fd_dirs = {p: n for p, n in listed.items() if p.endswith("/fd")}
    assert len(listed) == 1 + len(fd_dirs) and len(fd_dirs) <= used.processes
    assert calls["readlink"] <= sum(fd_dirs.values()) + used.processes  # each fd and the cwd


def test_unknown_backend() -> None:
    with pytest.raises(ValueError):
        files_in_use(backend="nope")
