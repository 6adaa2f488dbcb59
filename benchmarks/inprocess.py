"""In-process timings of the modelward library, run by scan_bench.py in a fresh interpreter.

Usage: ``python benchmarks/inprocess.py file|dir|kinds HASH REPS PATH...``; prints one JSON object with
the seconds of each repetition (the first one includes the detectors' lazy imports) and the peak
RSS of this process.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time


def main(argv: list[str]) -> None:
    mode, hash_flag, reps_text, *paths = argv
    reps = int(reps_text)
    t0 = time.perf_counter()
    from modelward.scan import ScanOptions, registry, scan, scan_file

    registry.load()
    import_s = time.perf_counter() - t0
    options = ScanOptions(hash=hash_flag == "1", jobs=1)
    times: list[float] = []
    by_kind: dict[str, float] = {}
    count: dict[str, int] = {}
    formats: list[str] = []
    for _ in range(reps):
        t = time.perf_counter()
        if mode == "file":
            reports = [scan_file(p, p, options) for p in paths]
        elif mode == "kinds":  # one folder of the small corpus: seconds per file shape
            reports = []
            for name in sorted(os.listdir(paths[0])):
                p = os.path.join(paths[0], name)
                t1 = time.perf_counter()
                reports.append(scan_file(p, p, options))
                kind = name.split("_", 1)[1].rsplit(".", 1)[0]  # 00012_vocab_p4.pkl -> vocab_p4
                by_kind[kind] = by_kind.get(kind, 0.0) + time.perf_counter() - t1
                count[kind] = count.get(kind, 0) + 1
        else:
            reports = list(scan(paths, options).files)
        times.append(time.perf_counter() - t)
        formats = [r.format for r in reports]
    out = {
        "import_s": import_s,
        "times_s": times,
        "files": len(formats),
        "formats": sorted(set(formats)),
        "ms_per_file_by_kind": {
            k: round(v / count[k] * 1000, 3) for k, v in sorted(by_kind.items())
        },
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
