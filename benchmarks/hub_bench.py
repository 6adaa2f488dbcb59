"""Times the model hub against the speed targets of issue 5 (download, concurrent snapshots, ingest).

Run from the repository with the project's dev install active::

    python benchmarks/hub_bench.py             # everything (about 3 minutes; +30 s the first time)
    python benchmarks/hub_bench.py --quick     # fewer repetitions, 5 concurrent snapshots
    python benchmarks/hub_bench.py --only download --only ingest --strict

Targets (issue 5, "Speed"):

* download of a 1 GB blob over loopback from a real uvicorn process running the hub >= 70% of the
  same file served by a plain static file server (``python -m http.server``) in the same run;
* 20 concurrent ``snapshot_download`` of a 200 MB model complete with every byte right;
* upload ingest (hash + store) >= 70% of ``openssl dgst -sha256`` on the same file in the same run.

Every ratio compares figures of the same run; repetitions are interleaved between the hub and its
peer so that drift of this noisy shared VM hits both alike. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import http.client
import importlib.util
import json
import logging
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ADMIN_TOKEN = "mw_bench-admin-token-0123456789abcdefghijklmnopqr"
BLOB_REPO = "bench/blob-1g"
MODEL_REPO = "bench/model-200m"
BENCH_ROUTE = "/_bench/blobs/{digest}"
MIB = 1 << 20
TARGET_RATIO = 0.70
SECTIONS = ("ingest", "download", "snapshot")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def gbps(nbytes: int, seconds: float) -> float:
    return nbytes / seconds / 1e9 if seconds > 0 else float("inf")


# --------------------------------------------------------------------------- test data
def sha256_file(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def random_file(path: Path, size: int) -> None:
    """``size`` random bytes (os.urandom: incompressible, like model weights)."""
    if path.exists() and path.stat().st_size == size:
        return
    log(f"writing {size / MIB:.0f} MiB of random bytes to {path}")
    tmp = path.with_suffix(".part")
    with tmp.open("wb") as fh:
        left = size
        while left:
            n = min(left, 16 * MIB)
            fh.write(os.urandom(n))
            left -= n
    tmp.rename(path)


def model_dir(root: Path, weights_size: int) -> Path:
    """A Hugging Face model folder: one big safetensors, config, tokenizer files, card."""
    d = root / f"model-{weights_size // MIB}m"
    st = d / "model.safetensors"
    if (d / "README.md").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    # A real safetensors file: a JSON header of F16 tensors, then their (random) bytes.
    n_tensors = 8
    per = (weights_size - 4096) // n_tensors // 2 * 2
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    for i in range(n_tensors):
        header[f"model.layers.{i}.weight"] = {
            "dtype": "F16",
            "shape": [per // 2],
            "data_offsets": [i * per, (i + 1) * per],
        }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with st.open("wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        for _ in range(n_tensors):
            fh.write(os.urandom(per))
    (d / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "hidden_size": 512,
                "num_hidden_layers": n_tensors,
                "vocab_size": 32000,
            },
            indent=2,
        )
    )
    vocab = {f"tok{i}": i for i in range(32000)}
    (d / "tokenizer.json").write_text(
        json.dumps({"version": "1.0", "model": {"type": "BPE", "vocab": vocab, "merges": []}})
    )
    (d / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 2048}))
    (d / "generation_config.json").write_text(json.dumps({"max_new_tokens": 64}))
    (d / "README.md").write_text("---\nlicense: apache-2.0\n---\n# benchmark model\n")
    return d


@dataclass(frozen=True)
class Data:
    blob: Path
    blob_sha: str
    model: Path
    model_files: dict[str, str]  # relative path -> sha256


def prepare(cache: Path, blob_mib: int, model_mib: int) -> Data:
    cache.mkdir(parents=True, exist_ok=True)
    blob = cache / "serve" / f"blob-{blob_mib}m.bin"
    blob.parent.mkdir(exist_ok=True)
    random_file(blob, blob_mib * MIB)
    sums = cache / "sha256.json"
    known: dict[str, str] = json.loads(sums.read_text()) if sums.exists() else {}
    model = model_dir(cache, model_mib * MIB)
    files = [blob, *sorted(p for p in model.rglob("*") if p.is_file())]
    for p in files:
        key = f"{p.relative_to(cache)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
        if key not in known:
            known[key] = sha256_file(p)
    sums.write_text(json.dumps(known, indent=1))

    def digest(p: Path) -> str:
        return known[f"{p.relative_to(cache)}:{p.stat().st_size}:{p.stat().st_mtime_ns}"]

    return Data(
        blob,
        digest(blob),
        model,
        {p.relative_to(model).as_posix(): digest(p) for p in files[1:]},
    )


# --------------------------------------------------------------------------- measuring
@dataclass
class Figure:
    label: str
    nbytes: int
    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)  # CPU seconds of the serving process

    @property
    def cpu_per_gb(self) -> float | None:
        return statistics.median(self.cpus) / (self.nbytes / 1e9) if self.cpus else None

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def rate(self) -> float:
        return gbps(self.nbytes, self.median)

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "bytes": self.nbytes,
            "median_s": round(self.median, 4),
            "walls_s": [round(w, 4) for w in self.walls],
            "gb_per_s": round(self.rate, 3),
            "server_cpu_s_per_gb": None if self.cpu_per_gb is None else round(self.cpu_per_gb, 3),
        }


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds used so far by process ``pid`` (0 for None)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interleave(
    funcs: dict[str, Callable[[], int]],
    reps: int,
    section: str,
    warmup: int = 1,
    pids: dict[str, int] | None = None,
) -> dict[str, Figure]:
    """Run each function ``warmup`` times, then ``reps`` rounds over all; each returns bytes moved.

    ``pids`` names the serving process of a function: its CPU time per run is recorded too (a
    figure that contention from other work on the machine barely moves, unlike the wall time).
    """
    figs: dict[str, Figure] = {}
    for name, fn in funcs.items():
        for _ in range(warmup):
            figs[name] = Figure(name, fn())
    for i in range(reps):
        for name, fn in funcs.items():
            pid = (pids or {}).get(name)
            c = cpu_seconds(pid)
            t = time.perf_counter()
            n = fn()
            wall = time.perf_counter() - t
            fig = figs.setdefault(name, Figure(name, n))
            if n != fig.nbytes:
                raise RuntimeError(f"{name}: moved {n} bytes, expected {fig.nbytes}")
            fig.walls.append(wall)
            cpu = ""
            if pid is not None:
                fig.cpus.append(cpu_seconds(pid) - c)
                cpu = f", server CPU {fig.cpus[-1]:.2f} s"
            log(
                f"{section}: {name} run {i + 1}/{reps}: {wall:.3f} s = {gbps(n, wall):.2f} GB/s{cpu}"
            )
    return figs


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def urllib_get(url: str, headers: dict[str, str] | None = None, bufsize: int = 4 * MIB) -> int:
    """GET ``url`` reading the body into one reused buffer (discarded); the number of bytes."""
    buf = memoryview(bytearray(bufsize))
    n = 0
    with _OPENER.open(urllib.request.Request(url, headers=headers or {}), timeout=120) as r:
        while k := r.readinto(buf):
            n += k
    return n


# --------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@contextlib.contextmanager
def process(cmd: list[str], port: int, env: dict[str, str] | None = None) -> Iterator[int]:
    """Run a server until the ``with`` ends; yields its pid once it listens on ``port``."""
    proc = subprocess.Popen(
        cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_port(port, proc)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        if b"Traceback" in err:
            log(f"{cmd[:4]} stderr:\n{err.decode(errors='replace')[-3000:]}")


def hub_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELWARD_")}
    env.update(MODELWARD_DATA_DIR=str(data_dir), MODELWARD_ADMIN_TOKEN=ADMIN_TOKEN)
    return env


def serve_main(argv: list[str]) -> None:
    """``hub_bench.py _serve``: what ``modelward server`` runs, plus the benchmark's blob route.

    The app is ``create_app(settings)`` exactly as the CLI builds it, served by ``uvicorn.run`` with
    the CLI's defaults; the only addition is ``GET /_bench/blobs/{digest}`` calling
    ``streaming.blob_response``, so the blob path can be timed before (and beside) the protocol
    routes.
    """
    p = argparse.ArgumentParser(prog="hub_bench.py _serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--http", default="auto")
    p.add_argument("--loop", default="auto")
    a = p.parse_args(argv)
    import uvicorn
    from fastapi import Request
    from fastapi.responses import Response
    from starlette.routing import Route

    from modelward.server.app import create_app
    from modelward.server.settings import load_settings
    from modelward.server.streaming import blob_response

    app = create_app(load_settings(None))

    def bench_blob(request: Request) -> Response:
        blobs = request.app.state.blobs
        return blob_response(request, blobs, request.path_params["digest"])

    async def bench_route(request: Request) -> Response:
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(bench_blob, request)

    app.router.routes.insert(0, Route(BENCH_ROUTE, bench_route, methods=["GET", "HEAD"]))
    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", http=a.http, loop=a.loop)


def hub_server(
    data_dir: Path, port: int, http: str, loop: str
) -> contextlib.AbstractContextManager[int]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_serve", "--port", str(port)]
    return process([*cmd, "--http", http, "--loop", loop], port, hub_env(data_dir))


def static_server(folder: Path, port: int) -> contextlib.AbstractContextManager[int]:
    """The peer: ``python -m http.server`` (ThreadingHTTPServer + SimpleHTTPRequestHandler)."""
    cmd = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    return process([*cmd, "--directory", str(folder)], port)


# http.server whose handler sends file bodies with os.sendfile (socket.sendfile): no copy through
# user space, the way nginx serves static files. Not a target, a ceiling for this machine.
SENDFILE_SERVER = """import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    def copyfile(self, source, outputfile):
        self.connection.sendfile(source)
    def log_message(self, *args):
        pass
