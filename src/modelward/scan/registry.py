"""Loads every format module and picks the detector for a piece of content."""

from __future__ import annotations

import importlib
import os

from modelward.scan.detector import HEAD_SIZE, Detector, detectors
from modelward.scan.source import Source

FORMAT_MODULES = (
    "pickle",
    "numpy",
    "pytorch",
    "archives",
    "containers",
    "compressed",
    "gguf",
    "safetensors",
    "keras",
    "tensorflow",
    "onnx",
    "tflite",
    "coreml",
    "hfconfig",
)

_loaded = False


def load() -> list[Detector]:
    """Import every format module once (each registers its detectors) and return them in order."""
    global _loaded
    if not _loaded:
        for name in FORMAT_MODULES:
            try:
                importlib.import_module(f"modelward.scan.formats.{name}")
            except ModuleNotFoundError as exc:  # a format module not written yet
                if exc.name != f"modelward.scan.formats.{name}":
                    raise
        _loaded = True
    return detectors()


def identify(src: Source, name: str = "") -> Detector | None:
    """The first detector that recognises ``src`` by content, or ``None``."""
    head = src.head(HEAD_SIZE)
    for det in load():
        if det.matches(head, src):
            return det
    return None


def claimed_by_extension(name: str) -> list[Detector]:
    """Detectors whose format the file's extension claims (used for masquerade and fallback)."""
    ext = os.path.splitext(name)[1].lower()
    if not ext:
        return []
    return [d for d in load() if ext in d.extensions]
