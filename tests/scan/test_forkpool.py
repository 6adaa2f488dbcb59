"""The fork-based worker pool: same results as serial, balanced, and a dying worker loses nothing
silently."""

from __future__ import annotations

import os

import pytest

from modelward.scan import forkpool

pytestmark = pytest.mark.skipif(not forkpool.available(), reason="fork is used on Linux only")


def test_results_equal_serial_and_every_item_is_reported_once() -> None:
    items = list(range(500))
    got: dict[int, int] = {}

    def note(i: int, res: int) -> None:
        assert i not in got
        got[i] = res

    lost = forkpool.run(items, lambda x: x * x, 3, [1] * len(items), note)
    assert lost == []
    assert got == {i: i * i for i in items}


def test_work_really_runs_in_several_processes() -> None:
    pids: set[int] = set()
    forkpool.run(list(range(200)), lambda _x: os.getpid(), 2, [0] * 200, lambda _i, p: pids.add(p))
    assert len(pids) == 2 and os.getpid() in pids


def test_schedule_balances_by_weight() -> None:
    weights = [10_000_000, 9_000_000] + [1000] * 100
    shares = forkpool.schedule(weights, 2)
    assert sorted(i for s in shares for i in s) == list(range(len(weights)))
    assert {0, 1} & set(shares[0]) and {0, 1} & set(shares[1])  # the two big files split


def test_a_dying_worker_loses_only_what_it_had_not_sent() -> None:
    parent = os.getpid()
    items = list(range(300))
    child_share = forkpool.schedule([1] * len(items), 2)[1]
    victim = child_share[len(child_share) // 2]

    def work(x: int) -> int:
        if os.getpid() != parent and x == victim:
            os._exit(7)  # a native crash in the child
        return x

    got: dict[int, int] = {}
    lost = forkpool.run(items, work, 2, [1] * len(items), lambda i, r: got.__setitem__(i, r))
    assert victim in lost
    assert set(got) | set(lost) == set(items)
    assert not set(got) & set(lost)
    assert all(got[i] == i for i in got)
