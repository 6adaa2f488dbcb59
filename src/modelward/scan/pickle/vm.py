"""A lean static pickle VM: walks opcodes with a stack and a memo, never calling anything.

``walk`` interprets one stream from a position of a buffer and records, on a ``Sink``, every
import (``GLOBAL``, ``STACK_GLOBAL``, ``INST``), every call whose target is not a plain import,
every global whose name is computed at load time, every mutation of an imported object and
every extension code. Values are modelled only as far as they matter: strings (for
``STACK_GLOBAL``), small ints/tuples/dicts (for joblib array headers), imported globals and
"objects" built by calls. Payloads (bytes, long strings) are skipped by index, never copied.

It is one long function on purpose: the per-opcode cost is what makes the scanner fast.
"""

from __future__ import annotations

import re
import struct
from typing import Any

from modelward.scan.pickle.globals import (
    NESTED_LOADERS,
    SKLEARN_NEWOBJ,
    Verdict,
    classify,
    normalize,
    valid_name,
)

MAX_STR = 4096
"""Strings longer than this are not decoded (a ``BigStr`` stands for them)."""
MAX_SMALL = 64
"""Dicts are modelled only while they hold at most this many items (joblib array headers)."""

_I4 = struct.Struct("<i").unpack_from
_U4 = struct.Struct("<I").unpack_from
_U8 = struct.Struct("<Q").unpack_from
_U2 = struct.Struct("<H").unpack_from
_NL = re.compile(rb"\n")

# A run of fixed-size scalar pushes that ends with APPENDS or SETITEMS: skipped in one C call.
_FLOAT_BATCH = 9 * 1024
"""Bytes of BINFLOATs looked at per step (the pickler batches 1,000 items per APPENDS)."""


def float_run_end(buf: Any, i: int, end: int) -> int:
    """End of a run of BINFLOATs (``G`` + 8 bytes) from ``i`` that APPENDS/SETITEMS closes, or -1.

    The same as matching ``(?:G[\\x00-\\xff]{8})+(?=[eu])`` at ``i``, done by striding: every
    ninth byte of the run is a ``G``, so one step slice and ``lstrip`` find its end in C (the
    regex engine costs ~50 ns a float; this, ~1 ns).
    """
    j = i
    while True:
        stop = min(end, j + _FLOAT_BATCH)
        marks = bytes(buf[j:stop:9])
        n = len(marks) - len(marks.lstrip(b"G"))
        j += 9 * n
        if n < len(marks) or stop >= end:
            break
    if j == i or j >= end or buf[j] not in (0x65, 0x75):  # no run, truncated, or not closed
        return -1
    return j


_SKIP_SCALARS = re.compile(
    rb"(?:G[\x00-\xff]{8}|K[\x00-\xff]|M[\x00-\xff]{2}|J[\x00-\xff]{4}|[N\x88\x89])+(?=[eu])"
).match

SPECIAL_NONE = 0
SPECIAL_NESTED = 1
SPECIAL_RECONSTRUCTOR = 2
SPECIAL_NEWOBJ = 3
SPECIAL_ARRAY_WRAPPER = 4


class Malformed(Exception):
    """The unpickler would fail here (message says why)."""


class Glob:
    """An imported global."""

    __slots__ = ("module", "name", "offset", "special")

    def __init__(self, module: str, name: str, offset: int) -> None:
        self.module = module
        self.name = name
        self.offset = offset
        nmod, nname = normalize(module, name)
        if (nmod, nname) in NESTED_LOADERS:
            self.special = SPECIAL_NESTED
        elif nmod == "copyreg" and nname == "_reconstructor":
            self.special = SPECIAL_RECONSTRUCTOR
        elif (nmod == "copyreg" and nname in ("__newobj__", "__newobj_ex__")) or (
            nname == "newObj" and nmod in SKLEARN_NEWOBJ
        ):
            self.special = SPECIAL_NEWOBJ
        elif nmod == "joblib.numpy_pickle" and nname == "NumpyArrayWrapper":
            self.special = SPECIAL_ARRAY_WRAPPER
        else:
            self.special = SPECIAL_NONE

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


class Obj:
    """A value computed at load time: the result of a call, a persistent id, an extension."""

    __slots__ = ("args", "callee", "offset", "state")

    def __init__(self, callee: object, args: object, offset: int) -> None:
        self.callee = callee
        self.args = args
        self.offset = offset
        self.state: object = None


