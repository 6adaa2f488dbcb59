"""GPU memory of running processes through NVML, when ``nvidia-ml-py`` and a driver are present.

Optional by design: without the library, a driver or a GPU, :func:`gpu_processes` returns an empty
mapping and says nothing (the issue asks for a quiet skip). Nothing is installed or loaded for it.
"""

from __future__ import annotations

import contextlib
from typing import Any


def gpu_processes() -> dict[int, int]:
    """GPU memory in bytes used by each process id (compute and graphics contexts), or ``{}``."""
    try:
        import pynvml  # nvidia-ml-py: optional, never a dependency
    except ImportError:
        return {}
    nvml: Any = pynvml
    try:
        nvml.nvmlInit()
    except Exception:  # no driver or no GPU: quietly nothing
        return {}
    used: dict[int, int] = {}
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            for getter in (
                "nvmlDeviceGetComputeRunningProcesses",
                "nvmlDeviceGetGraphicsRunningProcesses",
            ):
                fn = getattr(nvml, getter, None)
                if fn is None:
                    continue
                try:
                    procs = fn(handle)
                except Exception:
                    continue
                for p in procs:
                    pid = int(getattr(p, "pid", 0) or 0)
                    mem = getattr(p, "usedGpuMemory", None)
                    if pid > 0:
                        used[pid] = used.get(pid, 0) + (int(mem) if isinstance(mem, int) else 0)
    except Exception:
        return used
    finally:
        with contextlib.suppress(Exception):
            nvml.nvmlShutdown()
    return used
