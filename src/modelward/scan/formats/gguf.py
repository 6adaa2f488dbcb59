"""GGUF (llama.cpp/ggml) models: header sanity, metadata, and every chat template analysed.

The header, key/value section and tensor infos are parsed by hand from a buffered window over
``src.read`` (tensor data is never read). Every count and length is checked against the bytes left
in the file before anything is allocated, arrays of strings (vocabularies of 150k tokens) are skipped
by walking their lengths without building lists, and version 1's 32-bit counts are honoured.

Findings: ``gguf.malformed`` (what a loader would misread or reject), ``gguf.bad-tensor-layout``
(tensor data out of bounds, overlapping or misaligned), ``gguf.duplicate-key`` and
``gguf.duplicate-tensor`` (ambiguities a loader and a scanner may resolve differently),
``gguf.unknown-tensor-type``, and the ``template.*`` rules of every chat template
(``tokenizer.chat_template`` and ``tokenizer.chat_template.<name>``).
"""

from __future__ import annotations

import struct
from array import array
from typing import Any

from modelward.models import Severity
from modelward.scan import templates
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.gguf_header import WINDOW, Cursor, Malformed, Stop

# FILE_TYPES and GGML_TYPES are also imported from this module (tests, callers).
from modelward.scan.gguf_tables import ARRAY, FILE_TYPES, GGML_TYPES, SCALARS, STRING
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.source import Source

MALFORMED = rule(
    "gguf.malformed",
    Severity.MEDIUM,
    "GGUF header is malformed: counts, lengths or types that a loader would misread or reject",
    "Do not load the file; llama.cpp-style parsers have had memory-safety bugs on such headers. "
    "Obtain the model again from a trusted source.",
)
LAYOUT = rule(
    "gguf.bad-tensor-layout",
    Severity.MEDIUM,
    "GGUF tensor data lies outside the file, overlaps other tensors or is misaligned",
    "Do not load the file (out-of-bounds reads in the loader); re-download it and verify its hash.",
)
DUP_KEY = rule(
    "gguf.duplicate-key",
    Severity.MEDIUM,
    "GGUF metadata key appears more than once (loaders disagree on which value wins)",
    "Do not trust the file's metadata or chat template; obtain the model from a trusted source.",
)
DUP_TENSOR = rule(
    "gguf.duplicate-tensor",
    Severity.MEDIUM,
    "GGUF tensor name appears more than once",
    "Do not load the file; obtain the model from a trusted source.",
)
UNKNOWN_TYPE = rule(
    "gguf.unknown-tensor-type",
    Severity.LOW,
    "GGUF tensor has a ggml type this scanner does not know; its size could not be checked",
    "Make sure the runtime that loads the file supports the type; update modelward.",
)

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME = 64  # GGML_MAX_NAME, including the terminating NUL
MAX_KEY = 65535
MAX_KV = 1 << 16
MAX_TENSORS = 1 << 20
MAX_ARRAY_STRINGS = 1 << 24
MAX_NESTING = 8
_TEXT_CAP = 1024

# String values worth keeping (metadata), read up to _TEXT_CAP bytes.
_KEEP = frozenset(
    {
        "general.architecture",
        "general.name",
        "general.basename",
        "general.size_label",
        "general.finetune",
        "general.organization",
        "general.author",
        "general.version",
        "general.license",
        "general.license.name",
        "general.license.link",
        "general.url",
        "general.source.url",
        "general.source.huggingface.repository",
        "general.repo_url",
        "tokenizer.ggml.model",
        "tokenizer.ggml.pre",
    }
)
_TEMPLATE_KEY = "tokenizer.chat_template"
_MAX_TEMPLATE_ITEMS = 64


@register
class GGUFDetector(Detector):
    format = "gguf"
    extensions = (".gguf",)
    priority = 10

    def matches(self, head: bytes, src: Source) -> bool:
        return head[:4] == MAGIC

    def scan(self, src: Source, ctx: ScanContext) -> None:
        head = src.read(0, 24)
        if len(head) < 8:
            ctx.report(MALFORMED, "GGUF file is truncated inside its header.", evidence=head.hex())
            return
        version = int.from_bytes(head[4:8], "little")
        big = False
        if version & 0xFFFF == 0 and version:  # written big-endian (gguf-py's own test)
            version = int.from_bytes(head[4:8], "big")
            big = True
        ctx.metadata["version"] = version
        if big:
            ctx.metadata["endianness"] = "big"
        if version not in (1, 2, 3):
            ctx.report(
                MALFORMED,
                f"GGUF version {version} is not one of the known versions 1-3.",
                evidence=f"version {version}",
                location="byte 4",
            )
            return
        parser = _Parser(src, ctx, big, version)
        try:
            parser.parse()
        except Stop:
            pass
        except Malformed as exc:
            ctx.report(
                MALFORMED,
                f"GGUF header is malformed: {exc.args[0]}.",
                evidence=str(exc.args[0])[:200],
                location=f"byte {exc.offset}",
            )
        parser.finish()


