"""The resource budget (osquery watchdog defaults): peak memory under 200 MB for a cycle over a
folder of models, a steady-state cycle cheap enough for well under 10% of a core at the default
report interval, and hashing held to the configured rate. Prints the figures."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelward.agent.budget import RateLimiter, sha256_limited
from tests.agent.conftest import Env, model

DEFAULT_INTERVAL = 300  # the server's default report_interval


def run_once(env: Env, *extra: str) -> tuple[float, float, int]:
    """``(wall seconds, cpu seconds, peak RSS bytes)`` of one ``agent run --once`` process; the
    peak is what the agent measured itself and reported (``ru_maxrss`` from ``wait4`` would also
    count the pages of this test process the child had before ``exec``)."""
    argv = [sys.executable, "-m", "modelward", "agent", "run", "--once", "--no-processes"]
    argv += ["--roots", str(env.roots), "--state-dir", str(env.state_dir), *extra]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - started
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err
    return wall, usage.ru_utime + usage.ru_stime, int(env.agent_status()["peak_rss_bytes"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_peak_memory_and_steady_state_cpu(env: Env, capsys: object) -> None:
    for n in range(40):
        model(env.roots, f"m{n:02d}", seed=n)
    big = env.roots / "big" / "weights.bin"
    big.parent.mkdir()
    big.write_bytes(os.urandom(48 << 20))
    env.enroll()

    wall1, cpu1, rss1 = run_once(env, "--hash-rate", "0")
    wall2, cpu2, rss2 = run_once(env)  # steady state: every hash from the cache
    steady_percent = 100 * cpu2 / DEFAULT_INTERVAL
    print(
        f"\nagent budget: first cycle {wall1:.2f} s wall, {cpu1:.2f} s CPU, peak RSS "
        f"{rss1 / 2**20:.0f} MiB; steady cycle {wall2:.2f} s wall, {cpu2:.2f} s CPU "
        f"(= {steady_percent:.2f}% of a core every {DEFAULT_INTERVAL} s), peak RSS "
        f"{rss2 / 2**20:.0f} MiB"
    )
    assert max(rss1, rss2) < 200 << 20
    assert steady_percent < 10
    assert len(env.server_paths()) == 41  # 40 safetensors + the .bin

    # In the long-running mode there is no start-up: one steady cycle's CPU in this thread
    # (the live server runs in another thread).
    agent = env.agent()
    agent.cycle()
    started = time.thread_time()
    agent.cycle()
    loop_cpu = time.thread_time() - started
    print(
        f"agent budget: steady cycle in the loop {loop_cpu:.2f} s CPU "
        f"(= {100 * loop_cpu / DEFAULT_INTERVAL:.3f}% of a core every {DEFAULT_INTERVAL} s)"
    )
    assert loop_cpu < cpu2


def test_hashing_keeps_to_the_rate(tmp_path: Path) -> None:
    f = tmp_path / "w.bin"
    f.write_bytes(os.urandom(3 << 20))
    st = os.stat(f)
    started = time.monotonic()
    sha256_limited(str(f), st, RateLimiter(2 << 20))
    slow = time.monotonic() - started
    assert slow >= 0.45, slow  # 3 MiB at 2 MiB/s after a 2 MiB burst: >= 0.5 s
    assert RateLimiter(0).rate == 0  # 0: unlimited
