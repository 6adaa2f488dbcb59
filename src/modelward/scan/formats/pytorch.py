"""PyTorch formats: the legacy raw-pickle checkpoint, and member analysis for torch zips and TorchScript.

A legacy checkpoint (``_use_new_zipfile_serialization=False``) is five pickles back to back - magic
number, protocol version, sys_info, the object, the storage keys - followed by raw storage bytes
that must never be read as pickles. Zip checkpoints and TorchScript archives are walked by
:mod:`modelward.scan.formats.archives`, which calls the helpers here for their members.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from modelward.models import Finding, Severity
from modelward.scan.context import NestedResult, ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.members import MALFORMED
from modelward.scan.pickle import PickleStream, analyze_pickles, looks_like_pickle
from modelward.scan.rules import catalog, rule
from modelward.scan.sniff import TORCH_MAGIC_NUMBER, is_legacy_torch
from modelward.scan.source import Buffer, Source

MAGIC_NUMBER = TORCH_MAGIC_NUMBER
LEGACY_PICKLES = ("magic number", "protocol version", "sys_info", "model", "storage keys")

TS_CODE = rule(
    "torchscript.code",
    Severity.LOW,
    "The archive carries TorchScript code that torch.jit.load compiles and runs",
    "TorchScript is a restricted language, but it runs whenever the model is called; load it only "
    "from a trusted source, or prefer safetensors weights.",
)
TS_DANGEROUS = rule(
    "torchscript.dangerous-call",
    Severity.HIGH,
    "TorchScript code calls something that reads or writes files or reaches the host",
    "Do not load this model; review the code members of the archive.",
)

_TS_PATTERNS: tuple[tuple[re.Pattern[str], Severity, str], ...] = (
    (
        re.compile(r"__import__|\bimportlib\b|\bbuiltins\b|__builtins__"),
        Severity.CRITICAL,
        "import",
    ),
    (
        re.compile(r"\b(?:os|posix|nt|subprocess|sys|socket|pty|shutil)\.\w+"),
        Severity.CRITICAL,
        "host",
    ),
    (re.compile(r"\b(?:eval|exec|compile|system|popen)\s*\("), Severity.CRITICAL, "exec"),
    (re.compile(r"\bopen\s*\("), Severity.HIGH, "file"),
    (
        re.compile(
            r"\b(?:torch|aten|ops\.aten)\.(?:save|load|from_file)\b|aten::(?:save|from_file)"
        ),
        Severity.HIGH,
        "file",
    ),
    (re.compile(r"\btorch\.(?:hub|classes)\.\w+"), Severity.HIGH, "extension"),
)

_STORAGE = re.compile(r"(?:^|/)(?:data|constants|traced_inputs|\.data|tensors)/\d+$")
_TEXT_MEMBERS = {
    "version": "archive_version",
    ".format_version": "format_version",
    "byteorder": "byteorder",
    ".storage_alignment": "storage_alignment",
    ".data/version": "data_version",
}
_ELEMENT_SIZE = {
    "Double": 8,
    "Float": 4,
    "Half": 2,
    "BFloat16": 2,
    "Long": 8,
    "Int": 4,
    "Short": 2,
    "Char": 1,
    "Byte": 1,
    "Bool": 1,
    "ComplexFloat": 8,
    "ComplexDouble": 16,
}


def is_storage_member(name: str) -> bool:
    """Raw tensor bytes (``archive/data/0``): never interpreted by torch as anything else."""
    return bool(_STORAGE.search(name))


def record_text_member(ctx: ScanContext, name: str, data: bytes) -> bool:
    """Store small version/byteorder members in metadata; True when ``name`` is one of them."""
    tail = name.split("/", 1)[1] if "/" in name else name
    key = _TEXT_MEMBERS.get(tail)
    if key is None:
        return False
    ctx.metadata[key] = data[:64].decode("utf-8", errors="replace").strip()
    return True


def _no_dispatch(ctx: ScanContext, src: Source, name: str) -> NestedResult:
    return NestedResult("unknown", {})


def _scratch(ctx: ScanContext) -> ScanContext:
    return ScanContext(ctx.path, ctx.limits, _no_dispatch)


def _replay(ctx: ScanContext, findings: list[Finding], keep: Callable[[Finding], bool]) -> None:
    rules = catalog()
    for f in findings:
        r = rules.get(f.rule)
        if r is not None and keep(f):
            ctx.report(r, f.message, evidence=f.evidence, location=f.location, severity=f.severity)


def note_globals(ctx: ScanContext, streams: list[PickleStream]) -> None:
    """Merge the globals the streams import into ``ctx.metadata['globals']`` (sorted, unique)."""
    names = {f"{g.module}.{g.name}" for s in streams for g in s.globals}
    if names:
        old = ctx.metadata.get("globals")
        merged = set(old) if isinstance(old, list) else set()
        ctx.metadata["globals"] = sorted(merged | names)[:500]


_TS_OWN = re.compile(r"^__torch__\.[\w.]+$")


def analyze_member_pickle(
    buf: Buffer, ctx: ScanContext, name: str, *, torchscript: bool = False
) -> list[PickleStream]:
    """Analyse the pickle member ``name`` in a child context; its globals go to ``ctx.metadata``.

    In TorchScript archives, ``__torch__.*`` globals name the archive's own TorchScript classes:
    torch's C++ unpickler resolves them itself and imports nothing from Python. Findings about
    those alone are dropped; the code is reported separately. (The ``torch.jit._pickle`` type
    helpers are on the pickle allowlist.)"""
    child = ctx.child(name)
    if not torchscript:
        streams = analyze_pickles(buf, child)
        note_globals(ctx, streams)
        return streams
    scratch = _scratch(child)
    streams = analyze_pickles(buf, scratch)

    def keep(f: Finding) -> bool:
        return not (_TS_OWN.match(f.evidence) and f.severity <= Severity.MEDIUM)

    _replay(child, scratch.findings, keep)
    note_globals(ctx, streams)
    return streams


def scan_member(ctx: ScanContext, src: Source, name: str) -> str:
    """``ctx.scan_nested`` a member; content that no detector claims but that starts like a
    pickle is analysed as one all the same (a pickle member is never left unread)."""
    fmt = ctx.scan_nested(src, name).format
    if fmt == "unknown" and looks_like_pickle(src.read(0, 4096)):
        analyze_member_pickle(src.buffer(), ctx, name)
        return "pickle"
    return fmt


def sniff_storage(head: bytes, buf: Callable[[], Buffer], ctx: ScanContext, name: str) -> bool:
    """A storage member is raw bytes; analyse it only if it is a pickle that imports something."""
    if not looks_like_pickle(head):
        return False
    scratch = _scratch(ctx)
    streams = analyze_pickles(buf(), scratch)
    if not any(s.globals for s in streams):
        return False
    _replay(ctx.child(name), scratch.findings, lambda f: True)
    note_globals(ctx, streams)
    return True


_TS_LITERALS = re.compile(
    r"""(\"\"\"|\'\'\')(?:\\.|[^\\])*?\1|"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|\#[^\n]*"""
)


