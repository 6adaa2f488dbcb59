"""GPU processes through NVML: quiet without the library, summed per process with it.

NVML needs a driver and a GPU, which the test machines lack; a stand-in ``pynvml`` module with
NVML's call shapes exercises the reading code.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass

import pytest

from modelward.inventory.gpu import gpu_processes


def test_without_nvml_it_is_quietly_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as when not installed
    assert gpu_processes() == {}


@dataclass
class _Proc:
    pid: int
    usedGpuMemory: int | None  # NVML's field name


def _fake_nvml(init_fails: bool = False) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    state = {"shutdown": False}

    def init() -> None:
        if init_fails:
            raise RuntimeError("NVML Shared Library Not Found")

    mod.nvmlInit = init  # type: ignore[attr-defined]
    mod.nvmlShutdown = lambda: state.__setitem__("shutdown", True)  # type: ignore[attr-defined]
    mod.nvmlDeviceGetCount = lambda: 2  # type: ignore[attr-defined]
    mod.nvmlDeviceGetHandleByIndex = lambda i: i  # type: ignore[attr-defined]
    mod.nvmlDeviceGetComputeRunningProcesses = lambda h: (
        [  # type: ignore[attr-defined]
            _Proc(100, 2 << 30),
            _Proc(200, None),
        ]
        if h == 0
        else [_Proc(100, 1 << 30)]
    )
    mod.nvmlDeviceGetGraphicsRunningProcesses = lambda h: []  # type: ignore[attr-defined]
    mod.state = state  # type: ignore[attr-defined]
    return mod


def test_memory_is_summed_per_process_over_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert gpu_processes() == {100: 3 << 30, 200: 0}
    assert fake.state["shutdown"]  # type: ignore[attr-defined]


def test_no_driver_is_quietly_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", _fake_nvml(init_fails=True))
    assert gpu_processes() == {}