class _Parser:
    """One pass over the header: key/values, then tensor infos, then layout checks."""

    def __init__(self, src: Source, ctx: ScanContext, big: bool, version: int) -> None:
        self.src = src
        self.ctx = ctx
        self.cur = Cursor(src, big, version)
        self.version = version
        self.meta: dict[str, Any] = {}
        self.context_lengths: dict[str, int] = {}
        self.alignment = DEFAULT_ALIGNMENT
        self.template_names: list[str] = []
        self.chat_templates: list[str] = []
        self.n_tensors = 0
        self.n_kv = 0
        self.parameters = 0
        self.type_hist: dict[str, int] = {}
        self.type_elems: dict[str, int] = {}
        self.tensors_parsed = False

    # ------------------------------------------------------------------ header
    def parse(self) -> None:
        cur, ctx = self.cur, self.ctx
        cur.skip(8)
        n_tensors = cur.read_count()
        n_kv = cur.read_count()
        self.n_tensors, self.n_kv = n_tensors, n_kv
        ctx.metadata["tensor_count"] = n_tensors
        ctx.metadata["kv_count"] = n_kv
        hdr = cur.count.size
        # Smallest possible entries: a KV is key length + type + a 1-byte value; a tensor info is
        # name length + n_dims + type + offset.
        if n_kv * (hdr + 4 + 1) > cur.left():
            raise Malformed(f"{n_kv} key/value pairs cannot fit in the file", 16)
        if n_tensors * (hdr + 4 + 4 + 8) > cur.left():
            raise Malformed(f"{n_tensors} tensor infos cannot fit in the file", 8)
        if n_kv > MAX_KV:
            ctx.report(
                SCAN_LIMIT,
                f"GGUF declares {n_kv:,} metadata entries; more than {MAX_KV:,} are not analysed.",
                evidence=str(n_kv),
            )
            return
        seen: set[str] = set()
        for _ in range(n_kv):
            self.read_kv(seen)
        if n_tensors > MAX_TENSORS:
            ctx.report(
                SCAN_LIMIT,
                f"GGUF declares {n_tensors:,} tensors; more than {MAX_TENSORS:,} are not analysed.",
                evidence=str(n_tensors),
            )
            return
        self.read_tensors(n_tensors)

    def read_kv(self, seen: set[str]) -> None:
        cur = self.cur
        at = cur.tell()
        raw, n = cur.string(MAX_KEY)
        if n > MAX_KEY:
            raise Malformed(f"key of {n} bytes is longer than GGUF allows", at)
        key = raw.decode("utf-8", "replace")
        vtype = cur.unpack(cur.u32)
        if key in seen:
            self.ctx.report(
                DUP_KEY,
                f"Metadata key {key!r} appears more than once.",
                evidence=key[:200],
                location=f"byte {at}",
            )
        seen.add(key)
        if vtype == STRING:
            want = key in _KEEP or key.startswith(_TEMPLATE_KEY)
            if key.startswith(_TEMPLATE_KEY):
                self.read_template(key, at)
            elif want:
                value, _n = cur.string(_TEXT_CAP)
                self.meta[key] = value.decode("utf-8", "replace")
            else:
                cur.skip(cur.read_count())
        elif vtype == ARRAY:
            self.read_array(key, at, 0)
        elif vtype in SCALARS:
            value = cur.unpack(struct.Struct(cur.endian + SCALARS[vtype]))
            self.scalar(key, value, at)
        else:
            raise Malformed(f"key {key!r} has unknown value type {vtype}", at)

    def scalar(self, key: str, value: Any, at: int) -> None:
        if key == "general.alignment":
            if not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise Malformed(f"general.alignment {value} is not a power of two", at)
            self.alignment = int(value)
            self.ctx.metadata["alignment"] = self.alignment
        elif key == "general.file_type":
            self.meta[key] = value
        elif key.endswith(".context_length") and isinstance(value, int):
            self.context_lengths[key[: -len(".context_length")]] = int(value)

    def read_array(self, key: str, at: int, depth: int) -> None:
        cur = self.cur
        if depth > MAX_NESTING:
            raise Malformed(f"arrays nested more than {MAX_NESTING} deep in {key!r}", at)
        etype = cur.unpack(cur.u32)
        count = cur.read_count()
        if etype in SCALARS:
            size = struct.calcsize(SCALARS[etype])
            if count * size > cur.left():
                raise Malformed(f"array {key!r} of {count} items runs past the end of the file", at)
            cur.skip(count * size)
        elif etype == STRING:
            if key == "tokenizer.ggml.tokens":
                self.ctx.metadata["vocab_size"] = count
            if key == "tokenizer.chat_templates":
                self.read_template_names(count, at)
            elif key.startswith(_TEMPLATE_KEY):
                self.read_template_array(key, count, at)
            elif count > MAX_ARRAY_STRINGS:
                self.ctx.report(
                    SCAN_LIMIT,
                    f"Array {key!r} declares {count:,} strings; the rest of the header was not "
                    f"analysed.",
                    evidence=f"{key}: {count}",
                    location=f"byte {at}",
                )
                raise Stop
            else:
                cur.skip_strings(count)
        elif etype == ARRAY:
            if count * 12 > cur.left():
                raise Malformed(f"array {key!r} of {count} arrays cannot fit in the file", at)
            for _ in range(count):
                self.read_array(key, at, depth + 1)
        else:
            raise Malformed(f"array {key!r} has unknown element type {etype}", at)

    def read_template_names(self, count: int, at: int) -> None:
        cur = self.cur
        if count * cur.count.size > cur.left():
            raise Malformed(f"array of {count} template names cannot fit in the file", at)
        for i in range(count):
            raw, _n = cur.string(256)
            if i < 64:
                self.template_names.append(raw.decode("utf-8", "replace"))

    def read_template_array(self, key: str, count: int, at: int) -> None:
        """Strings in an array under a template key are templates too: readers that collapse a
        one-item array into its item (``transformers``' GGUF loader does) render them."""
        cur = self.cur
        if count * cur.count.size > cur.left():
            raise Malformed(f"array {key!r} of {count} strings cannot fit in the file", at)
        for i in range(count):
            if i == _MAX_TEMPLATE_ITEMS:
                self.ctx.report(
                    SCAN_LIMIT,
                    f"Array {key!r} holds {count:,} templates; only the first "
                    f"{_MAX_TEMPLATE_ITEMS} were analysed.",
                    evidence=f"{key}: {count}",
                    location=f"byte {at}",
                )
                cur.skip_strings(count - i)
                return
            self.read_template(key, at, f"{key}[{i}]")

    def read_template(self, key: str, at: int, label: str = "") -> None:
        cur, ctx = self.cur, self.ctx
        n = cur.read_count()
        if n > cur.left():
            raise Malformed(f"{key} of {n} bytes runs past the end of the file", at)
        name = key[len(_TEMPLATE_KEY) + 1 :] if key != _TEMPLATE_KEY else "default"
        self.chat_templates.append(name)
        limit = ctx.limits.max_template_bytes
        location = f"{label or key} (byte {at})"
        if n <= limit:
            text = cur.take(n).decode("utf-8", "replace")
            templates.check_template(ctx, text, location)
            return
        # Too large to parse: search it as text, a window at a time (bounded memory).
        ctx.report(
            SCAN_LIMIT,
            f"Chat template of {n:,} bytes is larger than the {limit:,} parsed; only searched "
            f"as text.",
            evidence=f"{key}: {n} bytes",
            location=location,
        )
        start = cur.tell()
        cur.skip(n)
        overlap = 256
        pos = 0
        while pos < n:
            chunk = self.src.read(start + pos, min(WINDOW, n - pos) + overlap)
            for issue in templates.raw_issues(chunk.decode("utf-8", "replace")):
                ctx.report(issue.rule, issue.message, evidence=issue.evidence, location=location)
            pos += WINDOW

    # ------------------------------------------------------------------ tensors
    def read_tensors(self, n_tensors: int) -> None:
        cur, ctx = self.cur, self.ctx
        dim = cur.u32 if self.version == 1 else cur.u64
        offsets = array("Q")
        sizes = array("Q")
        names: set[bytes] = set()
        for i in range(n_tensors):
            at = cur.tell()
            n = cur.read_count()
            if n > cur.left():
                raise Malformed(f"tensor {i} name length {n} runs past the end of the file", at)
            raw = cur.take(min(n, MAX_NAME * 4))
            cur.skip(n - len(raw))
            shown = raw.decode("utf-8", "replace")
            if n >= MAX_NAME:
                raise Malformed(f"tensor name {shown[:80]!r} is {n} bytes (ggml allows 63)", at)
            if raw in names:
                ctx.report(
                    DUP_TENSOR,
                    f"Tensor name {shown!r} appears more than once.",
                    evidence=shown,
                    location=f"byte {at}",
                )
            names.add(raw)
            n_dims = cur.unpack(cur.u32)
            if n_dims > MAX_DIMS:
                raise Malformed(f"tensor {shown!r} has {n_dims} dimensions (ggml allows 4)", at)
            elems = 1
            dims = []
            for _ in range(n_dims):
                d = cur.unpack(dim)
                if d >= 1 << 63:
                    raise Malformed(f"tensor {shown!r} has a negative dimension", at)
                dims.append(d)
                elems *= d
            if elems >= 1 << 63:
                raise Malformed(f"tensor {shown!r} has {elems} elements (overflows int64)", at)
            ttype = cur.unpack(cur.u32)
            offset = cur.unpack(cur.u64)
            info = GGML_TYPES.get(ttype)
            if info is None:
                ctx.report(
                    UNKNOWN_TYPE,
                    f"Tensor {shown!r} has ggml type {ttype}, unknown to this scanner.",
                    evidence=f"type {ttype}",
                    location=f"byte {at}",
                )
                nbytes = 0
                tname = f"type{ttype}"
            else:
                tname, block, bsize = info
                if dims and dims[0] % block:
                    raise Malformed(
                        f"tensor {shown!r}: first dimension {dims[0]} is not a multiple of the "
                        f"{tname} block size {block}",
                        at,
                    )
                nbytes = elems // block * bsize
            if offset % self.alignment:
                ctx.report(
                    LAYOUT,
                    f"Tensor {shown!r} starts at offset {offset}, not a multiple of the "
                    f"alignment {self.alignment}.",
                    evidence=f"{shown}: offset {offset}",
                    location=f"byte {at}",
                )
            self.parameters += elems
            self.type_hist[tname] = self.type_hist.get(tname, 0) + 1
            self.type_elems[tname] = self.type_elems.get(tname, 0) + elems
            offsets.append(offset)
            sizes.append(min(nbytes, (1 << 64) - 1))
        self.tensors_parsed = True
        self.check_layout(offsets, sizes)

    def check_layout(self, offsets: array[int], sizes: array[int]) -> None:
        ctx = self.ctx
        end_of_infos = self.cur.tell()
        data_start = -(-end_of_infos // self.alignment) * self.alignment
        ctx.metadata["data_offset"] = data_start
        if not offsets:
            return
        room = self.src.size - data_start
        if room < 0:
            ctx.report(
                LAYOUT,
                "GGUF tensor data section starts past the end of the file (truncated file).",
                evidence=f"data at {data_start}, file size {self.src.size}",
            )
            return
        order = sorted(range(len(offsets)), key=offsets.__getitem__)
        prev_end = 0
        reported = 0
        for i in order:
            start, size = offsets[i], sizes[i]
            end = start + size
            problem = None
            if end > room:
                problem = (
                    f"tensor {i} data [{start}, {end}) ends past the end of the file "
                    f"({room} bytes of data)"
                )
            elif start < prev_end:
                problem = f"tensor {i} data [{start}, {end}) overlaps the previous tensor"
            if problem is not None:
                ctx.report(
                    LAYOUT,
                    f"GGUF {problem}.",
                    evidence=problem,
                    location=f"tensor info {i}",
                )
                reported += 1
                if reported >= 20:
                    return
            prev_end = max(prev_end, end)

    # ------------------------------------------------------------------ metadata
    def finish(self) -> None:
        md, meta = self.ctx.metadata, self.meta
        arch = meta.get("general.architecture")
        if arch:
            md["architecture"] = arch
        for key, out in (
            ("general.name", "name"),
            ("general.basename", "basename"),
            ("general.size_label", "size_label"),
            ("general.organization", "organization"),
            ("tokenizer.ggml.model", "tokenizer"),
        ):
            if key in meta:
                md[out] = meta[key]
        lic = {
            k.removeprefix("general.license").lstrip(".") or "id": v
            for k, v in meta.items()
            if k.startswith("general.license")
        }
        if lic:
            md["license"] = lic
        ftype = meta.get("general.file_type")
        quant = FILE_TYPES.get(ftype) if isinstance(ftype, int) else None
        if quant is None and self.type_elems:
            big = {k: v for k, v in self.type_elems.items() if k not in ("F32",)}
            pick = big or self.type_elems
            quant = max(pick, key=pick.__getitem__)
        if quant is not None:
            md["quantization"] = quant
        if self.tensors_parsed:
            md["parameters"] = self.parameters
            md["tensor_types"] = dict(sorted(self.type_hist.items()))
        if arch and arch in self.context_lengths:
            md["context_length"] = self.context_lengths[arch]
        elif len(self.context_lengths) == 1:
            md["context_length"] = next(iter(self.context_lengths.values()))
        md["chat_template"] = bool(self.chat_templates)
        named = [t for t in self.chat_templates if t != "default"]
        for name in self.template_names:
            if name not in named:
                named.append(name)
        if named:
            md["chat_templates"] = named