def _blank_literals(text: str) -> str:
    """``text`` with string literals and comments replaced by spaces (newlines and offsets kept):
    they are data, not calls. TorchScript writes ``"builtins.ValueError"`` as the class name of
    every ``raise ValueError``; a string that names a module runs nothing (TorchScript has no
    eval)."""
    return _TS_LITERALS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def check_torchscript_code(ctx: ScanContext, name: str, text: str) -> None:
    """Report the code member, and higher for calls that reach files or the host."""
    text = _blank_literals(text)
    for pattern, severity, _what in _TS_PATTERNS:
        for m in list(pattern.finditer(text))[:5]:
            line = text.count("\n", 0, m.start()) + 1
            ctx.report(
                TS_DANGEROUS,
                f"TorchScript code calls {m.group(0)!r}.",
                evidence=m.group(0),
                location=f"line {line}",
                severity=severity,
            )


def report_torchscript(ctx: ScanContext, code_members: list[str]) -> None:
    if code_members:
        ctx.report(
            TS_CODE,
            f"The archive carries {len(code_members)} TorchScript code member(s).",
            evidence=", ".join(code_members[:5]),
        )


# ---------------------------------------------------------------------- legacy checkpoints
def _analyze_one(
    buf: Buffer, ctx: ScanContext, start: int, location: str, meta: ScanContext | None = None
) -> PickleStream | None:
    streams = analyze_pickles(buf, ctx, start=start, location=location, multiple=False)
    note_globals(meta or ctx, streams)
    return streams[0] if streams else None