class Blob:
    """A bytes literal: where its payload lies in the buffer."""

    __slots__ = ("size", "start")

    def __init__(self, start: int, size: int) -> None:
        self.start = start
        self.size = size


class BigStr:
    """A string literal too long to decode."""

    __slots__ = ("size", "start")

    def __init__(self, start: int, size: int) -> None:
        self.start = start
        self.size = size


MAX_EVENTS = 1000
"""Findings of one kind recorded per stream (more would repeat the same news)."""
MAX_GLOBS = 100_000
"""Distinct imported names remembered per stream for reuse."""

PERSISTENT = "persistent_load"
EXTENSION = "extension registry"
UNRESOLVED = "global with a computed name"


class Sink:
    """What a walk found. Shared by the streams of one analysis."""

    __slots__ = (
        "array_start",
        "calls",
        "extensions",
        "globs",
        "imports",
        "indirect",
        "joblib_arrays",
        "last_call",
        "mutated",
        "mutations",
        "nested",
        "ops_budget",
        "unresolved",
        "wrapper_seen",
    )

    def __init__(self, ops_budget: int) -> None:
        self.imports: list[Glob] = []
        self.globs: dict[tuple[str, str], Glob] = {}
        self.unresolved: list[tuple[int, str]] = []
        self.indirect: list[tuple[int, str]] = []
        self.mutations: list[tuple[int, Glob, str]] = []
        self.mutated: set[str] = set()
        self.extensions: list[tuple[int, int]] = []
        self.nested: list[tuple[int, Glob, object]] = []
        self.calls = 0
        self.joblib_arrays = 0
        self.ops_budget = ops_budget
        self.array_start = -1
        """Where the first joblib array's bytes start (-1: none)."""
        self.last_call = -1
        """Offset of the latest call of an imported global."""
        self.wrapper_seen = False
        """Whether joblib's NumpyArrayWrapper was imported (BUILDs then may read array bytes)."""

    def activity(self) -> int:
        """How many things that run code were seen (imports, calls, extension codes)."""
        return len(self.imports) + len(self.unresolved) + len(self.extensions) + self.calls


class Result:
    """The outcome of walking one stream."""

    __slots__ = ("complete", "end", "error", "ops", "protocol")

    def __init__(self, end: int, ops: int, protocol: int, error: str | None, complete: bool):
        self.end = end
        self.ops = ops
        self.protocol = protocol
        self.error = error
        self.complete = complete


BUDGET = "opcode budget exhausted"


def _describe(v: object) -> str:
    if type(v) is Glob:
        return f"the imported {v.full}"
    if type(v) is Obj:
        c = v.callee
        if type(c) is Glob:
            return f"the result of calling {c.full}"
        return f"a value produced by {c if isinstance(c, str) else 'a call'}"
    return "a computed value"


def _line(buf: Any, start: int, end: int) -> int:
    """Position of the newline ending the line that starts at ``start``.

    Lines have no length limit: ``readline`` has none, and a GLOBAL name, a FLOAT or a GET
    index padded with spaces may be of any length (each line is consumed, so time stays linear).
    """
    m = _NL.search(buf, start, end)
    if m is None:
        raise IndexError("truncated")
    return m.start()


def _name(buf: Any, a: int, b: int) -> str:
    text = str(buf[a:b], "utf-8", "surrogatepass")
    return text


INEXACT = object()
"""Key of a modelled dict whose model lost items (too many, or keys that are not hashable)."""


def _small_dict(items: list[object]) -> dict[object, object]:
    out: dict[object, object] = {}
    if len(items) <= MAX_SMALL:
        try:
            for k in range(0, len(items) - 1, 2):
                out[items[k]] = items[k + 1]
        except TypeError:
            out[INEXACT] = True
    else:
        out[INEXACT] = True
    return out


