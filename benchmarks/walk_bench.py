"""Times the inventory's discovery walk against ``find ROOT -type f -size +1M`` on a generated tree.

Issue 3 ("Speed and memory"): on 300,000 files the walk must run at least half as fast as that
``find`` in the same run. The tree (perf.md section 2: 300k files in ~26k folders, ~1% model files
with real magic bytes) is generated once, deterministically, into
``~/.cache/modelward-bench/walk-tree-v2-n<files>`` (``--cache DIR`` or ``$MODELWARD_BENCH_CACHE``).
Big files (renamed models above the 16 MiB floor, big non-models) are sparse, so the tree costs
about 0.6 GB of disk.

    python benchmarks/walk_bench.py              # build if needed, then 3 timed rounds
    python benchmarks/walk_bench.py --reps 5 --files 100000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

from modelward.inventory.walk import find_model_files

MIB = 1 << 20
TEXT_EXTS = (".py", ".txt", ".json", ".md", ".c", ".h", ".js", ".html", ".css", ".png", ".yaml", "")

# Real leading bytes of each model format (what the walk's sniffer and the scanner look at).
MODEL_SHAPES: tuple[tuple[str, bytes], ...] = (
    (".pkl", b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."),
    (".bin", b"PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl"),
    (".pt", b"PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl"),
    (".safetensors", struct.pack("<Q", 2) + b"{}"),
    (".gguf", b"GGUF\x03\x00\x00\x00" + bytes(16)),
    (".npy", b"\x93NUMPY\x01\x00v\x00{'descr': '<f4'}"),
    (".h5", b"\x89HDF\r\n\x1a\n" + bytes(8)),
    (".onnx", b"\x08\x07\x12\x07pytorch"),
)


def cache_dir(arg: str | None) -> Path:
    base = arg or os.environ.get("MODELWARD_BENCH_CACHE") or "~/.cache/modelward-bench"
    return Path(os.path.expanduser(base))


def build_tree(root: Path, n_files: int, seed: int = 0) -> dict[str, int]:
    """Write the tree (deterministic for ``seed``); returns what it wrote."""
    rng = random.Random(seed)
    tmp = root.with_name(root.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n_dirs = max(1, n_files * 26 // 300)
    dirs = [tmp]
    shallow = [tmp]  # folders less than 8 deep: a home's depth, not a chain
    for i in range(1, n_dirs):  # each new folder hangs below a recent shallow one
        parent = shallow[rng.randrange(max(0, len(shallow) - 400), len(shallow))]
        d = parent / f"d{i:05d}"
        d.mkdir()
        dirs.append(d)
        if len(d.relative_to(tmp).parts) < 8:
            shallow.append(d)
    stats = {"files": 0, "model_files": 0, "renamed_big_models": 0, "big_other": 0}
    blob = rng.randbytes(16384)
    for i in range(n_files):
        d = dirs[rng.randrange(len(dirs))]
        r = rng.random()
        if r < 0.01:
            ext, magic = MODEL_SHAPES[rng.randrange(len(MODEL_SHAPES))]
            body = magic + blob[: rng.randrange(64, 4096)]
            (d / f"m{i:06d}{ext}").write_bytes(body)
            stats["model_files"] += 1
        elif r < 0.0105:  # a renamed model above the floor: no extension, real magic, sparse
            p = d / f"blob{i:06d}"
            with open(p, "wb") as fh:
                fh.write(MODEL_SHAPES[rng.randrange(len(MODEL_SHAPES))][1])
                fh.truncate(rng.randrange(17, 64) * MIB)
            stats["renamed_big_models"] += 1
        elif r < 0.013:  # big non-model files (sparse zeros): find -size +1M prints them
            p = d / f"big{i:06d}{TEXT_EXTS[rng.randrange(len(TEXT_EXTS))]}"
            with open(p, "wb") as fh:
                fh.write(b"not a model\n")
                fh.truncate(rng.randrange(2, 40) * MIB)
            stats["big_other"] += 1
        else:
            n = int(rng.expovariate(1 / 2048)) % 16384
            ext = TEXT_EXTS[rng.randrange(len(TEXT_EXTS))]
            (d / f"f{i:06d}{ext}").write_bytes(blob[:n])
        stats["files"] += 1
    tmp.rename(root)
    return stats


def time_cmd(argv: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t


def time_walk(root: Path) -> tuple[float, int, int]:
    errors: list[tuple[str, str]] = []
    t = time.perf_counter()
    n = sum(1 for _ in find_model_files([root], on_error=lambda p, m: errors.append((p, m))))
    return time.perf_counter() - t, n, len(errors)


def time_scandir(root: Path) -> float:
    """Plain ``os.scandir`` listing (no stat, no sniff): the Python floor, for reference."""
    t = time.perf_counter()
    stack = [str(root)]
    n = 0
    while stack:
        with os.scandir(stack.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    n += 1
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=300_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cache", default=None)
    args = ap.parse_args()
    root = cache_dir(args.cache) / f"walk-tree-v2-n{args.files}"
    if not root.is_dir():
        print(f"building {root} ...", file=sys.stderr)
        t = time.perf_counter()
        built = build_tree(root, args.files)
        print(f"built in {time.perf_counter() - t:.1f} s: {built}", file=sys.stderr)
    n_files = args.files
    find_size = ["find", str(root), "-type", "f", "-size", "+1M"]
    find_list = ["find", str(root), "-type", "f"]
    # one warm-up of each, then interleaved rounds so that drift hits every tool alike
    time_cmd(find_size)
    time_walk(root)
    rows: dict[str, list[float]] = {
        "find -size +1M": [],
        "find -type f": [],
        "scandir": [],
        "walk": [],
    }
    found = errs = 0
    for _ in range(args.reps):
        rows["find -size +1M"].append(time_cmd(find_size))
        rows["find -type f"].append(time_cmd(find_list))
        rows["scandir"].append(time_scandir(root))
        wall, found, errs = time_walk(root)
        rows["walk"].append(wall)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(f"tree: {root} ({n_files:,} files); medians of {args.reps} rounds")
    print(f"{'tool':<18}{'wall s':>9}{'files/s':>12}")
    for k, v in med.items():
        print(f"{k:<18}{v:>9.3f}{n_files / v:>12,.0f}")
    ratio = med["find -size +1M"] / med["walk"]
    print(f"walk yielded {found:,} candidates, {errs} errors")
    print(f"walk speed / find -size +1M speed = {ratio:.2f} (target >= 0.50)")
    return 0 if ratio >= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
