"""Keras: model configs (v3 ``config.json``, HDF5 ``model_config``) checked for code and file access.

Loading a Keras model rebuilds every object its config names. That runs code when the config
holds a ``Lambda`` (marshalled Python bytecode, CVE-2024-3660), names a module and callable
outside Keras (``{"module": "os", "class_name": "function", "config": "system"}``, CVE-2025-1550),
or names a Keras function that downloads, reads or writes files (``keras.utils.get_file``,
CVE-2025-8747; ``TFSMLayer`` loading an attacker's SavedModel, CVE-2026-1462). The config is JSON
parsed with a size bound and walked iteratively; bytecode is base64-decoded to show the names it
uses but never unmarshalled.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from typing import Any

from modelward.models import Severity
from modelward.scan.context import ScanContext
from modelward.scan.keras_names import (
    BUILTIN_NAMES,
    DANGEROUS_NAMES,
    DENY_MODULES,
    FILE_GADGETS,
    FILE_KEYS,
    KERAS_ROOTS,
    PATH_VALUE_KEYS,
    SAFE_BUILTINS,
    TF_FILE_FUNCS,
    TF_OP_LAYERS,
    TF_PY_FUNCS,
    UNSAFE_KERAS,
)
from modelward.scan.rules import SCAN_LIMIT, rule

MAX_CONFIG_BYTES = 32 << 20
"""Largest config parsed (real ones are kilobytes to a few megabytes)."""
MAX_NODES = 2_000_000
"""JSON values walked per config before the rest is reported as not analysed."""
MAX_CLASS_NAMES = 50

LAMBDA = rule(
    "keras.lambda-layer",
    Severity.CRITICAL,
    "The model carries Python bytecode (a Lambda layer or lambda function) that runs when it is loaded",
    "Do not load this model (safe_mode=False would run the code). Rebuild the layer from source "
    "you trust, or obtain a model without Lambda layers.",
)
DANGEROUS = rule(
    "keras.dangerous-callable",
    Severity.CRITICAL,
    "The config names a module or function that can run commands or code when it is loaded",
    "Do not load this model. A benign Keras config names only Keras classes and functions.",
)
CUSTOM = rule(
    "keras.custom-object",
    Severity.MEDIUM,
    "The config needs a class or function from outside Keras (custom code runs on load)",
    "Load it only with custom objects whose code you have reviewed and trust.",
)
FILE_ACCESS = rule(
    "keras.file-access",
    Severity.HIGH,
    "The config calls Keras code that downloads, reads or writes files when it is loaded",
    "Do not load this model: a model config has no reason to fetch or write files.",
)
UNSAFE_API = rule(
    "keras.unsafe-api",
    Severity.HIGH,
    "The config calls a Keras API that is not a modelling object (it can weaken safe_mode)",
    "Do not load this model: Keras itself refuses these APIs in recent versions.",
)
MALFORMED = rule(
    "keras.malformed",
    Severity.MEDIUM,
    "The Keras model config is not valid JSON of the expected shape",
    "Treat the model as unscanned; obtain a well-formed copy from a trusted source.",
)

_B64_CODE = re.compile(r"^[A-Za-z0-9+/=\s]{20,}$")
_NAMES = re.compile(rb"[A-Za-z_][A-Za-z0-9_.]{2,60}")
_WINDOWS_ABS = re.compile(r"^[A-Za-z]:[\\/]")


# ------------------------------------------------------------------ config analysis
def analyze_keras_config(data: bytes, ctx: ScanContext, location: str) -> dict[str, Any]:
    """Check a Keras model config (JSON bytes) and report findings on ``ctx``.

    ``location`` says where the config came from (``config.json``, ``model_config attribute``).
    Returns metadata: the model class, layer count and a histogram of class names.
    """
    if len(data) > MAX_CONFIG_BYTES:
        ctx.report(
            SCAN_LIMIT,
            f"The Keras config is {len(data)} bytes; only configs up to "
            f"{MAX_CONFIG_BYTES} bytes are analysed.",
            evidence=str(len(data)),
            location=location,
        )
        return {}
    try:
        obj = json.loads(data)
    except RecursionError:
        ctx.report(MALFORMED, "The Keras config is nested too deeply to parse.", location=location)
        return {}
    except (ValueError, UnicodeDecodeError) as exc:
        ctx.report(
            MALFORMED,
            "The Keras config is not valid JSON.",
            evidence=str(exc)[:200],
            location=location,
        )
        return {}
    return _ConfigWalker(ctx, location).walk(obj)


class _ConfigWalker:
    def __init__(self, ctx: ScanContext, location: str) -> None:
        self.ctx = ctx
        self.location = location
        self.classes: Counter[str] = Counter()
        self.layers = 0

    def where(self, path: str) -> str:
        return f"{self.location}, {path}" if path else self.location

    def walk(self, root: Any) -> dict[str, Any]:
        if not isinstance(root, dict):
            self.ctx.report(
                MALFORMED,
                "The Keras config is not a JSON object.",
                evidence=type(root).__name__,
                location=self.location,
            )
            return {}
        # (value, path, inside a reported lambda)
        stack: list[tuple[Any, str, bool]] = [(root, "", False)]
        nodes = 0
        while stack:
            value, path, in_lambda = stack.pop()
            nodes += 1
            if nodes > MAX_NODES:
                self.ctx.report(
                    SCAN_LIMIT,
                    f"The Keras config has more than {MAX_NODES} values; the rest was not analysed.",
                    location=self.location,
                )
                break
            if isinstance(value, dict):
                flagged = self.check_object(value, path) if not in_lambda else True
                layers = value.get("layers")
                if isinstance(layers, list):
                    self.layers += len(layers)
                for key, child in value.items():
                    if isinstance(child, (dict, list, str)):
                        stack.append((child, f"{path}.{key}" if path else str(key), flagged))
            elif isinstance(value, list):
                for i, child in enumerate(value):
                    if isinstance(child, (dict, list, str)):
                        stack.append((child, f"{path}[{i}]", in_lambda))
            elif isinstance(value, str) and not in_lambda:
                code = _decode_code(value)
                if code is not None:
                    self.report_lambda(path, code, "a base64 Python code object")
        root_class = root.get("class_name")
        meta: dict[str, Any] = {
            "model_class": root_class if isinstance(root_class, str) else None,
            "layer_count": self.layers,
            "class_names": dict(self.classes.most_common(MAX_CLASS_NAMES)),
        }
        return meta

    # -------------------------------------------------------------- one serialised object
    def check_object(self, obj: dict[str, Any], path: str) -> bool:
        """Check one dict that may be a serialised Keras object; True when it is a lambda."""
        cls = obj.get("class_name")
        if not isinstance(cls, str):
            return False
        self.classes[cls[:100]] += 1
        config = obj.get("config")
        module = obj.get("module")
        here = f"{path}({cls[:60]})" if path else cls[:60]

        if cls == "__lambda__":
            self.report_lambda(here, _first_code(config), "a serialised Python lambda")
            return True
        if cls == "Lambda" and isinstance(config, dict) and self.check_lambda_layer(config, here):
            return True
        if cls in TF_OP_LAYERS and isinstance(config, dict):
            self.check_tf_op(config.get("function"), here)

        name = cls
        if cls == "function":
            name = config if isinstance(config, str) else str(obj.get("registered_name") or "")
        elif cls == "__typespec__":
            name = str(obj.get("spec_name") or "")
            if isinstance(module, str) and module.startswith("tensorflow."):
                return False  # tf.TensorSpec and friends: data descriptions
        elif cls.startswith("__") and cls.endswith("__"):
            return False  # __tensor__, __numpy__, __bytes__, __tuple__ ...: plain data
        if isinstance(module, str) and module:
            self.check_callable(module, name, here)
        else:
            registered = obj.get("registered_name")
            package = None
            if isinstance(registered, str) and ">" in registered:
                package = registered.split(">", 1)[0]
            elif ">" in cls:
                package = cls.split(">", 1)[0]
            if package is not None and package.split(".")[0] not in KERAS_ROOTS:
                self.ctx.report(
                    CUSTOM,
                    f"The config needs the registered custom object {registered or cls!r}, "
                    "whose code is not part of Keras.",
                    evidence=str(registered or cls)[:200],
                    location=self.where(here),
                )
            if name in FILE_GADGETS or name in UNSAFE_KERAS:
                self.check_callable("keras", name, here)
        if isinstance(config, dict):
            self.check_file_args(cls, config, here)
        return False

    def check_lambda_layer(self, config: dict[str, Any], here: str) -> bool:
        fn = config.get("function")
        ftype = config.get("function_type")
        if ftype == "lambda" or isinstance(fn, list) or (isinstance(fn, str) and _decode_code(fn)):
            self.report_lambda(here, _first_code(fn), "a Lambda layer with Python bytecode")
            return True
        if isinstance(fn, str):  # keras 2 named function: looked up in `module`
            module = config.get("module")
            self.check_callable(module if isinstance(module, str) else "", fn, here)
        return False

    def check_tf_op(self, function: Any, here: str) -> None:
        """tf.keras ``TFOpLambda`` layers call the TensorFlow API function they name."""
        if not isinstance(function, str):
            return
        last = function.rsplit(".", 1)[-1]
        if last in TF_PY_FUNCS:
            self.ctx.report(
                DANGEROUS,
                f"The layer calls tf.{function}, which runs Python code.",
                evidence=f"tf.{function}"[:200],
                location=self.where(here),
            )
        elif last in TF_FILE_FUNCS or function.startswith(("io.gfile.", "compat.v1.gfile.")):
            self.ctx.report(
                FILE_ACCESS,
                f"The layer calls tf.{function}, which touches files when the model runs.",
                evidence=f"tf.{function}"[:200],
                location=self.where(here),
            )

    def check_callable(self, module: str, name: str, here: str) -> None:
        root = module.split(".", 1)[0]
        target = f"{module}.{name}" if module else name
        if root in KERAS_ROOTS:
            if name == "enable_unsafe_deserialization":
                self.ctx.report(
                    UNSAFE_API,
                    f"The config calls {target}, which switches off Keras safe_mode while loading.",
                    evidence=target[:200],
                    location=self.where(here),
                    severity=Severity.CRITICAL,
                )
            elif name in FILE_GADGETS:
                self.ctx.report(
                    FILE_ACCESS,
                    f"The config calls {target}, which reads, writes or downloads files on load.",
                    evidence=target[:200],
                    location=self.where(here),
                )
            elif name in UNSAFE_KERAS:
                self.ctx.report(
                    UNSAFE_API,
                    f"The config calls {target}, which is not a modelling object.",
                    evidence=target[:200],
                    location=self.where(here),
                )
            return
        if root in ("builtins", "__builtin__", "__builtins__"):
            if name in BUILTIN_NAMES and name not in SAFE_BUILTINS:
                self.ctx.report(
                    DANGEROUS,
                    f"The config calls the Python builtin {name!r} on load.",
                    evidence=target[:200],
                    location=self.where(here),
                )
            return  # other names are resolved among Keras's built-in functions
        if root in DENY_MODULES:
            self.ctx.report(
                DANGEROUS,
                f"The config calls {target}, from a module that runs commands or touches the system.",
                evidence=target[:200],
                location=self.where(here),
            )
        elif name in DANGEROUS_NAMES:
            self.ctx.report(
                DANGEROUS,
                f"The config calls {target}, a function named like a code-running or file primitive.",
                evidence=target[:200],
                location=self.where(here),
                severity=Severity.HIGH,
            )
        else:
            self.ctx.report(
                CUSTOM,
                f"The config needs {target}, which is not part of Keras: its code runs on load.",
                evidence=target[:200],
                location=self.where(here),
            )

    def check_file_args(self, cls: str, config: dict[str, Any], here: str) -> None:
        for key in FILE_KEYS:
            value = config.get(key)
            if value not in (None, "", False, [], {}):
                self.ctx.report(
                    FILE_ACCESS,
                    f"{cls} is built with {key}={str(value)[:100]!r}: it reads or fetches that on load.",
                    evidence=f"{cls}.{key}={str(value)[:200]}",
                    location=self.where(here),
                )
        for key in PATH_VALUE_KEYS:
            value = config.get(key)
            if isinstance(value, str) and _path_like(value):
                self.ctx.report(
                    FILE_ACCESS,
                    f"{cls} reads its {key} from the file {value[:100]!r} on load.",
                    evidence=f"{cls}.{key}={value[:200]}",
                    location=self.where(here),
                )

    def report_lambda(self, here: str, code: bytes | None, what: str) -> None:
        names = _code_names(code) if code else ""
        evidence = f"{len(code)} bytes of bytecode" if code else "bytecode"
        if names:
            evidence += f"; names: {names}"
        self.ctx.report(
            LAMBDA,
            f"The config holds {what}; Keras runs it when the model is loaded with safe_mode off "
            "(and older Keras always).",
            evidence=evidence,
            location=self.where(here),
        )


# ------------------------------------------------------------------ helpers
def _decode_code(value: str) -> bytes | None:
    """The bytes of a base64 marshalled code object (keras ``func_dump``), else None."""
    if len(value) < 20 or not (value.startswith("4w") or value.startswith("Yw")):
        return None
    if len(value) > MAX_CONFIG_BYTES or not _B64_CODE.match(value):
        return None
    try:
        raw = base64.b64decode(value, validate=False)
    except (binascii.Error, ValueError):
        return None
    if len(raw) < 16 or raw[0] not in (0xE3, 0x63):
        return None
    return raw


def _first_code(value: Any) -> bytes | None:
    """The first code object found in a lambda's config (bounded walk)."""
    stack = [value]
    seen = 0
    while stack and seen < 1000:
        v = stack.pop()
        seen += 1
        if isinstance(v, str):
            code = _decode_code(v)
            if code is not None:
                return code
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return None


def _code_names(code: bytes) -> str:
    """Identifiers visible in marshalled bytecode (its names and constants), never unmarshalled."""
    seen: list[str] = []
    for m in _NAMES.finditer(code[:65536]):
        word = m.group().decode("ascii")
        if word not in seen and not word.startswith("<"):
            seen.append(word)
        if len(seen) >= 12:
            break
    return ", ".join(seen)


def _path_like(value: str) -> bool:
    if not value or len(value) > 4096 or "\n" in value:
        return False
    return (
        value.startswith(("/", "\\", "~", "./"))
        or "://" in value
        or bool(_WINDOWS_ABS.match(value))
        or ".." in value.replace("\\", "/").split("/")
        or value.endswith((".txt", ".model", ".json", ".vocab", ".spm"))
    )
