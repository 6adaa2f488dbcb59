"""Static analysis of pickle streams: walks them with the VM and turns what it saw into findings.

``analyze_pickles(buf, ctx, start=..., location=...)`` walks every pickle stream in ``buf`` from
``start``, reports findings on ``ctx``, records the imported globals in
``ctx.metadata["globals"]`` and returns one ``PickleStream`` per stream.

Severity of ``pickle.malformed`` (a stream the unpickler would stop on): ``high`` when the
stream imported or called anything before the break (what ran before the error is a payload
hidden from scanners that give up, as in nullifAI), ``medium`` when it has pickle structure
(at least 8 opcodes) but nothing ran, ``low`` when it breaks within its first opcodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.pickle.globals import Verdict, classify
from modelward.scan.pickle.plain import is_plain, plain_until_stop
from modelward.scan.pickle.vm import BUDGET, BigStr, Blob, Glob, Obj, Sink, walk
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Buffer, BytesSource

_NOT_LOAD = "Do not load this file. Obtain the model as safetensors or from a trusted source."

DANGEROUS = rule(
    "pickle.dangerous-global",
    Severity.CRITICAL,
    "The pickle imports a callable that can run code or touch the system",
    _NOT_LOAD,
)
UNKNOWN = rule(
    "pickle.unknown-global",
    Severity.MEDIUM,
    "The pickle imports a global that is not known to be safe",
    "Loading the file imports and may call this global. Check that it comes from a library you "
    "trust, or convert the model to safetensors.",
)
LIBRARY = rule(
    "pickle.library-global",
    Severity.LOW,
    "The pickle imports a class from a known machine-learning library",
    "Such classes are usual in scikit-learn or full-module PyTorch pickles; load the file only "
    "with that library installed from a trusted source.",
)
UNRESOLVED = rule(
    "pickle.unresolved-global",
    Severity.HIGH,
    "The pickle imports a global whose name is computed while loading",
    "A name built at load time hides what is imported: treat the file as malicious. " + _NOT_LOAD,
)
EXTENSION = rule(
    "pickle.extension-code",
    Severity.HIGH,
    "The pickle imports a global through the copyreg extension registry",
    "Extension codes name globals that a scanner cannot see. " + _NOT_LOAD,
)
MUTATION = rule(
    "pickle.global-mutation",
    Severity.HIGH,
    "The pickle modifies an imported module, class or function while loading",
    "Changing library objects at load time is a known way to smuggle a payload. " + _NOT_LOAD,
)
INDIRECT = rule(
    "pickle.indirect-call",
    Severity.HIGH,
    "The pickle calls a value computed while loading rather than an imported global",
    "The callable is not visible statically: treat the file as malicious. " + _NOT_LOAD,
)
NESTED = rule(
    "pickle.nested-pickle",
    Severity.HIGH,
    "The pickle unpickles further data whose content is computed while loading",
    "The nested data cannot be analysed statically. " + _NOT_LOAD,
)
MALFORMED = rule(
    "pickle.malformed",
    Severity.MEDIUM,
    "The pickle stream is broken: a loader stops with an error part-way",
    "What the loader ran before the error still ran: check the other findings, and obtain an "
    "intact copy of the model from a trusted source.",
)
TRAILING = rule(
    "pickle.trailing-data",
    Severity.LOW,
    "Data that is not a pickle follows the end of the pickle stream",
    "Loaders ignore it, but it may hide content from other tools; obtain a clean copy.",
)

MAX_STREAMS = 10_000
_MALFORMED_STRUCTURE = 8


@dataclass(slots=True)
class PickleGlobal:
    """A global imported by a stream: ``module``, ``name`` and the offset of its opcode."""

    module: str
    name: str
    offset: int

    @property
    def full(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(slots=True)
class PickleStream:
    """One pickle stream of a buffer: where it is, how it ended and what it imported."""

    start: int
    end: int
    protocol: int
    ops: int
    """Opcodes walked (approximate where runs were skipped; 0 for a stream proven plain)."""
    complete: bool
    error: str | None = None
    globals: list[PickleGlobal] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Sorted unique ``module.name`` of the imported globals."""
        return sorted({g.full for g in self.globals})