def walk(
    buf: Any,
    pos: int,
    end: int,
    sink: Sink,
    *,
    joblib: bool = True,
    probe: bool = False,
) -> Result:
    """Walk one pickle stream from ``pos``; never raises for bad input.

    ``probe`` walks without recording anything of the analysis beyond the ``Result`` (used to
    decide whether bytes look like a pickle); the sink is still used for the op budget.
    """
    stack: list[Any] = []
    metastack: list[list[Any]] = []
    memo: dict[int, Any] = {}
    append = stack.append
    i = pos
    ops = 0
    proto = 0
    limit = sink.ops_budget
    skip_floats = float_run_end
    skip_scalars = _SKIP_SCALARS
    op = -1
    try:
        while True:
            if ops >= limit:
                return Result(i, ops, proto, BUDGET, False)
            op = buf[i]
            ops += 1
            if op == 0x8C:  # SHORT_BINUNICODE
                j = i + 2 + buf[i + 1]
                if j > end:
                    raise IndexError("truncated")
                text = str(buf[i + 2 : j], "utf-8", "surrogatepass")
                append(text)
                # Protocol 4+ memoizes every string: take the MEMOIZE that follows in this turn.
                if j < end and buf[j] == 0x94:
                    memo[len(memo)] = text
                    ops += 1
                    j += 1
                i = j
            elif op == 0x94:  # MEMOIZE
                memo[len(memo)] = stack[-1]
                i += 1
            elif op == 0x71:  # BINPUT
                memo[buf[i + 1]] = stack[-1]
                i += 2
            elif op == 0x4B:  # BININT1
                append(buf[i + 1])
                i += 2
            elif op == 0x47:  # BINFLOAT
                if i + 9 > end:
                    raise IndexError("truncated")
                append(None)
                i += 9
            elif op == 0x58:  # BINUNICODE
                n = _U4(buf, i + 1)[0]
                j = i + 5 + n
                if j > end:
                    raise IndexError("truncated")
                value: Any = (
                    str(buf[i + 5 : j], "utf-8", "surrogatepass")
                    if n <= MAX_STR
                    else BigStr(i + 5, n)
                )
                append(value)
                # Protocols 2-3 put every string in the memo: take that PUT in this turn.
                if j + 2 <= end:
                    nxt = buf[j]
                    if nxt == 0x71:  # BINPUT
                        memo[buf[j + 1]] = value
                        ops += 1
                        j += 2
                    elif nxt == 0x72 and j + 5 <= end:  # LONG_BINPUT
                        memo[_U4(buf, j + 1)[0]] = value
                        ops += 1
                        j += 5
                i = j
            elif op == 0x68:  # BINGET
                append(memo[buf[i + 1]])
                i += 2
            elif op == 0x72:  # LONG_BINPUT
                memo[_U4(buf, i + 1)[0]] = stack[-1]
                i += 5
            elif op == 0x6A:  # LONG_BINGET
                append(memo[_U4(buf, i + 1)[0]])
                i += 5
            elif op == 0x4D:  # BININT2
                append(_U2(buf, i + 1)[0])
                i += 3
            elif op == 0x4A:  # BININT
                append(_I4(buf, i + 1)[0])
                i += 5
            elif op == 0x28:  # MARK
                metastack.append(stack)
                stack = []
                append = stack.append
                i += 1
                j = skip_floats(buf, i, end)
                if j >= 0:
                    ops += (j - i) // 9 - 1
                    i = j
                else:
                    m = skip_scalars(buf, i)
                    if m is not None:
                        j = m.end()
                        ops += (j - i) // 3
                        i = j
            elif op == 0x65 or op == 0x75 or op == 0x90:  # APPENDS SETITEMS ADDITEMS
                items = stack
                stack = metastack.pop()
                append = stack.append
                target = stack[-1]
                tt = type(target)
                if tt is dict:
                    if op == 0x75 and len(target) + len(items) <= 2 * MAX_SMALL:
                        target.update(_small_dict(items))
                    else:
                        target[INEXACT] = True
                elif tt is Glob and not probe:
                    _mutate(sink, i, target, "adds items to")
                i += 1
            elif op == 0x73:  # SETITEM
                v = stack.pop()
                k = stack.pop()
                target = stack[-1]
                tt = type(target)
                if tt is dict:
                    if len(target) < MAX_SMALL:
                        try:
                            target[k] = v
                        except TypeError:
                            target[INEXACT] = True
                    else:
                        target[INEXACT] = True
                elif tt is Glob and not probe:
                    _mutate(sink, i, target, "sets an item of")
                i += 1
            elif op == 0x61:  # APPEND
                stack.pop()
                target = stack[-1]
                if type(target) is Glob and not probe:
                    _mutate(sink, i, target, "appends to")
                i += 1
            elif op == 0x4E:  # NONE
                append(None)
                i += 1
            elif op == 0x88:  # NEWTRUE
                append(True)
                i += 1
            elif op == 0x89:  # NEWFALSE
                append(False)
                i += 1
            elif op == 0x86:  # TUPLE2
                b = stack.pop()
                stack[-1] = (stack[-1], b)
                i += 1
            elif op == 0x85:  # TUPLE1
                stack[-1] = (stack[-1],)
                i += 1
            elif op == 0x87:  # TUPLE3
                c = stack.pop()
                b = stack.pop()
                stack[-1] = (stack[-1], b, c)
                i += 1
            elif op == 0x74:  # TUPLE
                items = stack
                stack = metastack.pop()
                append = stack.append
                append(tuple(items))
                i += 1
            elif op == 0x7D:  # EMPTY_DICT
                append({})
                i += 1
            elif op == 0x5D or op == 0x8F:  # EMPTY_LIST EMPTY_SET
                append(None)
                i += 1
            elif op == 0x29:  # EMPTY_TUPLE
                append(())
                i += 1
            elif op == 0x52:  # REDUCE
                args = stack.pop()
                f = stack[-1]
                stack[-1] = _call(sink, f, args, i, "calls", probe)
                i += 1
            elif op == 0x62:  # BUILD
                state = stack.pop()
                inst = stack[-1]
                ti = type(inst)
                i += 1
                if ti is Obj:
                    inst.state = state
                    if joblib and sink.wrapper_seen:
                        kind = _wrapper_kind(buf, inst)
                        if kind:
                            i = _joblib_array(buf, i, end, sink, inst, kind, probe)
                            stack[-1] = Obj(None, None, i)
                elif ti is Glob and not probe:
                    _mutate(sink, i - 1, inst, "sets the state of")
            elif op == 0x93:  # STACK_GLOBAL
                name = stack.pop()
                module = stack.pop()
                if type(name) is str and type(module) is str:
                    append(_import(sink, module, name, i, probe))
                elif type(name) in (Obj, Glob, BigStr) or type(module) in (Obj, Glob, BigStr):
                    if _never_str(name) or _never_str(module):
                        raise Malformed("STACK_GLOBAL operand is not a string")
                    if not probe and len(sink.unresolved) < MAX_EVENTS:
                        bad = name if type(name) is not str else module
                        what = "too long to analyse" if type(bad) is BigStr else _describe(bad)
                        sink.unresolved.append((i, f"module or name is {what}"))
                    append(Obj(UNRESOLVED, None, i))
                else:
                    raise Malformed("STACK_GLOBAL operands are not strings")
                i += 1
            elif op == 0x63 or op == 0x69:  # GLOBAL INST
                a = _line(buf, i + 1, end)
                b = _line(buf, a + 1, end)
                g = _import(sink, _name(buf, i + 1, a), _name(buf, a + 1, b), i, probe)
                if op == 0x63:
                    append(g)
                else:
                    items = stack
                    stack = metastack.pop()
                    append = stack.append
                    append(_call(sink, g, tuple(items), i, "instantiates", probe))
                i = b + 1
            elif op == 0x81:  # NEWOBJ
                args = stack.pop()
                cls = stack[-1]
                stack[-1] = _call(sink, cls, args, i, "instantiates", probe)
                i += 1
            elif op == 0x92:  # NEWOBJ_EX
                stack.pop()
                args = stack.pop()
                cls = stack[-1]
                stack[-1] = _call(sink, cls, args, i, "instantiates", probe)
                i += 1
            elif op == 0x6F:  # OBJ
                items = stack
                stack = metastack.pop()
                append = stack.append
                if not items:
                    raise Malformed("OBJ without a class")
                append(_call(sink, items[0], tuple(items[1:]), i, "instantiates", probe))
                i += 1
            elif op == 0x95:  # FRAME (pickle.py reads a frame cut short by the end and goes on)
                _U8(buf, i + 1)
                i += 9
            elif op == 0x43:  # SHORT_BINBYTES
                n = buf[i + 1]
                if i + 2 + n > end:
                    raise IndexError("truncated")
                append(Blob(i + 2, n))
                i += 2 + n
            elif op == 0x42:  # BINBYTES
                n = _U4(buf, i + 1)[0]
                if i + 5 + n > end:
                    raise IndexError("truncated")
                append(Blob(i + 5, n))
                i += 5 + n
            elif op == 0x8E or op == 0x96 or op == 0x8D:  # BINBYTES8 BYTEARRAY8 BINUNICODE8
                n = _U8(buf, i + 1)[0]
                if i + 9 + n > end:
                    raise IndexError("truncated")
                if op == 0x8D:
                    if n <= MAX_STR:
                        append(str(buf[i + 9 : i + 9 + n], "utf-8", "surrogatepass"))
                    else:
                        append(BigStr(i + 9, n))
                elif op == 0x8E:
                    append(Blob(i + 9, n))
                else:
                    append(None)
                i += 9 + n
            elif op == 0x8A:  # LONG1
                n = buf[i + 1]
                if i + 2 + n > end:
                    raise IndexError("truncated")
                append(int.from_bytes(buf[i + 2 : i + 2 + n], "little", signed=True))
                i += 2 + n
            elif op == 0x51:  # BINPERSID
                pid = stack.pop()
                append(Obj(PERSISTENT, pid, i))
                i += 1
            elif op == 0x80:  # PROTO
                proto = buf[i + 1]
                if proto > 5:
                    raise Malformed(f"unsupported protocol {proto}")
                i += 2
            elif op == 0x2E:  # STOP
                stack.pop()
                return Result(i + 1, ops, proto, None, True)
            else:
                i, stack = _rare(buf, i, end, op, stack, metastack, memo, sink, probe)
                append = stack.append
    except Malformed as exc:
        return Result(i, ops, proto, f"{exc} at byte {i}", False)
    except (IndexError, struct.error) as exc:
        if i >= end:
            return Result(i, ops, proto, f"data ends at byte {i} before STOP", False)
        need = _ARGLEN.get(op, 1)
        if i + need >= end or str(exc) == "truncated" or isinstance(exc, struct.error):
            return Result(i, ops, proto, f"data ends inside the opcode at byte {i}", False)
        return Result(i, ops, proto, f"stack or mark underflow at byte {i}", False)
    except KeyError:
        return Result(i, ops, proto, f"memo entry read before it was written at byte {i}", False)
    except (UnicodeDecodeError, ValueError, OverflowError) as exc:
        return Result(i, ops, proto, f"invalid argument at byte {i} ({type(exc).__name__})", False)
    except RecursionError:
        return Result(i, ops, proto, f"values nested too deeply at byte {i}", False)


