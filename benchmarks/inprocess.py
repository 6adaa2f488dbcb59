"""In-process timings of the modelward library, run by scan_bench.py in a fresh interpreter.

Usage: ``python benchmarks/inprocess.py file|dir HASH REPS PATH...``; prints one JSON object with
the seconds of each repetition (the first one includes the detectors' lazy imports) and the peak
RSS of this process.
"""

from __future__ import annotations

import json
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
    formats: list[str] = []
    for _ in range(reps):
        t = time.perf_counter()
        if mode == "file":
            reports = [scan_file(p, p, options) for p in paths]
        else:
            reports = list(scan(paths, options).files)
        times.append(time.perf_counter() - t)
        formats = [r.format for r in reports]
    out = {
        "import_s": import_s,
        "times_s": times,
        "files": len(formats),
        "formats": sorted(set(formats)),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