handler = functools.partial(Handler, directory=sys.argv[2])
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
"""


def sendfile_server(folder: Path, port: int) -> contextlib.AbstractContextManager[int]:
    return process([sys.executable, "-c", SENDFILE_SERVER, str(port), str(folder)], port)


def has_route(base: str, path: str, method: str) -> bool:
    """Whether the running hub's OpenAPI schema lists ``method path``."""
    with _OPENER.open(f"{base}/openapi.json", timeout=30) as r:
        schema = json.load(r)
    return method.lower() in schema.get("paths", {}).get(path, {})


# --------------------------------------------------------------------------- the benchmark
class _Count(logging.Handler):
    """Counts huggingface_hub's "Error while downloading ... Trying to resume" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.n = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Error while downloading" in record.getMessage():
            self.n += 1


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.results: dict[str, Any] = {"figures": {}}
        self.rows: list[tuple[str, str, str, str, str]] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.hf_routes = importlib.util.find_spec("modelward.server.api.hf") is not None

    def row(
        self, section: str, what: str, fig: Figure | None, ratio: str = "", note: str = ""
    ) -> None:
        if fig is None:
            self.rows.append((section, what, "-", "-", note))
            return
        spread = f"{min(fig.walls):.2f}-{max(fig.walls):.2f} s"
        if fig.cpu_per_gb is not None:
            note = f"server CPU {fig.cpu_per_gb:.2f} s/GB; {note}"
        self.rows.append(
            (section, what, f"{fig.rate:.2f} GB/s", spread, f"{ratio}  {note}".strip())
        )
        self.results["figures"][f"{section}/{what}"] = fig.as_dict()

    def target(
        self, name: str, value: float, goal: float, ok: bool, detail: str, *, figure: bool = False
    ) -> None:
        """A target of the issue, or (``figure``) a figure shown beside one, against the same goal
        for comparison but not the issue's target (printed as INFO, not counted by --strict)."""
        self.targets.append(
            {
                "target": name,
                "value": round(value, 3),
                "goal": goal,
                "pass": ok,
                "detail": detail,
                "figure": figure,
            }
        )

    # ---- ingest
    def ingest(self, data: Data, hub_dir: Path) -> None:
        from modelward.store.blobs import FsBlobStore

        size = data.blob.stat().st_size
        scratch = Path(tempfile.mkdtemp(prefix="ingest-", dir=hub_dir.parent))

        def openssl() -> int:
            out = subprocess.run(
                ["openssl", "dgst", "-sha256", str(data.blob)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            if data.blob_sha not in out:
                raise RuntimeError(f"openssl printed {out!r}, expected {data.blob_sha}")
            return size

        def hashlib_only() -> int:
            if sha256_file(data.blob) != data.blob_sha:
                raise RuntimeError("hashlib digest differs")
            return size

        def copy_fsync() -> int:
            """The disk's share: copy the file (4 MiB writes, preallocated) and fsync it, no hash."""
            dst = scratch / "copy"
            buf = memoryview(bytearray(4 * MIB))
            with data.blob.open("rb", buffering=0) as src, dst.open("wb", buffering=0) as out:
                os.posix_fallocate(out.fileno(), 0, size)
                while n := src.readinto(buf):
                    out.write(buf[:n])
                os.fsync(out.fileno())
            dst.unlink()
            return size

        def writer_upload() -> int:
            store = FsBlobStore(scratch, fsync="upload")
            store.delete(data.blob_sha)
            return ingest_file(store, data.blob, data.blob_sha)

        acked: list[float] = []

        def writer_revision() -> int:
            """blob_fsync=revision: the upload is acknowledged, then a revision makes it durable."""
            store = FsBlobStore(scratch, fsync="revision")
            store.delete(data.blob_sha)
            t = time.perf_counter()
            n = ingest_file(store, data.blob, data.blob_sha)
            acked.append(time.perf_counter() - t)
            store.make_durable([data.blob_sha])
            return n

        funcs = {
            "openssl dgst -sha256": openssl,
            "hashlib": hashlib_only,
            "copy + fsync": copy_fsync,
            "writer, blob_fsync=revision": writer_revision,
            "writer, blob_fsync=upload": writer_upload,
        }
        # The same writer on RAM (tmpfs: fsync costs nothing): what the code does when the disk
        # is not the limit. Not a target, an explanation.
        shm = Path("/dev/shm")
        ram = None
        if shm.is_dir() and shutil.disk_usage(shm).free > 3 * size:
            ram = Path(tempfile.mkdtemp(prefix="modelward-bench-", dir=shm))

            def writer_ram() -> int:
                store = FsBlobStore(ram, fsync="upload")
                store.delete(data.blob_sha)
                return ingest_file(store, data.blob, data.blob_sha)

            funcs["writer on tmpfs"] = writer_ram
        try:
            figs = interleave(funcs, self.args.reps, "ingest")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            if ram is not None:
                shutil.rmtree(ram, ignore_errors=True)
        peer = figs["openssl dgst -sha256"]
        self.row("ingest", peer.label, peer, "1.00", "peer: hash only, file in page cache")
        self.row(
            "ingest",
            "hashlib.file_digest",
            figs["hashlib"],
            f"{figs['hashlib'].rate / peer.rate:.2f}",
        )
        disk = figs["copy + fsync"]
        self.disk_ingest = disk
        self.row(
            "ingest",
            "copy + fsync, no hash (preallocated)",
            disk,
            f"{disk.rate / peer.rate:.2f}",
            "the disk's ceiling for a durable store",
        )
        durable = figs["writer, blob_fsync=revision"]
        ack = Figure(
            "FsBlobStore.writer(), blob_fsync=revision", size, acked[-len(durable.walls) :]
        )
        ratio = ack.rate / peer.rate
        self.row("ingest", ack.label, ack, f"{ratio:.2f}", "acknowledged: hash + write + publish")
        self.row(
            "ingest",
            "  + make_durable (the revision's fsync)",
            durable,
            f"{durable.rate / peer.rate:.2f}",
            f"durable: {durable.rate / disk.rate:.2f} of the disk's ceiling",
        )
        up = figs["writer, blob_fsync=upload"]
        self.row(
            "ingest",
            "FsBlobStore.writer(), blob_fsync=upload",
            up,
            f"{up.rate / peer.rate:.2f}",
            f"fsync before acknowledging: {up.rate / disk.rate:.2f} of the disk's ceiling",
        )
        if "writer on tmpfs" in figs:
            r = figs["writer on tmpfs"]
            self.row(
                "ingest",
                "FsBlobStore.writer() on tmpfs",
                r,
                f"{r.rate / peer.rate:.2f}",
                "RAM: no disk limit, not a target",
            )
        self.notes.append(
            f"ingest: the disk takes {disk.rate:.2f} GB/s for a durable copy without hashing "
            f"({disk.rate / peer.rate:.2f} of openssl): no durable ingest can beat that. "
            "blob_fsync=revision acknowledges an upload once it is hashed, written to the page "
            "cache and published atomically; the revision that references it waits for the disk"
        )
        self.target(
            "upload ingest (hash + store) >= 70% of openssl dgst -sha256 (FsBlobStore.writer, "
            "acknowledged)",
            ratio,
            TARGET_RATIO,
            ratio >= TARGET_RATIO,
            f"{ack.rate:.2f} vs {peer.rate:.2f} GB/s",
        )
        self.peer_ingest = peer
        # The hub's own store gets the blob (and the model) for the download sections.
        store = FsBlobStore(hub_dir / "blobs")
        ingest_file(store, data.blob, data.blob_sha)
        for rel, sha in data.model_files.items():
            ingest_file(store, data.model / rel, sha)

    def ingest_http(self, base: str, data: Data, hub_dir: Path, hub_pid: int) -> None:
        """PUT the 1 GiB blob to the hub (blob_fsync=revision, the default): acknowledged, and
        followed by the revision that makes it durable; then to a hub with blob_fsync=upload."""
        path = "/api/v1/hub/blobs/{sha256}"
        if not has_route(base, path, "put"):
            self.row("ingest", "PUT /api/v1/hub/blobs/{sha256}", None, "", "route not there yet")
            return
        from modelward.store.blobs import FsBlobStore

        size = data.blob.stat().st_size
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        revisions = iter(range(1_000_000))

        def put(url: str, blob_dir: Path) -> int:
            FsBlobStore(blob_dir).delete(data.blob_sha)  # the server's store: ingest again
            host, port = url.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), blocksize=4 * MIB)
            with data.blob.open("rb") as fh:
                conn.request(
                    "PUT",
                    f"/api/v1/hub/blobs/{data.blob_sha}",
                    body=fh,
                    headers={
                        **auth,
                        "Content-Length": str(size),
                        "Content-Type": "application/octet-stream",
                    },
                )
            r = conn.getresponse()
            body = r.read()
            conn.close()
            if r.status >= 300:
                raise RuntimeError(f"PUT answered {r.status}: {body[:500]!r}")
            return size

        def put_and_commit() -> int:
            """PUT, then record a revision of it: the revision fsyncs the blob before its row."""
            n = put(base, hub_dir / "blobs")
            doc = {"files": [{"path": "blob.bin", "sha256": data.blob_sha, "size": size}]}
            req = urllib.request.Request(
                f"{base}/api/v1/hub/repos/bench/ingest-{next(revisions)}/revisions",
                data=json.dumps(doc).encode(),
                headers={**auth, "Content-Type": "application/json"},
                method="POST",
            )
            with _OPENER.open(req, timeout=300) as r:
                r.read()
            return n

        up_dir = hub_dir.parent / "data-upload"
        up_port = free_port()
        up_base = f"http://127.0.0.1:{up_port}"
        env = {**hub_env(up_dir), "MODELWARD_BLOB_FSYNC": "upload"}
        cmd = [sys.executable, str(Path(__file__).resolve()), "_serve", "--port", str(up_port)]
        with process(
            [*cmd, "--http", self.args.http, "--loop", self.args.loop], up_port, env
        ) as up_pid:
            funcs = {
                "PUT, acknowledged": lambda: put(base, hub_dir / "blobs"),
                "PUT + revision": put_and_commit,
                "PUT, blob_fsync=upload": lambda: put(up_base, up_dir / "blobs"),
            }
            pids = {"PUT, acknowledged": hub_pid, "PUT + revision": hub_pid}
            pids["PUT, blob_fsync=upload"] = up_pid
            figs = interleave(funcs, self.args.reps, "ingest-http", pids=pids)
        shutil.rmtree(up_dir, ignore_errors=True)
        peer, disk = self.peer_ingest, self.disk_ingest
        ack = figs["PUT, acknowledged"]
        ratio = ack.rate / peer.rate
        self.row(
            "ingest",
            "PUT /api/v1/hub/blobs/{sha256}, blob_fsync=revision",
            ack,
            f"{ratio:.2f}",
            "acknowledged; over loopback, same openssl peer",
        )
        both = figs["PUT + revision"]
        self.row(
            "ingest",
            "  PUT + POST revisions (fsync, scan, record)",
            both,
            f"{both.rate / peer.rate:.2f}",
            f"durable: {both.rate / disk.rate:.2f} of the disk's ceiling",
        )
        up = figs["PUT, blob_fsync=upload"]
        self.row(
            "ingest",
            "PUT /api/v1/hub/blobs/{sha256}, blob_fsync=upload",
            up,
            f"{up.rate / peer.rate:.2f}",
            f"durable when acknowledged: {up.rate / disk.rate:.2f} of the disk's ceiling",
        )
        self.target(
            "HTTP PUT over loopback vs openssl dgst -sha256 (acknowledged, blob_fsync=revision)",
            ratio,
            TARGET_RATIO,
            ratio >= TARGET_RATIO,
            f"{ack.rate:.2f} GB/s, server CPU {ack.cpu_per_gb or 0:.2f} s/GB: the ingest plus the "
            "transport (the client's send, the loop's receive, the kernel's loopback copies) on "
            "the same 2 cores; not the ingest target (hash + store) above",
            figure=True,
        )

    # ---- download
    def download(self, base: str, pids: dict[str, int], peers: dict[str, str], data: Data) -> None:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        direct = base + BENCH_ROUTE.format(digest=data.blob_sha)
        resolve = f"{base}/{BLOB_REPO}/resolve/main/{data.blob.name}"
        funcs: dict[str, Callable[[], int]] = {
            "http.server": lambda: urllib_get(f"{peers['http.server']}/{data.blob.name}"),
            "http.server + sendfile": lambda: urllib_get(f"{peers['sendfile']}/{data.blob.name}"),
            "hub blob_response": lambda: urllib_get(direct, auth),
        }
        who = {"http.server": pids["http.server"], "http.server + sendfile": pids["sendfile"]}
        who["hub blob_response"] = pids["hub"]
        if self.hf_routes:
            funcs["hub HF /resolve"] = lambda: urllib_get(resolve, auth)
            who["hub HF /resolve"] = pids["hub"]
        # The first hub request of a fresh process re-hashes the blob (nothing verified it yet):
        # the warm-up round takes it, like the first download after a server restart would.
        figs = interleave(funcs, self.args.reps, "download", pids=who)
        peer = figs["http.server"]
        self.row("download", "http.server", peer, "1.00", "peer (python -m http.server)")
        for name, fig in figs.items():
            if name == "http.server":
                continue
            ratio = fig.rate / peer.rate
            note = "ceiling, not a target" if "sendfile" in name else "vs http.server"
            self.row("download", name, fig, f"{ratio:.2f}", note)
        name = "hub HF /resolve" if self.hf_routes else "hub blob_response"
        ratio = figs[name].rate / peer.rate
        self.target(
            f"download >= 70% of http.server ({name})",
            ratio,
            TARGET_RATIO,
            ratio >= TARGET_RATIO,
            f"{figs[name].rate:.2f} vs {peer.rate:.2f} GB/s",
        )
        if self.hf_routes:
            self.hf_download(base, data)

    def hf_download(self, base: str, data: Data) -> None:
        from huggingface_hub import hf_hub_download

        size = data.blob.stat().st_size
        with tempfile.TemporaryDirectory(dir=self.args.cache) as tmp:
            t = time.perf_counter()
            path = hf_hub_download(
                BLOB_REPO, data.blob.name, cache_dir=tmp, endpoint=base, token=ADMIN_TOKEN
            )
            wall = time.perf_counter() - t
            ok = sha256_file(Path(str(path))) == data.blob_sha
        fig = Figure("hf_hub_download (writes the file)", size, [wall])
        self.row("download", fig.label, fig, "", "sha256 " + ("ok" if ok else "WRONG"))
        if not ok:
            self.target("hf_hub_download bytes right", 0, 1, False, "sha256 mismatch")

    # ---- snapshot
    def snapshot(self, base: str, data: Data) -> None:
        from huggingface_hub import snapshot_download

        n = self.args.clients
        total = sum((data.model / rel).stat().st_size for rel in data.model_files)
        root = Path(tempfile.mkdtemp(prefix="snapshots-", dir=self.args.cache))
        try:

            def one(i: int) -> str:
                return str(
                    snapshot_download(
                        MODEL_REPO, cache_dir=root / str(i), endpoint=base, token=ADMIN_TOKEN
                    )
                )

            retries = _Count()
            hf_log = logging.getLogger("huggingface_hub")
            hf_log.addHandler(retries)
            t = time.perf_counter()
            try:
                with concurrent.futures.ThreadPoolExecutor(n) as pool:
                    folders = list(pool.map(one, range(n)))
            finally:
                wall = time.perf_counter() - t
                hf_log.removeHandler(retries)
            log(f"snapshot: {n} x snapshot_download in {wall:.2f} s; checking every byte")
            bad = []
            for folder in folders:
                got = {
                    p.relative_to(folder).as_posix(): sha256_file(p)
                    for p in Path(folder).rglob("*")
                    if p.is_file()
                }
                if got != data.model_files:
                    bad.append(folder)
        finally:
            shutil.rmtree(root, ignore_errors=True)
        fig = Figure(f"{n} x snapshot_download", total * n, [wall])
        self.row(
            "snapshot",
            fig.label,
            fig,
            "",
            f"{wall:.1f} s, {n * total / 1e6:.0f} MB, bytes {'right' if not bad else 'WRONG'}, "
            f"{retries.n} client retries (resumed downloads)",
        )
        self.target(
            f"{n} concurrent snapshot_download, every byte right",
            float(len(bad)),
            0,
            not bad,
            f"{len(bad)} of {n} snapshots differ; {wall:.1f} s, {fig.rate:.2f} GB/s aggregate",
        )

    # ---- driver
    def publish(self, data: Data, hub_dir: Path) -> None:
        from modelward.hub.service import NewFile
        from modelward.server.app import build_state
        from modelward.server.settings import ServerSettings

        state = build_state(ServerSettings(data_dir=hub_dir, admin_token=ADMIN_TOKEN))
        hub = state["hub"]
        try:
            for repo, files in (
                (BLOB_REPO, {data.blob.name: (data.blob, data.blob_sha)}),
                (MODEL_REPO, {r: (data.model / r, s) for r, s in data.model_files.items()}),
            ):
                new = []
                for rel, (p, sha) in files.items():
                    hub.register_blob(sha, p.stat().st_size)
                    new.append(NewFile(rel, sha, p.stat().st_size))
                rev = hub.create_revision(
                    repo, new, {"kind": "upload", "uploader": "bench"}, "bench"
                )
                hub.approve(repo, rev.commit, "bench", "benchmark", override=True)
        finally:
            state["db"].dispose()

    def run(self) -> int:
        a = self.args
        data = prepare(a.cache, a.blob_mib, a.model_mib)
        only = set(a.only or SECTIONS)
        work = Path(tempfile.mkdtemp(prefix="hub-", dir=a.cache))
        hub_dir = work / "data"
        try:
            if "ingest" in only:
                self.ingest(data, hub_dir)
            else:
                from modelward.store.blobs import FsBlobStore

                store = FsBlobStore(hub_dir / "blobs")
                ingest_file(store, data.blob, data.blob_sha)
                for rel, sha in data.model_files.items():
                    ingest_file(store, data.model / rel, sha)
            if only - {"ingest"}:  # the download sections read published repos; ingest does not
                log("publishing the benchmark repos")
                self.publish(data, hub_dir)
            port, peer_port, sf_port = free_port(), free_port(), free_port()
            base = f"http://127.0.0.1:{port}"
            peers = {
                "http.server": f"http://127.0.0.1:{peer_port}",
                "sendfile": f"http://127.0.0.1:{sf_port}",
            }
            with (
                hub_server(hub_dir, port, a.http, a.loop) as hub_pid,
                static_server(data.blob.parent, peer_port) as peer_pid,
                sendfile_server(data.blob.parent, sf_port) as sf_pid,
            ):
                pids = {"hub": hub_pid, "http.server": peer_pid, "sendfile": sf_pid}
                if "download" in only:
                    self.download(base, pids, peers, data)
                if "ingest" in only:
                    self.ingest_http(base, data, hub_dir, hub_pid)
                if "snapshot" in only:
                    if self.hf_routes:
                        self.snapshot(base, data)
                    else:
                        self.row(
                            "snapshot", "snapshot_download", None, "", "HF routes not there yet"
                        )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return self.report()

    def report(self) -> int:
        a = self.args
        widths = [max(len(r[i]) for r in self.rows) for i in range(4)] if self.rows else [0] * 4
        impl = versions()
        http = a.http if a.http != "auto" else ("httptools" if "httptools" in impl else "h11")
        loop = a.loop if a.loop != "auto" else ("uvloop" if "uvloop" in impl else "asyncio")
        print(
            f"\nmodelward hub benchmark ({platform.node()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}; "
            f"uvicorn {impl.get('uvicorn')} --http {http} --loop {loop})"
        )
        print(
            f"{'section':<{widths[0]}}  {'what':<{widths[1]}}  {'rate':>{widths[2]}}  {'spread':<{widths[3]}}  ratio / note"
        )
        for r in self.rows:
            print(
                f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]:<{widths[3]}}  {r[4]}"
            )
        print("\ntargets (issue 5, Speed):")
        failed = False
        for t in self.targets:
            mark = "INFO" if t.get("figure") else "PASS" if t["pass"] else "FAIL"
            failed |= not t["pass"] and not t.get("figure")
            print(f"  {mark}  {t['target']}: {t['value']:.2f} (goal {t['goal']}) {t['detail']}")
        for note in self.notes:
            print(f"  note: {note}")
        self.results.update(
            when=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            args={k: str(v) for k, v in vars(a).items()},
            python=sys.version.split()[0],
            targets=self.targets,
            versions=versions(),
        )
        out = a.json or HERE / "out" / f"hub-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(self.results, indent=2))
        log(f"figures written to {out}")
        return 1 if failed and a.strict else 0