def _escape_decode(data: bytes) -> bytes:
    """Decode a protocol-0 STRING the way pickle does (``codecs.escape_decode``).

    pickle accepts invalid escapes such as ``\\z`` with only a DeprecationWarning; so does this,
    silently (a hostile file must not turn the scan into a warning, or an error under ``-W error``).
    """
    if b"\\" not in data:
        return data
    import codecs
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return codecs.escape_decode(data)[0]


_ARGLEN = {
    0x8C: 2,
    0x71: 2,
    0x4B: 2,
    0x47: 9,
    0x58: 5,
    0x68: 2,
    0x4D: 3,
    0x4A: 5,
    0x95: 9,
    0x43: 2,
    0x42: 5,
    0x8E: 9,
    0x96: 9,
    0x8D: 9,
    0x8A: 2,
    0x72: 5,
    0x6A: 5,
    0x80: 2,
    0x82: 2,
    0x83: 3,
    0x84: 5,
    0x54: 5,
    0x55: 2,
    0x8B: 5,
}


def _import(sink: Sink, module: str, name: str, offset: int, probe: bool) -> Glob:
    key = (module, name)
    g = sink.globs.get(key)
    if g is not None:
        # The same name again (memo GETs make that cheap): one Glob, validated and recorded
        # once, so that long names cost their length once, not once per import.
        if sink.mutated and not probe:
            _check_mutated(sink, g, offset)
        return g
    if not valid_name(module, probe) or not valid_name(name, probe):
        raise Malformed("global name is not an importable identifier")
    g = Glob(module, name, offset)
    if g.special == SPECIAL_ARRAY_WRAPPER:
        sink.wrapper_seen = True
    if len(sink.globs) < MAX_GLOBS:
        sink.globs[key] = g
    if not probe:
        sink.imports.append(g)
        if sink.mutated:
            _check_mutated(sink, g, offset)
    return g


