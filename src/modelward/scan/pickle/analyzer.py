"""STUB (to be replaced by the real analyzer): the API other detectors build on.

``analyze_pickles(buf, ctx, start=..., location=...)`` walks every pickle stream in ``buf`` from
``start``, reports findings on ``ctx`` and returns one ``PickleStream`` per stream.
"""

from __future__ import annotations

import io
import pickletools
from dataclasses import dataclass, field

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.rules import rule
from modelward.scan.source import Buffer

DANGEROUS = rule(
    "pickle.dangerous-global",
    Severity.CRITICAL,
    "The pickle imports a callable that can run code or touch the system",
    "Do not load this file. Obtain the model as safetensors or from a trusted source.",
)


@dataclass(slots=True)
class PickleGlobal:
    module: str
    name: str
    offset: int


@dataclass(slots=True)
class PickleStream:
    start: int
    end: int
    protocol: int
    ops: int
    complete: bool
    error: str | None = None
    globals: list[PickleGlobal] = field(default_factory=list)


def looks_like_pickle(head: bytes) -> bool:
    return len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5


def analyze_pickles(
    buf: Buffer,
    ctx: ScanContext,
    *,
    start: int = 0,
    location: str = "",
    multiple: bool = True,
) -> list[PickleStream]:
    data = bytes(buf[start:])
    f = io.BytesIO(data)
    st = PickleStream(start, start, 0, 0, False)
    strings: list[str] = []
    try:
        for op, arg, pos in pickletools.genops(f):
            st.ops += 1
            if op.name in ("GLOBAL", "INST") and isinstance(arg, str):
                mod, _, name = arg.partition(" ")
                st.globals.append(PickleGlobal(mod, name, start + (pos or 0)))
            elif isinstance(arg, str):
                strings.append(arg)
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                st.globals.append(PickleGlobal(strings[-2], strings[-1], start + (pos or 0)))
            if op.name == "STOP":
                st.complete = True
    except Exception as exc:
        st.error = str(exc)
    st.end = start + f.tell()
    for g in st.globals:
        if g.module in ("os", "posix", "subprocess", "builtins", "nt"):
            ctx.report(DANGEROUS, f"imports {g.module}.{g.name}", evidence=f"{g.module}.{g.name}",
                       location=f"{location}, opcode at byte {g.offset}".lstrip(", "))
    return [st]
