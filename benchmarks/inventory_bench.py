"""Times ``modelward inventory`` against issue 3's targets: walk speed, cached re-runs, cores, memory.

Issue 3 ("Speed and memory"), in one run:

(a) on the 300,000-file tree of ``walk_bench.py`` (built by it, reused): the discovery walk at
    least half as fast as ``find ROOT -type f -size +1M`` (interleaved rounds, medians);
(b) on a home holding ~20 GB of models (``~/.cache/modelward-bench/inventory-home-v1-<GB>g``:
    sparse GGUF and safetensors files with real headers from ``corpus.py``, small loose models,
    and a fake Ollama store and Hugging Face cache from ``tests/inventory/homes.py``):
    ``modelward inventory HOME --format json -o /dev/null --no-processes`` with ``HOME`` pointing
    there (so its stores are read) and ``MODELWARD_CACHE_DIR`` in a temporary folder:
    - the first run hashes every loose file (MB/s from the cache's rows), once with the default
      jobs and once with ``--jobs 1``: both cores are used when the CPU time is near twice the
      wall time and ``--jobs 1`` is clearly slower;
    - a second run over the unchanged tree finishes in under 2 s and hashes nothing (the cache's
      row count and newest ``hashed_at`` do not change; 20 GB cannot be read in 2 s anyway);
    - peak RSS under 200 MB: ``wait4``'s ``ru_maxrss`` (the largest process, workers included)
      and the sampled sum over the process tree (an upper bound: shared pages count twice).

Two sections time what unit tests once asserted in seconds (the tests now bound the work by
counts: file-system calls per repo, files read per process):

(c) ``stores``: the Hugging Face store parsing a hub cache of 10,000 repos (1,000 with a weights
    link), against ``find CACHE`` and an in-process ``os.walk`` of the same cache;
(d) ``processes``: ``files_in_use`` reading ``/proc`` against its ``psutil`` backend (the peer:
    ``memory_maps()`` and ``open_files()``), on whatever runs on this machine.

Prints a table with PASS/MISS per target (``info`` for figures without a target) and writes JSON
to ``benchmarks/out/``.

    python benchmarks/inventory_bench.py                # ~5 min (+ building the trees once)
    python benchmarks/inventory_bench.py --gb 4 --files 50000 --reps 1   # quick look
    python benchmarks/inventory_bench.py --only stores --only processes  # under a minute
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if __package__ in (None, ""):
    sys.path.insert(0, str(ROOT))

from benchmarks import corpus  # noqa: E402
from benchmarks.walk_bench import build_tree, cache_dir, time_cmd, time_walk  # noqa: E402

MB = 1_000_000
GB = 1_000_000_000

# A tiny launcher between this process and the measured one (see scan_bench.py): wall time,
# wait4's rusage (CPU of the command and its waited-for workers; the largest process's RSS).
LAUNCHER = """import os, sys, time
t = time.perf_counter()
pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t
with open(sys.argv[1], "w") as f:
    f.write(f"{wall} {ru.ru_utime + ru.ru_stime} {ru.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


@dataclass
class Run:
    wall: float
    cpu: float
    maxrss_mb: float
    tree_rss_mb: float
    rc: int
    rows: int = 0
    hashed_bytes: int = 0
    newest_hash: int = 0


def run(cmd: list[str], env: dict[str, str], cache: Path) -> Run:
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        res = Path(tmp) / "rusage"
        proc = subprocess.Popen(
            [sys.executable, "-S", "-c", LAUNCHER, str(res), *cmd],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:  # sum of RSS over the launched tree, every 50 ms
            nonlocal peak
            try:
                top = psutil.Process(proc.pid)
            except psutil.Error:
                return
            while not done.is_set():
                total = 0
                try:
                    for p in top.children(recursive=True):
                        with contextlib.suppress(psutil.Error):
                            total += p.memory_info().rss
                except psutil.Error:
                    return
                peak = max(peak, total)
                done.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, err = proc.communicate()
        done.set()
        sampler.join()
        wall_s, cpu_s, rss_s, rc_s = res.read_text().split()
    if int(rc_s) not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({rc_s}):\n{err.decode(errors='replace')}")
    r = Run(float(wall_s), float(cpu_s), int(rss_s) / 1024, peak / (1 << 20), int(rc_s))
    r.rows, r.hashed_bytes, r.newest_hash = cache_rows(cache)
    return r


def cache_rows(cache: Path) -> tuple[int, int, int]:
    db = cache / "hashes.sqlite"
    if not db.exists():
        return 0, 0, 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        n, size, newest = con.execute(
            "SELECT count(*), coalesce(sum(size), 0), coalesce(max(hashed_at), 0) FROM hashes"
        ).fetchone()
    finally:
        con.close()
    return int(n), int(size), int(newest)


# ---------------------------------------------------------------------------- the model home
def build_home(home: Path, target: int) -> dict[str, Any]:
    """Sparse multi-GB models (real headers), small loose models, an Ollama store and an HF cache."""
    from tests.inventory.homes import make_hf_cache, make_ollama, tiny_gguf, tiny_safetensors

    tmp = home.with_name(home.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    make_ollama(tmp / ".ollama" / "models", cloud=False, orphan=False, partial=False, evil=False)
    make_hf_cache(tmp / ".cache" / "huggingface" / "hub", hostile=False)
    big = tmp / "models"
    big.mkdir()
    total, n = 0, 0
    while total < target:  # ~2 GiB each, alternating formats, in a few folders
        sub = big / f"family-{n % 4}"
        sub.mkdir(exist_ok=True)
        if n % 2 == 0:
            path = sub / f"llama-{n:02d}.Q4_K_M.gguf"
            corpus.write_gguf(path, 2 * corpus.GIB)
        else:
            path = sub / f"llama-{n:02d}.safetensors"
            corpus.write_safetensors(path, 2 * corpus.GIB)
        total += path.stat().st_size
        n += 1
    small = tmp / "projects"
    for i in range(100):  # small loose models in project folders
        d = small / f"p{i:03d}" / "checkpoints"
        d.mkdir(parents=True)
        tiny_gguf(d / "tiny.gguf", name=f"tiny-{i}")
        (d / "adapter.safetensors").write_bytes(tiny_safetensors())
    tmp.rename(home)
    time.sleep(2.5)  # older than the hash cache's racy-clean window
    return {"big_files": n, "big_bytes": total, "small_files": 200}


def tree_bytes(home: Path) -> int:
    return sum(
        os.lstat(os.path.join(d, f)).st_size
        for d, _, files in os.walk(home)
        for f in files
        if not os.path.islink(os.path.join(d, f))
    )


def read_all(home: Path) -> float:
    """Read every regular file once in 1 MiB chunks (no hashing): the I/O floor, for reference."""
    buf = bytearray(1 << 20)
    t = time.perf_counter()
    for d, _, files in os.walk(home):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p):
                continue
            with open(p, "rb", buffering=0) as fh:
                while fh.readinto(buf):
                    pass
    return time.perf_counter() - t


# ---------------------------------------------------------------------------- sections
def bench_walk(cache: Path, n_files: int, reps: int) -> dict[str, Any]:
    root = cache / f"walk-tree-v2-n{n_files}"
    if not root.is_dir():
        log(f"building {root} (walk_bench's tree) ...")
        build_tree(root, n_files)
    find = ["find", str(root), "-type", "f", "-size", "+1M"]
    time_cmd(find)
    time_walk(root)  # warm-up
    finds: list[float] = []
    walks: list[float] = []
    found = 0
    for i in range(reps):
        log(f"walk round {i + 1}/{reps}")
        finds.append(time_cmd(find))
        wall, found, _ = time_walk(root)
        walks.append(wall)
    f, w = statistics.median(finds), statistics.median(walks)
    return {
        "tree": str(root),
        "files": n_files,
        "find_s": finds,
        "walk_s": walks,
        "find_median_s": f,
        "walk_median_s": w,
        "candidates": found,
        "ratio": f / w,
    }


def bench_inventory(cache: Path, target_gb: float, reps: int) -> dict[str, Any]:
    home = cache / f"inventory-home-v1-{target_gb:g}g"
    built: dict[str, Any] = {}
    if not home.is_dir():
        log(f"building {home} ...")
        built = build_home(home, int(target_gb * GB))
    exe = str(Path(sys.executable).with_name("modelward"))
    base = [exe, "inventory", str(home), "--format", "json", "-o", "/dev/null", "--no-processes"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OLLAMA_", "HF_"))}
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
    env.pop("XDG_CACHE_HOME", None)
    out: dict[str, Any] = {"home": str(home), "tree_bytes": tree_bytes(home), **built}
    log("reading every file once (page cache as even as it gets; plain read speed) ...")
    out["plain_read_s"] = read_all(home)
    with tempfile.TemporaryDirectory(prefix="mw-bench-") as tmp:
        for jobs in (0, 1):
            c = Path(tmp) / f"cache-j{jobs}"
            log(f"first run, --jobs {jobs or 'auto'} (hashes everything) ...")
            first = run([*base, "--jobs", str(jobs)], {**env, "MODELWARD_CACHE_DIR": str(c)}, c)
            out[f"first_j{jobs}"] = asdict(first)
            if jobs == 0:
                seconds = []
                for i in range(reps):
                    log(f"second run {i + 1}/{reps} (unchanged tree) ...")
                    again = run(base, {**env, "MODELWARD_CACHE_DIR": str(c)}, c)
                    seconds.append(asdict(again))
                out["second"] = seconds
        # The 20 GB tree does not fit in this box's page cache, so every first run above also
        # pays the kernel's page-cache fill of sparse holes. Hashing itself is measured on a
        # part that fits (read twice first), interleaving --jobs 0 and --jobs 1.
        # Six equal files (two families): three per core, so two cores can give up to 2x.
        parts = [home / "models" / "family-0", home / "models" / "family-1"]
        for part in parts:
            read_all(part)
            read_all(part)
        part = parts[0]
        cmd = [
            exe,
            "inventory",
            *map(str, parts),
            "-f",
            "json",
            "-o",
            "/dev/null",
            "--no-processes",
        ]
        warm: dict[str, list[dict[str, Any]]] = {"j0": [], "j1": []}
        for i in range(reps):
            for jobs in (0, 1):
                c = Path(tmp) / f"warm-{i}-j{jobs}"
                log(f"warm first run {i + 1}/{reps} of {part.name}, --jobs {jobs or 'auto'} ...")
                r = run([*cmd, "--jobs", str(jobs)], {**env, "MODELWARD_CACHE_DIR": str(c)}, c)
                warm[f"j{jobs}"].append(asdict(r))
        out["warm"] = {"root": ", ".join(map(str, parts)), **warm}
    return out


def build_hf_cache(root: Path, repos: int) -> None:
    """A hub cache of ``repos`` repos (refs, an empty snapshot; every tenth links a blob)."""
    commit = "a" * 40
    blob = "c" * 64
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for i in range(repos):
        repo = tmp / f"models--org--m{i}"
        (repo / "refs").mkdir(parents=True)
        (repo / "refs" / "main").write_text(commit)
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "blobs").mkdir()
        if i % 10 == 0:
            (repo / "blobs" / blob).write_bytes(b"x")
            os.symlink(f"../../blobs/{blob}", repo / "snapshots" / commit / "model.safetensors")
    tmp.rename(root)


def timed(fn: Any) -> tuple[float, float, Any]:
    """Wall and CPU seconds of ``fn()`` in this process, and its result."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w, time.process_time() - c, out


def _os_walk(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def bench_stores(cache: Path, repos: int, reps: int) -> dict[str, Any]:
    from modelward.inventory.stores.huggingface import STORE

    root = cache / f"hf-cache-v1-n{repos}"
    if not root.is_dir():
        log(f"building {root} ...")
        build_hf_cache(root, repos)
    find = ["find", str(root)]
    time_cmd(find)
    items = len(STORE.collect(root).items)  # warm-up (and the lazy imports)
    rounds: dict[str, list[tuple[float, float]]] = {"collect": [], "os.walk": [], "find": []}
    for i in range(reps):
        log(f"stores round {i + 1}/{reps}")
        w, c, _ = timed(lambda: STORE.collect(root))
        rounds["collect"].append((w, c))
        w, c, _ = timed(lambda: _os_walk(root))
        rounds["os.walk"].append((w, c))
        rounds["find"].append((time_cmd(find), 0.0))
    med = {k: statistics.median(w for w, _ in v) for k, v in rounds.items()}
    return {
        "cache": str(root),
        "repos": repos,
        "items": items,
        "rounds": rounds,
        "median_s": med,
        "collect_cpu_median_s": statistics.median(c for _, c in rounds["collect"]),
    }


def bench_processes(reps: int) -> dict[str, Any]:
    from modelward.inventory.inuse import files_in_use

    files_in_use(backend="psutil", deadline=60.0)  # warm-up (and psutil's import)
    rounds: dict[str, list[tuple[float, float]]] = {"proc": [], "psutil": []}
    seen: dict[str, int] = {}
    for i in range(reps):
        log(f"processes round {i + 1}/{reps}")
        for backend in ("proc", "psutil"):
            w, c, used = timed(lambda b=backend: files_in_use(backend=b, deadline=60.0))
            rounds[backend].append((w, c))
            seen[backend] = used.processes
    med = {k: statistics.median(w for w, _ in v) for k, v in rounds.items()}
    return {"rounds": rounds, "median_s": med, "processes": seen}


# ---------------------------------------------------------------------------- report
def report(
    walk: dict[str, Any] | None,
    inv: dict[str, Any] | None,
    stores: dict[str, Any] | None = None,
    procs: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def add(target: str, value: str, ok: bool, info: bool = False) -> None:
        rows.append({"target": target, "measured": value, "pass": ok, "info": info})

    if stores:
        m = stores["median_s"]
        add(
            f"(HF cache of {stores['repos']:,} repos: store collect vs find and os.walk)",
            f"collect {m['collect']:.2f} s (CPU {stores['collect_cpu_median_s']:.2f} s, "
            f"{stores['items']:,} items), find {m['find']:.2f} s, os.walk {m['os.walk']:.2f} s: "
            f"collect takes {m['collect'] / m['find']:.1f}x find's time",
            True,
            info=True,
        )
    if procs:
        m = procs["median_s"]
        add(
            "(files in use: /proc backend vs psutil backend)",
            f"proc {m['proc']:.3f} s, psutil {m['psutil']:.3f} s over "
            f"{procs['processes'].get('proc', 0)} processes: proc {m['psutil'] / m['proc']:.1f}x "
            "as fast",
            True,
            info=True,
        )

    if walk:
        add(
            f"walk >= 0.5x find -size +1M speed ({walk['files']:,} files)",
            f"{walk['ratio']:.2f}x (walk {walk['walk_median_s']:.2f} s, "
            f"find {walk['find_median_s']:.2f} s)",
            walk["ratio"] >= 0.5,
        )
    if inv:
        f0, f1, sec = inv["first_j0"], inv["first_j1"], inv["second"]
        mbs = f0["hashed_bytes"] / MB / f0["wall"]
        add(
            "(reference: plain 1 MiB reads of the whole tree, one process)",
            f"{inv['plain_read_s']:.1f} s, {inv['tree_bytes'] / MB / inv['plain_read_s']:.0f} MB/s",
            True,
        )
        add(
            f"first run hashes the loose files ({inv['tree_bytes'] / GB:.1f} GB tree)",
            f"{f0['wall']:.1f} s, {f0['hashed_bytes'] / GB:.1f} GB hashed in {f0['rows']} files, "
            f"{mbs:.0f} MB/s",
            f0["rows"] > 0 and f0["hashed_bytes"] >= 0.95 * inv["tree_bytes"],
        )
        cores = f0["cpu"] / f0["wall"]
        add(
            "(20 GB cold: --jobs auto vs --jobs 1)",
            f"{f0['wall']:.1f} s vs {f1['wall']:.1f} s; CPU/wall {cores:.2f} vs "
            f"{f1['cpu'] / f1['wall']:.2f} (page-cache fill of sparse holes dominates)",
            True,
        )
        w0, w1 = inv["warm"]["j0"], inv["warm"]["j1"]
        t0 = statistics.median(r["wall"] for r in w0)
        t1 = statistics.median(r["wall"] for r in w1)
        c0 = statistics.median(r["cpu"] / r["wall"] for r in w0)
        gb = w0[0]["hashed_bytes"] / GB
        add(
            f"hashing uses both cores (warm {gb:.1f} GB part)",
            f"jobs auto {t0:.2f} s ({gb * 1000 / t0:.0f} MB/s, CPU/wall {c0:.2f}), "
            f"jobs 1 {t1:.2f} s: {t1 / t0:.2f}x",
            c0 >= 1.5 and t1 / t0 >= 1.4,
        )
        walls = [s["wall"] for s in sec]
        add(
            "second run over the unchanged tree < 2 s",
            f"median {statistics.median(walls):.2f} s, max {max(walls):.2f} s",
            max(walls) < 2.0,
        )
        unchanged = all(
            (s["rows"], s["newest_hash"]) == (f0["rows"], f0["newest_hash"]) for s in sec
        )
        add(
            "second run hashes nothing",
            f"cache rows {f0['rows']} -> {sec[-1]['rows']}, newest hashed_at "
            f"{'unchanged' if unchanged else 'CHANGED'}",
            unchanged,
        )
        for label, r in (("first run", f0), ("first run --jobs 1", f1), ("second run", sec[-1])):
            add(
                f"peak RSS < 200 MB: {label}",
                f"largest process {r['maxrss_mb']:.0f} MB; tree sum {r['tree_rss_mb']:.0f} MB",
                r["maxrss_mb"] < 200 and r["tree_rss_mb"] < 200,
            )
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300_000, help="files in the walk tree")
    ap.add_argument("--gb", type=float, default=20.0, help="GB of models in the inventory home")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--cache", default=None, help="where trees are built (~/.cache/modelward-bench)"
    )
    ap.add_argument(
        "--only",
        action="append",
        choices=("walk", "inventory", "stores", "processes"),
        help="run only this section (repeatable)",
    )
    ap.add_argument("--repos", type=int, default=10_000, help="repos in the HF cache (stores)")
    ap.add_argument("--json", default=None, help="output file (default benchmarks/out/...)")
    args = ap.parse_args()
    cache = cache_dir(args.cache)
    only = set(args.only or ("walk", "inventory", "stores", "processes"))
    stores = bench_stores(cache, args.repos, max(args.reps, 5)) if "stores" in only else None
    procs = bench_processes(max(args.reps, 5)) if "processes" in only else None
    walk = bench_walk(cache, args.files, args.reps) if "walk" in only else None
    inv = bench_inventory(cache, args.gb, args.reps) if "inventory" in only else None
    rows = report(walk, inv, stores, procs)
    width = max(len(r["target"]) for r in rows)
    load = os.getloadavg()
    print(f"modelward inventory benchmark ({os.cpu_count()} cores, load average {load[0]:.2f})")
    for r in rows:
        mark = "info" if r.get("info") else "PASS" if r["pass"] else "MISS"
        print(f"{mark}  {r['target']:<{width}}  {r['measured']}")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = (
        Path(args.json)
        if args.json
        else ROOT / "benchmarks" / "out" / f"inventory-bench-{stamp}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {"targets": rows, "walk": walk, "inventory": inv}
    doc.update(stores=stores, processes=procs)
    doc["load_average"] = os.getloadavg()
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"JSON: {path}")
    return 0 if all(r["pass"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