def _mutate(sink: Sink, offset: int, target: Glob, verb: str) -> None:
    """Record that an imported object is changed (bounded: the first ones say it all)."""
    if len(sink.mutations) < MAX_EVENTS:
        sink.mutations.append((offset, target, verb))
    if len(sink.mutated) < MAX_EVENTS:
        sink.mutated.add(target.full)


def _check_mutated(sink: Sink, g: Glob, offset: int) -> None:
    """Report an import of (an attribute of) something modified earlier in the stream."""
    if len(sink.unresolved) >= MAX_EVENTS:
        return
    full = g.full
    # Set lookups of the name's first dotted prefixes: linear, however many were modified.
    cut = -1
    for _ in range(64):
        cut = full.find(".", cut + 1)
        prefix = full if cut < 0 else full[:cut]
        if prefix in sink.mutated:
            sink.unresolved.append(
                (offset, f"{full[:200]} was modified earlier in the same pickle")
            )
            return
        if cut < 0:
            return


_MAY_RETURN_STR = frozenset(
    [
        "_codecs.encode",
        "builtins.str",
        "copyreg._reconstructor",
        "copyreg.__newobj__",
        "copyreg.__newobj_ex__",
        "torch._tensor._rebuild_from_type",
        "torch._tensor._rebuild_from_type_v2",
        "numpy.random._pickle.__bit_generator_ctor",
        "numpy.random._pickle.__randomstate_ctor",
        "numpy.random._pickle.__generator_ctor",
        "torch.storage._load_from_bytes",
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.neighbors._ball_tree.newObj",
        "sklearn.metrics._dist_metrics.newObj",
    ]
)
"""Allow-listed callables that may return an exact ``str`` (they build or call what they get)."""


