"""Load-independent measures of work, for tests that bound a cost (timing belongs in benchmarks/).

A wall-clock assert fails when neighbours load the machine and passes on a fast one whatever the
algorithm. These counts depend only on the input and the code:

- :func:`lines` counts the Python lines executed while a call runs, in every module (modelward's
  and its libraries', such as jinja2's parser). Warm caches first (lazy imports, ``re``'s compiled
  patterns, ``lru_cache``): the count of a cold first call includes them.
- :func:`assert_linear` compares :func:`lines` at sizes n and 2n: linear work doubles (plus a
  constant, so the ratio is at most 2), quadratic work quadruples.
- :class:`Calls` counts calls of chosen functions (``os.scandir``, ``os.open`` ...) while patched.

C code is not counted (a regex's backtracking, ``str.find``): bound its input instead, and keep a
generous hang guard (the suite's ``timeout``, a subprocess timeout) for the pathological cases.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

LINEAR = 2.2
"""Most a line count may grow when the input doubles (2 for linear work, 4 for quadratic)."""


def lines(fn: Callable[[], object]) -> int:
    """Python lines executed by ``fn()`` and everything it calls (in this thread)."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def start(frame: FrameType, event: str, arg: Any) -> Any:
        return local

    old = sys.gettrace()
    sys.settrace(start)
    try:
        fn()
    finally:
        sys.settrace(old)
    return count


def assert_linear(fn: Callable[[Any], object], small: Any, double: Any, what: str = "") -> int:
    """Assert ``fn(double)`` (an input twice the size of ``small``) costs at most ~2x ``fn(small)``.

    ``fn(small)`` runs once untraced first, to warm caches. Returns the count at ``double``.
    """
    fn(small)
    a = lines(lambda: fn(small))
    b = lines(lambda: fn(double))
    assert a > 0, "nothing was counted"
    assert b <= LINEAR * a, f"{what}: {a:,} lines at n, {b:,} at 2n ({b / a:.2f}x): not linear"
    return b


class Calls:
    """Counts the calls of functions patched through ``monkeypatch`` (restored after the test).

    >>> calls = Calls(monkeypatch)
    >>> calls.patch(os, "scandir")
    >>> ... ; calls["scandir"]
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self._mp = monkeypatch
        self.counts: Counter[str] = Counter()
        self.args: dict[str, list[tuple[Any, ...]]] = {}

    def patch(self, owner: object, name: str, key: str | None = None) -> None:
        real = getattr(owner, name)
        label = key or name
        self.args.setdefault(label, [])

        def counted(*args: Any, **kw: Any) -> Any:
            self.counts[label] += 1
            self.args[label].append(args)
            return real(*args, **kw)

        self._mp.setattr(owner, name, counted)

    def __getitem__(self, key: str) -> int:
        return self.counts[key]

    def reset(self) -> None:
        self.counts.clear()
        for v in self.args.values():
            v.clear()


class Decompressed:
    """Bytes that the decompressors made by a patched factory (``members._decompressor``) output."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.bytes = 0
        self.made = 0
        real = getattr(owner, name)
        counter = self

        class Counting:
            def __init__(self, dec: Any) -> None:
                self._dec = dec

            def decompress(self, *args: Any) -> Any:
                out = self._dec.decompress(*args)
                counter.bytes += len(out)
                return out

            def __getattr__(self, attr: str) -> Any:  # eof, unused_data, unconsumed_tail ...
                return getattr(self._dec, attr)

        def make(*args: Any, **kw: Any) -> Counting:
            counter.made += 1
            return Counting(real(*args, **kw))

        monkeypatch.setattr(owner, name, make)
