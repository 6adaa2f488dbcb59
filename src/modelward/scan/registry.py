"""Picks the detector for a piece of content, importing a format module only when it may apply.

``ENTRIES`` lists every detector in priority order with a cheap check over the first bytes that
is a *superset* of the detector's own ``matches`` (a test keeps the two in step). A module is
imported the first time one of its checks passes, so scanning a folder of pickles or a GGUF
never pays for the Keras, ONNX or template analysers. :func:`load` imports everything (for the
rule catalogue and for callers that want every detector).

Adding a format: one module under ``formats/`` and its entries here.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import NamedTuple

from modelward.scan.detector import HEAD_SIZE, Detector, detectors
from modelward.scan.sniff import find_hdf5_signature, is_legacy_torch
from modelward.scan.source import Source
from modelward.scan.tarread import octal_checksum_field

MayMatch = Callable[[bytes, Source], bool]


def _always(head: bytes, src: Source) -> bool:
    return True


def _prefix(*magics: bytes) -> MayMatch:
    return lambda head, src: head.startswith(magics)


def _safetensors(head: bytes, src: Source) -> bool:
    return len(head) >= 10 and b"{" in head[8:80]


def _tar(head: bytes, src: Source) -> bool:  # ustar magic, or an octal v7 checksum field
    return len(head) >= 512 and (head[257:262] == b"ustar" or octal_checksum_field(head))


def _hdf5(head: bytes, src: Source) -> bool:
    return find_hdf5_signature(head, src) is not None


def _json(head: bytes, src: Source) -> bool:
    return head.lstrip()[:1] == b"{"


class Entry(NamedTuple):
    module: str
    detector: str
    priority: int
    may_match: MayMatch


ENTRIES: tuple[Entry, ...] = (
    Entry("containers", "Tar", 5, _tar),
    Entry("pytorch", "LegacyPyTorch", 10, lambda head, src: is_legacy_torch(head)),
    Entry("gguf", "GGUFDetector", 10, _prefix(b"GGUF")),
    Entry("numpy", "NumpyDetector", 20, _prefix(b"\x93NUMPY")),
    Entry("archives", "Zip", 20, _prefix(b"PK")),
    Entry("containers", "SevenZip", 20, _prefix(b"7z\xbc\xaf\x27\x1c")),
    Entry("compressed", "Gzip", 20, _prefix(b"\x1f\x8b")),
    Entry("compressed", "Bzip2", 20, _prefix(b"BZh")),
    Entry("compressed", "Xz", 20, _prefix(b"\xfd7zXZ\x00")),
    Entry("compressed", "JoblibZFile", 20, _prefix(b"ZF")),
    Entry("safetensors", "SafetensorsDetector", 20, _safetensors),
    Entry("archives", "Llamafile", 40, _prefix(b"MZ", b"\x7fELF", b"#!")),
    Entry("keras", "KerasH5Detector", 40, _hdf5),
    Entry("tflite", "TFLiteDetector", 45, lambda head, src: head[4:8] == b"TFL3"),
    Entry("pickle", "PickleDetector", 80, _always),
    Entry("compressed", "LzmaAlone", 150, _prefix(b"\x5d\x00\x00")),
    Entry("compressed", "Zlib", 150, _prefix(b"\x78")),
    Entry("onnx", "OnnxDetector", 190, _always),
    Entry("coreml", "CoreMLDetector", 195, _always),
    Entry("tensorflow", "SavedModelDetector", 200, _always),
    Entry("tensorflow", "KerasMetadataDetector", 205, _always),
    Entry("tensorflow", "GraphDefDetector", 210, _always),
    Entry("keras", "KerasConfigDetector", 245, _json),
    Entry("hfconfig", "HuggingFaceConfig", 250, _json),
    Entry("archives", "EmbeddedZip", 900, _always),
)

FORMAT_MODULES = tuple(dict.fromkeys(e.module for e in ENTRIES))

_imported: set[str] = set()
_by_name: dict[str, Detector] = {}


def _import(module: str) -> None:
    if module not in _imported:
        importlib.import_module(f"modelward.scan.formats.{module}")
        _imported.add(module)
        _by_name.update((type(d).__name__, d) for d in detectors())


def _detector(entry: Entry) -> Detector:
    _import(entry.module)
    return _by_name[entry.detector]


def load() -> list[Detector]:
    """Import every format module (each registers its detectors); all detectors in order."""
    for module in FORMAT_MODULES:
        _import(module)
    return detectors()


def identify(src: Source, name: str = "") -> Detector | None:
    """The first detector, in priority order, that recognises ``src`` by content, or ``None``."""
    head = src.head(HEAD_SIZE)
    for entry in ENTRIES:
        if entry.may_match(head, src):
            det = _detector(entry)
            if det.matches(head, src):
                return det
    return None


def claimed_by_extension(name: str) -> list[Detector]:
    """Detectors whose format the file's extension claims (used for masquerade and fallback)."""
    ext = os.path.splitext(name)[1].lower()
    if not ext:
        return []
    return [d for d in load() if ext in d.extensions]