def _never_str(v: object) -> bool:
    """Whether ``v`` certainly is not an exact ``str`` when loaded (STACK_GLOBAL then fails).

    An allow-listed or ML-library import is a class or function, never a string; so is what an
    allow-listed class or an ML-library class builds, except the helpers above (and TorchScript's
    ``build_*`` helpers, which return their argument). ``pickle.load`` of a joblib file meets
    such values as STACK_GLOBAL operands when a nested object-array pickle reads the outer memo.
    """
    if type(v) is Glob:
        return classify(v.module, v.name)[0] <= Verdict.LIBRARY
    if type(v) is Obj and type(v.callee) is Glob:
        c = v.callee
        full = c.full
        if full in _MAY_RETURN_STR or full.startswith("torch.jit._pickle."):
            return False
        return classify(c.module, c.name)[0] <= Verdict.LIBRARY
    return False


def _is_array_wrapper(v: object) -> bool:
    """Whether ``v`` is a joblib ``NumpyArrayWrapper`` instance: never a string nor callable.

    ``pickle.load`` of a joblib file reads the array bytes after one as opcodes, and a nested
    object-array pickle there meets the wrapper as a ``STACK_GLOBAL`` operand: the loader fails.
    """
    if type(v) is not Obj:
        return False
    c = v.callee
    return type(c) is Glob and c.special == SPECIAL_ARRAY_WRAPPER


def _call(sink: Sink, f: object, args: object, offset: int, verb: str, probe: bool) -> Obj:
    """The value of calling ``f(*args)``; records calls that are not of a plain import."""
    tf = type(f)
    if tf is Glob:
        special = f.special  # type: ignore[attr-defined]
        if not probe:
            sink.last_call = offset
            if special:
                _special_call(sink, f, args, offset)  # type: ignore[arg-type]
    elif tf is Obj:
        if _is_array_wrapper(f):
            raise Malformed("calls a joblib array wrapper")
        if not probe and len(sink.indirect) < MAX_EVENTS:
            sink.indirect.append((offset, f"{verb} {_describe(f)}"))
    else:
        raise Malformed("calls a value that is not callable")
    sink.calls += 1  # also when probing: a head that calls something is a pickle
    return Obj(f, args, offset)


def _special_call(sink: Sink, f: Glob, args: object, offset: int) -> None:
    if len(sink.nested) + len(sink.indirect) >= MAX_EVENTS:
        return
    items = args if type(args) is tuple else ()
    if f.special == SPECIAL_NESTED:
        sink.nested.append((offset, f, items[0] if items else None))
    elif f.special == SPECIAL_RECONSTRUCTOR:
        if len(items) < 2 or type(items[0]) is not Glob or type(items[1]) is not Glob:
            sink.indirect.append((offset, "copyreg._reconstructor with a computed class"))
    elif f.special == SPECIAL_NEWOBJ and (not items or type(items[0]) is not Glob):
        sink.indirect.append((offset, f"{f.name} with a computed class"))


