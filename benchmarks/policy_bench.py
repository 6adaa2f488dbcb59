"""Times the bundled policy pack over a synthetic inventory of 10,000 artifacts (target: under 2 s).

Usage: ``python benchmarks/policy_bench.py [N] [REPS]`` (default 10,000 artifacts, 5 repetitions).
The inventory is realistic rather than worst-case: a mix of formats and licenses, one artifact in a
hundred with a critical finding, a few runtimes and packages. Two settings: the defaults, and a hub
with 30 approved-origin globs. Prints the wall-clock and CPU seconds of each repetition, then their
minimum and median, the number of decisions and the load average. Each evaluation is timed whole:
building the pack's input, handing it over, every query, parsing the decisions. The first
repetition also compiles the policy (later ones reuse it, as a long-lived server does); the summary
counts every repetition. On a shared machine the CPU seconds are the steadier figure.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from typing import Any

from modelward.policy.engine import evaluate
from modelward.policy.settings import Settings

FORMATS = ("safetensors", "gguf", "safetensors", "onnx", "pytorch", "gguf", "safetensors", "pickle")
LICENSES = ("apache-2.0", "mit", "llama3.1", "apache-2.0", "gemma", "cc-by-nc-4.0", "unknown")


def inventory(n: int) -> dict[str, Any]:
    arts = []
    for i in range(n):
        critical = i % 100 == 0
        arts.append(
            {
                "path": f"/home/u/models/org{i % 40}/model-{i}.bin",
                "size": 1_000_000 + i,
                "sha256": f"{i:064x}",
                "format": FORMATS[i % len(FORMATS)],
                "source": {
                    "kind": "huggingface",
                    "name": None,
                    "repo": f"org{i % 40}/m{i % 300}",
                    "revision": None,
                },
                "license": {
                    "id": LICENSES[i % len(LICENSES)],
                    "name": "",
                    "evidence": "model card",
                },
                "metadata": {},
                "findings": [
                    {
                        "rule": "pickle.dangerous-global",
                        "severity": "critical",
                        "message": "calls os.system",
                        "evidence": "os.system",
                        "location": "",
                        "remediation": "",
                    }
                ]
                if critical
                else [],
                "in_use": False,
            }
        )
    runtimes = [
        {
            "name": "ollama",
            "version": "0.3.1",
            "listen": [{"address": "0.0.0.0", "port": 11434, "exposed": True}],
            "findings": [],
        },
        {"name": "vllm", "version": "0.6.0", "listen": [], "findings": []},
    ]
    packages = [{"name": "torch", "version": "2.13.0", "environment": "/v", "findings": []}]
    return {
        "schema": "modelward.inventory/v1",
        "host": {},
        "artifacts": arts,
        "runtimes": runtimes,
        "packages": packages,
        "errors": [],
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    doc = inventory(n)
    variants = {
        "default settings": Settings(),
        "30 approved-origin globs": Settings(
            approved_origins=tuple(f"org{k}/*" for k in range(30))
        ),
    }
    for label, settings in variants.items():
        walls: list[float] = []
        cpus: list[float] = []
        for rep in range(reps):
            start, cpu = time.perf_counter(), time.process_time()
            decisions = evaluate(doc, settings)
            took, used = time.perf_counter() - start, time.process_time() - cpu
            walls.append(took)
            cpus.append(used)
            print(
                f"{label}, run {rep + 1}: {n} artifacts, {len(decisions)} decisions, "
                f"{took:.2f} s ({used:.2f} s CPU)"
            )
        print(
            f"{label}: {len(decisions)} decisions; CPU s min {min(cpus):.2f} median "
            f"{statistics.median(cpus):.2f}; wall s min {min(walls):.2f} median "
            f"{statistics.median(walls):.2f}; load average {_load()}"
        )


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    main()
