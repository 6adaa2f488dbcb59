"""An agent process SIGKILLed at random points of its cycles (collecting, spooling, sending,
recording the acknowledgement): the next run replays what is left in order, nothing is applied
twice and the server ends with exactly what is on disk."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from typing import Any

import pytest

from tests.agent.conftest import Env, model


def agent_run(env: Env) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "modelward", "agent", "run", "--once", "--no-processes"]
    argv += ["--roots", str(env.roots), "--state-dir", str(env.state_dir)]
    environ = {**os.environ, "MODELWARD_DATA_DIR": str(env.tmp / "data-home")}
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=environ)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # the fault database
def test_agent_killed_mid_cycle_loses_and_repeats_nothing(env: Env) -> None:
    rng = random.Random(6)
    model(env.roots, "m0")
    env.enroll()
    with agent_run(env) as first:  # learn how long one cycle takes here
        started = time.monotonic()
        _, err = first.communicate(timeout=60)
        took = time.monotonic() - started
    assert first.returncode == 0, err.decode()
    killed = 0
    n = 0
    # at least 6 rounds, and on until 3 runs were killed mid-cycle (a run can end before its kill
    # when this machine is quicker than during the first run: then the next kill comes sooner)
    while n < 6 or (killed < 3 and n < 30):
        n += 1
        model(env.roots, f"m{n}", seed=n)
        if n % 3 == 0:
            (env.roots / f"m{n - 2}" / "model.safetensors").unlink()
        with agent_run(env) as proc:
            time.sleep(rng.uniform(0.3, 1.0) * took * (0.8 ** max(0, n - 6)))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                killed += 1
            proc.wait(60)
            assert proc.stderr is not None
            proc.stderr.read()
    with agent_run(env) as last:
        _, err = last.communicate(timeout=60)
    assert last.returncode == 0, err.decode()
    assert killed >= 3

    applied = env.applied()
    assert applied == sorted(set(applied)), applied  # in order, none twice
    assert env.server_paths() == {str(p) for p in env.roots.rglob("*.safetensors")}
    from modelward.agent.runner import Agent

    status: dict[str, Any] = Agent(env.state_dir).status()
    assert status["spooled"] == 0 and status["last_ack"] == applied[-1]
    assert not list((env.state_dir / "spool").glob(".tmp-*"))
    assert not (env.state_dir / "spool" / "corrupt").exists()