def _rare(
    buf: Any,
    i: int,
    end: int,
    op: int,
    stack: list[Any],
    metastack: list[list[Any]],
    memo: dict[int, Any],
    sink: Sink,
    probe: bool,
) -> tuple[int, list[Any]]:
    """The opcodes that real checkpoints seldom use. Returns the next position."""
    if op == 0x30:  # POP
        if stack:
            stack.pop()
        else:
            return i + 1, metastack.pop()
        return i + 1, stack
    if op == 0x31:  # POP_MARK
        return i + 1, metastack.pop()
    if op == 0x32:  # DUP
        stack.append(stack[-1])
        return i + 1, stack
    if op in (0x6C, 0x64, 0x91):  # LIST DICT FROZENSET
        items = stack
        outer = metastack.pop()
        outer.append(_small_dict(items) if op == 0x64 else None)
        return i + 1, outer
    if op == 0x55 or op == 0x54:  # SHORT_BINSTRING BINSTRING
        if op == 0x55:
            n, h = buf[i + 1], 2
        else:
            n, h = _I4(buf, i + 1)[0], 5
            if n < 0:
                raise Malformed("negative BINSTRING length")
        if i + h + n > end:
            raise IndexError("truncated")
        if n <= MAX_STR:
            stack.append(str(buf[i + h : i + h + n], "latin-1"))
        else:
            stack.append(BigStr(i + h, n))
        return i + h + n, stack
    if op == 0x49 or op == 0x4C:  # INT LONG
        a = _line(buf, i + 1, end)
        text = bytes(buf[i + 1 : a])
        if op == 0x49 and text in (b"00", b"01"):
            stack.append(text == b"01")
        else:
            if op == 0x4C and text.endswith(b"L"):
                text = text[:-1]
            stack.append(int(text, 0))
        return a + 1, stack
    if op == 0x46:  # FLOAT
        a = _line(buf, i + 1, end)
        float(bytes(buf[i + 1 : a]))
        stack.append(None)
        return a + 1, stack
    if op == 0x53 or op == 0x56:  # STRING UNICODE
        a = _line(buf, i + 1, end)
        n = a - i - 1
        if op == 0x53:
            q = buf[i + 1] if n else 0
            if n < 2 or q not in (0x22, 0x27) or buf[a - 1] != q:
                raise Malformed("the STRING argument must be quoted")
        if n > MAX_STR:
            stack.append(BigStr(i + 1, n))
        elif op == 0x53:
            stack.append(_escape_decode(bytes(buf[i + 2 : a - 1])).decode("latin-1"))
        else:
            stack.append(str(buf[i + 1 : a], "raw-unicode-escape"))
        return a + 1, stack
    if op == 0x70 or op == 0x67 or op == 0x50:  # PUT GET PERSID
        a = _line(buf, i + 1, end)
        if op == 0x50:
            stack.append(Obj(PERSISTENT, None, i))
            return a + 1, stack
        key = int(bytes(buf[i + 1 : a]))
        if op == 0x70:
            if key < 0:
                raise Malformed("negative PUT index")
            memo[key] = stack[-1]
        else:
            stack.append(memo[key])
        return a + 1, stack
    if op == 0x8B:  # LONG4
        n = _I4(buf, i + 1)[0]
        if n < 0:
            raise Malformed("negative LONG4 length")
        if i + 5 + n > end:
            raise IndexError("truncated")
        stack.append(None)
        return i + 5 + n, stack
    if op in (0x82, 0x83, 0x84):  # EXT1 EXT2 EXT4
        if op == 0x82:
            code, n = buf[i + 1], 2
        elif op == 0x83:
            code, n = _U2(buf, i + 1)[0], 3
        else:
            code, n = _I4(buf, i + 1)[0], 5
        if code <= 0:
            raise Malformed("EXT code must be positive")
        if not probe and len(sink.extensions) < MAX_EVENTS:
            sink.extensions.append((i, code))
        stack.append(Obj(EXTENSION, code, i))
        return i + n, stack
    if op == 0x97:  # NEXT_BUFFER (out-of-band data given by the loader)
        stack.append(None)
        return i + 1, stack
    if op == 0x98:  # READONLY_BUFFER
        if not stack:
            raise IndexError("stack underflow")
        return i + 1, stack
    raise Malformed(f"invalid opcode 0x{op:02x}")


_DTYPE_CODE = re.compile(r"[<>|=]?([a-zA-Z])(\d*)(?:\[\w+\])?")