def looks_like_pickle(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of some content) plausibly starts a pickle.

    Protocol 2-5 pickles start with ``PROTO``, but the unpickler needs none (a second stream read
    by ``pickle.load`` in a loop, ``PROTO 0``/``1``, a bare ``STACK_GLOBAL`` payload): any opcode
    may start one. The head is walked, which rejects text and random bytes within a few
    opcodes; a head that calls something before it breaks is a pickle (nullifAI).
    """
    if len(head) < 2:
        return False
    first = head[0]
    if first == 0x80:
        if head[1] > 5:
            return False
    elif first not in _STARTS:
        return False
    probe = head[:4096]
    # A PROTO 2-5 header already says "pickle": eight sane opcodes confirm it (it is walked in
    # full right after); other starts need a longer look to tell them from prose.
    proto = first == 0x80 and head[1] >= 2
    sink = Sink(8 if proto else 256)
    res = walk(probe, 0, len(probe), sink, joblib=False, probe=True)
    if sink.calls and res.ops >= 3:
        return True
    if res.complete:
        # Random bytes end in a STOP within a few opcodes about once in 4,000 heads: binary
        # opcodes that text protocols never start with need a few more to be believed.
        return first == 0x80 or first in _TEXT_STARTS or res.ops >= 5
    if res.error is None or res.error == BUDGET:
        return res.ops >= 4
    # Running out of data inside the head is fine when the head was cut short.
    return (
        res.error.startswith("data ends") and len(head) >= 4096 and res.ops >= (2 if proto else 4)
    )


_STARTS = frozenset(
    b"()012BCFGIJKLMNPQRSTUVX]abcdeghijlopqrstu}\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a"
    b"\x8b\x8c\x8d\x8e\x8f\x90\x91\x92\x93\x94\x95\x96\x97\x98"
)
"""Every opcode but STOP and PROTO (pickletools' table)."""
_TEXT_STARTS = frozenset(b"(c]})NIJKLMSVXGFUTi")


def _loc(location: str, offset: int) -> str:
    where = f"opcode at byte {offset}"
    return f"{location}, {where}" if location else where


def analyze_pickles(
    buf: Buffer,
    ctx: ScanContext,
    *,
    start: int = 0,
    location: str = "",
    multiple: bool = True,
    quiet_if_not_pickle: bool = False,
    joblib: bool = True,
) -> list[PickleStream]:
    """Walk the pickle stream(s) in ``buf`` from ``start`` and report what loading would run.

    With ``multiple``, streams that follow a STOP are analysed too (``pickle.load`` called in a
    loop, several pickles in one file); other trailing bytes are reported. With
    ``quiet_if_not_pickle`` (content that may be raw data), a broken stream that imported and
    called nothing raises no finding. ``joblib`` follows joblib's inline array layout.
    """
    end = len(buf)
    streams: list[PickleStream] = []
    reported: set[tuple[str, str]] = set()
    pos = start
    while pos < end:
        if len(streams) >= MAX_STREAMS:
            ctx.report(
                SCAN_LIMIT,
                f"More than {MAX_STREAMS} pickle streams; the rest was not analysed.",
                evidence=f"{MAX_STREAMS} streams",
                location=_loc(location, pos),
            )
            break
        if pos == start and is_plain(buf, pos, end):
            # Data-only opcodes from PROTO to the final STOP: nothing can be imported or called.
            streams.append(PickleStream(pos, end, buf[pos + 1], 0, True))
            break
        sink = Sink(max(1, ctx.limits.max_pickle_ops))
        res = walk(buf, pos, end, sink, joblib=joblib)
        st = PickleStream(
            start=pos,
            end=res.end,
            protocol=res.protocol,
            ops=res.ops,
            complete=res.complete,
            error=res.error,
            globals=[PickleGlobal(g.module, g.name, g.offset) for g in sink.imports],
        )
        streams.append(st)
        _report(ctx, buf, sink, location, reported)
        if sink.joblib_arrays and joblib:
            _plain_reading(ctx, buf, pos, end, sink, location, reported)
        if res.error == BUDGET:
            stop = plain_until_stop(buf, res.end, end)
            ctx.report(
                SCAN_LIMIT,
                f"The pickle stream has more than {ctx.limits.max_pickle_ops} opcodes; the rest "
                + (
                    "holds only plain data up to its STOP."
                    if stop >= 0
                    else "was not analysed and has opcodes that may import or call code."
                ),
                evidence=f"{res.ops} opcodes",
                location=_loc(location, res.end),
                severity=Severity.MEDIUM if stop >= 0 else Severity.HIGH,
            )
            if stop < 0 or not multiple or stop >= end:
                break
            st.end, st.complete, st.error = stop, True, None
            res.end = stop
        elif res.error is not None:
            _malformed(ctx, st, sink, location, quiet_if_not_pickle)
            break
        if not multiple or res.end >= end:
            break
        pos = res.end
        rest = bytes(buf[pos : pos + 4096])
        if not looks_like_pickle(rest):
            if not quiet_if_not_pickle and rest.strip(b"\x00\n\r\t ") != b"":
                ctx.report(
                    TRAILING,
                    f"{end - pos} bytes that are not a pickle follow the end of the stream.",
                    evidence=f"{end - pos} bytes",
                    location=_loc(location, pos),
                )
            break
    names = {g.full for s in streams for g in s.globals}
    if names:
        previous = ctx.metadata.get("globals")
        if isinstance(previous, list):
            names.update(str(x) for x in previous)
        ctx.metadata["globals"] = sorted(names)
    return streams


def _plain_reading(
    ctx: ScanContext,
    buf: Buffer,
    pos: int,
    end: int,
    sink: Sink,
    location: str,
    reported: set[tuple[str, str]],
) -> None:
    """Walk a joblib stream again as ``pickle.load`` reads it: array bytes as opcodes.

    Benign array bytes break within a few opcodes (or, for object arrays, mix their memo with
    the outer one), so only dangerous imports are reported from them, and the rest (computed
    names, indirect calls ...) only when the array bytes call an imported global themselves:
    that needs a crafted opcode sequence, not float noise.
    """
    plain = Sink(sink.ops_budget)
    walk(buf, pos, end, plain, joblib=False)
    start = sink.array_start
    # Memo indices of a nested object-array pickle meet the outer memo here: names like
    # ``NumpyArrayWrapper.dtype`` that fail to import. Only dangerous imports matter.
    plain.imports = [
        g
        for g in plain.imports
        if g.offset < start or classify(g.module, g.name)[0] == Verdict.DANGEROUS
    ]
    if plain.last_call < start:
        plain.unresolved, plain.indirect, plain.extensions = [], [], []
        plain.mutations, plain.nested = [], []
    else:
        plain.unresolved = [x for x in plain.unresolved if x[0] >= start]
        plain.indirect = [x for x in plain.indirect if x[0] >= start]
        plain.extensions = [x for x in plain.extensions if x[0] >= start]
        plain.mutations = [x for x in plain.mutations if x[0] >= start]
        plain.nested = [x for x in plain.nested if x[0] >= start]
    _report(ctx, buf, plain, location, reported)


def _malformed(ctx: ScanContext, st: PickleStream, sink: Sink, location: str, quiet: bool) -> None:
    ran = sink.activity()
    if ran:
        severity = Severity.HIGH
        what = "after importing or calling code: what ran before the error still ran"
    elif quiet:
        return
    elif st.ops >= _MALFORMED_STRUCTURE:
        severity = Severity.MEDIUM
        what = "after some opcodes"
    else:
        severity = Severity.LOW
        what = "at its first opcodes"
    ctx.report(
        MALFORMED,
        f"The pickle stream breaks {what} ({st.error}).",
        evidence=st.error or "",
        location=_loc(location, st.end),
        severity=severity,
    )


_MESSAGES = {
    Verdict.DANGEROUS: "Loading the file imports {g}, a code-execution or system primitive ({why}).",
    Verdict.UNKNOWN: "Loading the file imports {g}, which is not on the list of globals known to be "
    "safe in model files.",
    Verdict.LIBRARY: "Loading the file imports {g}, a class from a known ML library.",
}
_RULES = {Verdict.DANGEROUS: DANGEROUS, Verdict.UNKNOWN: UNKNOWN, Verdict.LIBRARY: LIBRARY}


def _report(
    ctx: ScanContext, buf: Buffer, sink: Sink, location: str, reported: set[tuple[str, str]]
) -> None:
    for g in sink.imports:
        key = ("g", g.full)
        if key in reported:
            continue
        reported.add(key)
        verdict, why = classify(g.module, g.name)
        if verdict == Verdict.SAFE:
            continue
        ctx.report(
            _RULES[verdict],
            _MESSAGES[verdict].format(g=g.full, why=why),
            evidence=g.full,
            location=_loc(location, g.offset),
        )
    for offset, what in sink.unresolved:
        ctx.report(
            UNRESOLVED,
            f"A global is imported whose name is not a literal: {what}.",
            evidence=what,
            location=_loc(location, offset),
        )
    for offset, code in sink.extensions:
        ctx.report(
            EXTENSION,
            f"The pickle imports the global registered under extension code {code}.",
            evidence=f"extension code {code}",
            location=_loc(location, offset),
        )
    for offset, target, verb in sink.mutations:
        key = ("m", target.full)
        if key in reported:
            continue
        reported.add(key)
        ctx.report(
            MUTATION,
            f"The pickle {verb} the imported {target.full} while loading.",
            evidence=target.full,
            location=_loc(location, offset),
        )
    for offset, what in sink.indirect:
        ctx.report(
            INDIRECT,
            f"The pickle {what}.",
            evidence=what,
            location=_loc(location, offset),
        )
    for offset, loader, blob in sink.nested:
        _nested(ctx, buf, offset, loader, blob, location)


def _nested(
    ctx: ScanContext, buf: Buffer, offset: int, loader: Glob, arg: object, location: str
) -> None:
    data = _literal_bytes(ctx, buf, arg)
    if data is None:
        ctx.report(
            NESTED,
            f"The pickle calls {loader.full} on data computed while loading.",
            evidence=loader.full,
            location=_loc(location, offset),
        )
        return
    if ctx.depth + 1 > ctx.limits.max_depth:
        # Past the nesting bound the data would not be opened: a chain of allow-listed loaders
        # (torch.storage._load_from_bytes) would hide its innermost payload behind a medium.
        ctx.report(
            NESTED,
            f"The pickle calls {loader.full} on data nested too deeply to analyse.",
            evidence=loader.full,
            location=_loc(location, offset),
        )
        return
    name = f"{location or 'pickle'}@{offset}"
    ctx.scan_nested(BytesSource(data), name)


def _literal_bytes(ctx: ScanContext, buf: Buffer, arg: object) -> Buffer | None:
    """The bytes a nested loader receives, when they are a literal of the pickle.

    Protocol 2 writes bytes as ``_codecs.encode(<str>, 'latin1')``: that form is decoded too
    (within the member-size and decompression budgets, as it needs a copy).
    """
    if isinstance(arg, Blob):
        return memoryview(buf)[arg.start : arg.start + arg.size]
    if not isinstance(arg, Obj) or not isinstance(arg.callee, Glob):
        return None
    callee = arg.callee
    args = arg.args
    if (callee.module, callee.name) != ("_codecs", "encode") or not isinstance(args, tuple):
        return None
    if len(args) != 2 or args[1] not in ("latin1", "latin-1", "iso-8859-1"):
        return None
    text = args[0]
    if isinstance(text, BigStr):
        if text.size > ctx.limits.max_member_size or not ctx.take_uncompressed(text.size):
            return None
        try:
            text = str(memoryview(buf)[text.start : text.start + text.size], "utf-8")
        except UnicodeDecodeError:
            return None
    if not isinstance(text, str):
        return None
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def stream_globals(streams: list[PickleStream]) -> list[str]:
    """Sorted unique ``module.name`` imported by ``streams``."""
    return sorted({g.full for s in streams for g in s.globals})


def is_quiet_noise(streams: list[PickleStream]) -> bool:
    """True when ``streams`` is a single broken stream that imported nothing (raw data)."""
    return len(streams) == 1 and not streams[0].complete and not streams[0].globals


__all__ = [
    "DANGEROUS",
    "MALFORMED",
    "UNKNOWN",
    "PickleGlobal",
    "PickleStream",
    "analyze_pickles",
    "looks_like_pickle",
    "stream_globals",
]
