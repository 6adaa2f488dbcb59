"""Keras ``.h5`` models: the HDF5 detector that reads the root attributes and checks the config.

HDF5 files are opened with h5py (imported lazily) over the source; only the root attributes
``model_config``, ``training_config``, ``keras_version`` and ``backend`` are read, each bounded in
size. The config itself is checked by :mod:`modelward.scan.keras_config` (also re-exported here).
"""

from __future__ import annotations

from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.detector import Detector, register
from modelward.scan.keras_config import (
    CUSTOM,
    DANGEROUS,
    FILE_ACCESS,
    LAMBDA,
    MALFORMED,
    MAX_CONFIG_BYTES,
    UNSAFE_API,
    analyze_keras_config,
)
from modelward.scan.rules import SCAN_LIMIT, rule
from modelward.scan.sniff import HDF5_MAGIC, find_hdf5_signature
from modelward.scan.source import FileSource, Source, SourceIO

__all__ = [
    "CUSTOM",
    "DANGEROUS",
    "FILE_ACCESS",
    "HDF5_MAGIC",
    "HDF5_MALFORMED",
    "LAMBDA",
    "MALFORMED",
    "MAX_ATTR_BYTES",
    "MAX_CONFIG_BYTES",
    "UNSAFE_API",
    "KerasH5Detector",
    "analyze_keras_config",
    "find_hdf5_signature",
]

HDF5_MALFORMED = rule(
    "hdf5.malformed",
    Severity.MEDIUM,
    "The HDF5 file could not be opened as HDF5",
    "Treat the file as unscanned; a loader may still read parts of it.",
)

MAX_ATTR_BYTES = 32 << 20
_ROOT_ATTRS = ("model_config", "training_config", "keras_version", "backend")


def _attr_text(value: Any) -> bytes | None:
    """An attribute value (str, bytes, or a numpy scalar/array of them) as bytes."""
    if hasattr(value, "tolist") and not isinstance(value, (bytes, str)):
        value = value.tolist()
        if isinstance(value, list):
            if len(value) != 1:
                return None
            value = value[0]
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return None


@register
class KerasH5Detector(Detector):
    """HDF5 files; Keras ``.h5`` models when the root has a ``model_config`` attribute."""

    format = "hdf5"
    extensions = (".h5", ".hdf5")
    priority = 40

    def matches(self, head: bytes, src: Source) -> bool:
        return find_hdf5_signature(head, src) is not None

    def scan(self, src: Source, ctx: ScanContext) -> None:
        import h5py  # lazily: heavy, and only HDF5 files need it

        values: dict[str, bytes] = {}
        try:
            fileobj: Any = src.path if isinstance(src, FileSource) else SourceIO(src)
            with h5py.File(fileobj, "r", locking=False) as f:
                root_id = f.id
                for name in _ROOT_ATTRS:
                    if name not in f.attrs:
                        continue
                    aid = h5py.h5a.open(root_id, name.encode())
                    size = aid.get_storage_size()
                    if size > MAX_ATTR_BYTES:
                        ctx.report(
                            SCAN_LIMIT,
                            f"The {name} attribute is {size} bytes; it was not analysed.",
                            evidence=name,
                        )
                        continue
                    text = _attr_text(f.attrs[name])
                    if text is not None:
                        values[name] = text
        except Exception as exc:  # libhdf5 reports any malformation as an exception
            ctx.report(
                HDF5_MALFORMED,
                "h5py could not open the file or read its root attributes.",
                evidence=f"{type(exc).__name__}: {exc}"[:300],
            )
            return
        version = values.get("keras_version")
        backend = values.get("backend")
        if version is not None:
            ctx.metadata["keras_version"] = version[:100].decode("utf-8", "replace")
        if backend is not None:
            ctx.metadata["backend"] = backend[:100].decode("utf-8", "replace")
        if "model_config" in values:
            ctx.format = "keras-h5"
            ctx.metadata.update(
                analyze_keras_config(values["model_config"], ctx, "model_config attribute")
            )
        if "training_config" in values:
            analyze_keras_config(values["training_config"], ctx, "training_config attribute")


MAX_CONFIG_JSON = 16 << 20
"""Loose JSON files larger than this are not read as Keras configs."""


@register
class KerasConfigDetector(Detector):
    """A Keras model saved as a folder (``model.save(path, zipped=False)``): its ``config.json``,
    which ``keras.saving.load_model(folder)`` deserialises as the ``.keras`` zip's."""

    format = "keras-v3"
    priority = 245
    """After every binary format, before the Hugging Face configs."""

    def matches(self, head: bytes, src: Source) -> bool:
        if head.lstrip()[:1] != b"{" or src.size > MAX_CONFIG_JSON:
            return False
        data = head if src.size <= len(head) else src.read(0, src.size)
        return b'"class_name"' in data and b'"config"' in data

    def scan(self, src: Source, ctx: ScanContext) -> None:
        name = ctx.prefix.rsplit("/", 1)[-1] if ctx.prefix else "config.json"
        data = bytes(src.read(0, min(src.size, MAX_CONFIG_JSON)))
        ctx.metadata.update(analyze_keras_config(data, ctx, name or "config.json"))