def _dtype_info(dtype: object) -> tuple[int, bool] | None:
    """(itemsize, has objects) of a ``numpy.dtype(...)`` value built in the pickle."""
    if type(dtype) is not Obj or type(dtype.callee) is not Glob:
        return None
    args = dtype.args
    if type(args) is not tuple or not args or type(args[0]) is not str:
        return None
    m = _DTYPE_CODE.fullmatch(args[0])
    if m is None:
        return None
    kind, digits = m.group(1), m.group(2)
    state = dtype.state
    flags = 0
    elsize = -1
    if type(state) is tuple and len(state) >= 8:
        if type(state[5]) is int:
            elsize = state[5]
        if type(state[7]) is int:
            flags = state[7]
    if kind == "O" or (kind == "V" and flags & 1):
        return 8, True
    if flags & 1:
        return None  # "has objects" on a scalar kind: numpy may or may not honour the flag
    if kind in "SUVa" and elsize > 0:
        # numpy takes elsize from the state only for flexible dtypes; ``f8`` stays 8 bytes.
        return elsize, False
    if not digits:
        return None
    size = int(digits)
    return (size * 4 if kind == "U" else size), False


def _wrapper_kind(buf: Any, inst: Obj) -> int:
    """Whether joblib would read array bytes after a BUILD on ``inst``.

    joblib checks ``isinstance(obj, NumpyArrayWrapper)`` after every BUILD, however the object
    was made. 0: not a wrapper; 1: a wrapper made without ``__init__`` (its attributes are
    exactly the BUILD state); 2: a wrapper, or maybe one, whose attributes the scanner cannot
    know (``__init__`` ran, or an allow-listed helper made it).
    """
    c = inst.callee
    if type(c) is not Glob:
        return 0
    if c.special == SPECIAL_ARRAY_WRAPPER:
        # NEWOBJ and NEWOBJ_EX call cls.__new__ only; REDUCE, INST and OBJ run __init__.
        return 1 if buf[inst.offset] in (0x81, 0x92) else 2
    items = inst.args if type(inst.args) is tuple else ()
    if not any(type(a) is Glob and a.special == SPECIAL_ARRAY_WRAPPER for a in items):
        return 0
    first = items[0]
    if type(first) is Glob and first.special == SPECIAL_ARRAY_WRAPPER:
        if c.special == SPECIAL_NEWOBJ:
            return 1
        base = items[1] if len(items) > 1 else None
        if (
            c.special == SPECIAL_RECONSTRUCTOR
            and type(base) is Glob
            and base.full in ("builtins.object", "__builtin__.object")
        ):
            return 1
    return 2


def _joblib_array(
    buf: Any, i: int, end: int, sink: Sink, wrapper: Obj, kind: int, probe: bool
) -> int:
    """Skip the array data joblib writes after a ``NumpyArrayWrapper``'s BUILD at ``i - 1``.

    Anything the model cannot pin down exactly (attributes set by ``__init__``, a state dict
    whose model lost items, an alignment that may be ``None``) is malformed: a wrong guess
    would let the array bytes and the opcodes after them trade places.
    """
    state = wrapper.state
    if kind != 1 or type(state) is not dict or INEXACT in state:
        raise Malformed("joblib array header could not be read")
    if any(type(k) is not str for k in state):
        raise Malformed("joblib array header has computed attribute names")
    shape = state.get("shape")
    info = _dtype_info(state.get("dtype"))
    if type(shape) is not tuple or info is None:
        raise Malformed("joblib array shape or dtype could not be determined")
    count = 1
    for dim in shape:
        if type(dim) is not int or dim < 0:
            raise Malformed("joblib array shape is invalid")
        count *= dim
        if count > end:
            count = end + 1
    itemsize, has_objects = info
    if not probe:
        sink.joblib_arrays += 1
        if sink.array_start < 0:
            sink.array_start = i
    if has_objects:
        # Object arrays are a nested pickle, loaded by a plain unpickler.
        inner = walk(buf, i, end, sink, joblib=False, probe=probe)
        if inner.error is not None:
            raise Malformed(f"joblib object array: {inner.error}")
        return inner.end
    if "numpy_array_alignment_bytes" in state:
        if state["numpy_array_alignment_bytes"] is None:
            # joblib reads no padding byte for None, one for anything else; the model writes
            # None for floats, lists and other values too.
            raise Malformed("joblib array alignment could not be determined")
        if i >= end:
            raise IndexError("truncated")
        i += 1 + buf[i]
    i += count * itemsize
    if i > end:
        raise Malformed("joblib array data extends past the end of the file")
    return i