def _storage_element_size(stream: PickleStream) -> int:
    for g in stream.globals:
        if g.name.endswith("Storage"):
            return _ELEMENT_SIZE.get(g.name[: -len("Storage")], 0)
    return 0


def _walk_interleaved(
    buf: Buffer, parent: ScanContext, name: str, step: Callable[[PickleStream], int]
) -> int:
    """Pickles interleaved with raw bytes: analyse each pickle, then ``step`` returns where the
    next one starts (-1: stop). Returns how many pickles were analysed."""
    size = len(buf)
    ctx = parent.child(name)
    first = _analyze_one(buf, ctx, 0, "", parent)
    if first is None or not first.complete:
        return 1
    pos, count = first.end, 1
    while pos < size and looks_like_pickle(bytes(buf[pos : pos + 4096])):
        st = _analyze_one(buf, ctx, pos, "", parent)
        count += 1
        if st is None or not st.complete:
            break
        pos = step(st)
        if pos < 0:
            break
    return count


def walk_legacy_storages(buf: Buffer, parent: ScanContext, name: str) -> int:
    """The ``storages`` member of a legacy tar checkpoint: pickles interleaved with raw storage
    bytes (an 8-byte element count, then the elements). Returns how many pickles were analysed."""

    def step(st: PickleStream) -> int:
        elem = _storage_element_size(st)
        if not elem or st.end + 8 > len(buf):
            return -1  # the storage-views pickle (or something we cannot step over)
        numel = int.from_bytes(bytes(buf[st.end : st.end + 8]), "little")
        return st.end + 8 + numel * elem

    return _walk_interleaved(buf, parent, name, step)


def walk_legacy_tensors(buf: Buffer, parent: ScanContext, name: str) -> int:
    """The ``tensors`` member: a count pickle, then per tensor an args pickle and packed shapes."""

    def step(st: PickleStream) -> int:
        if st.end + 8 > len(buf):
            return -1
        ndim = int.from_bytes(bytes(buf[st.end : st.end + 4]), "little", signed=True)
        if not 0 <= ndim <= 64:
            return -1
        return st.end + 8 + 16 * ndim + 8

    return _walk_interleaved(buf, parent, name, step)


@register
class LegacyPyTorch(Detector):
    """``torch.save(..., _use_new_zipfile_serialization=False)``: recognised by its magic pickle."""

    format = "pytorch-legacy"
    priority = 10  # before the plain pickle detector: its storage bytes are not pickles

    def matches(self, head: bytes, src: Source) -> bool:
        return is_legacy_torch(head)

    def scan(self, src: Source, ctx: ScanContext) -> None:
        buf = src.buffer()
        pos = 0
        done = 0
        for what in LEGACY_PICKLES:
            if pos >= src.size:
                ctx.report(
                    MALFORMED,
                    f"The legacy checkpoint ends before its {what} pickle.",
                    evidence=f"{done} of {len(LEGACY_PICKLES)} pickles",
                    severity=Severity.LOW,
                )
                break
            st = _analyze_one(buf, ctx, pos, f"{what} pickle")
            done += 1
            if st is None or not st.complete or st.end <= pos:
                break  # the analyser reported why; what follows cannot be located
            pos = st.end
        ctx.metadata["pickles"] = done
        ctx.metadata["storage_bytes"] = max(0, src.size - pos)