def ingest_file(store: Any, path: Path, sha: str) -> int:
    """Stream ``path`` into ``store`` the way an upload does (its size announced, 4 MiB reads)."""
    buf = memoryview(bytearray(4 * MIB))
    with store.writer(size_hint=path.stat().st_size) as w, path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            w.write(buf[:n])
        info = w.commit(sha)
    return int(info.size)


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in (
        "uvicorn",
        "starlette",
        "fastapi",
        "httptools",
        "uvloop",
        "h11",
        "huggingface_hub",
        "httpx",
    ):
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    out["openssl"] = subprocess.run(
        ["openssl", "version"], capture_output=True, text=True
    ).stdout.strip()
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_serve"]:
        serve_main(argv[1:])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="2 repetitions, 5 concurrent snapshots")
    p.add_argument("--only", action="append", choices=SECTIONS, help="run some sections")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 3)")
    p.add_argument("--clients", type=int, default=None, help="concurrent snapshot_download (20)")
    p.add_argument("--blob-mib", type=int, default=1024, help="download/ingest file size (1024)")
    p.add_argument("--model-mib", type=int, default=200, help="snapshot model size (200)")
    p.add_argument(
        "--http",
        default="auto",
        choices=("auto", "h11", "httptools"),
        help="uvicorn --http (auto: httptools when installed)",
    )
    p.add_argument(
        "--loop",
        default="auto",
        choices=("auto", "asyncio", "uvloop"),
        help="uvicorn --loop (auto: uvloop when installed)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path(
            os.environ.get("MODELWARD_BENCH_CACHE", Path.home() / ".cache" / "modelward-bench")
        )
        / "hub",
    )
    p.add_argument("--json", type=Path, default=None, help="where to write the figures")
    p.add_argument("--strict", action="store_true", help="exit 1 when a target fails")
    a = p.parse_args(argv)
    a.reps = a.reps or (2 if a.quick else 3)
    a.clients = a.clients or (5 if a.quick else 20)
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.pop("HF_HUB_OFFLINE", None)
    return Bench(a).run()


if __name__ == "__main__":
    sys.exit(main())
