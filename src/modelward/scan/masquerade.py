"""Which formats a file extension promises, to catch content hiding under another format's name."""

from __future__ import annotations

import os

PICKLE_FAMILY = frozenset(
    {"pickle", "joblib", "pytorch-zip", "pytorch-legacy", "torchscript", "numpy", "zip"}
)
"""Formats that a PyTorch/pickle loader accepts (``torch.load`` opens zips and raw pickles)."""

EXPECTED: dict[str, frozenset[str]] = {
    ".safetensors": frozenset({"safetensors"}),
    ".gguf": frozenset({"gguf"}),
    ".npy": frozenset({"numpy"}),
    ".npz": frozenset({"numpy-npz", "zip"}),
    ".h5": frozenset({"keras-h5", "hdf5"}),
    ".hdf5": frozenset({"keras-h5", "hdf5"}),
    ".keras": frozenset({"keras-v3"}),
    ".onnx": frozenset({"onnx"}),
    ".tflite": frozenset({"tflite"}),
    ".mlmodel": frozenset({"coreml"}),
    ".llamafile": frozenset({"llamafile"}),
    ".pt": PICKLE_FAMILY,
    ".pth": PICKLE_FAMILY,
    ".ckpt": PICKLE_FAMILY | {"tar"},
    ".pkl": PICKLE_FAMILY,
    ".pickle": PICKLE_FAMILY,
    ".joblib": PICKLE_FAMILY,
    ".7z": frozenset({"7z"}),
    ".tar": frozenset({"tar", "pytorch-legacy"}),
}

CODE_CAPABLE = frozenset(
    {
        "pickle",
        "joblib",
        "pytorch-zip",
        "pytorch-legacy",
        "torchscript",
        "keras-v3",
        "keras-h5",
        "tf-savedmodel",
        "llamafile",
        "zip",
        "tar",
        "7z",
        "numpy-npz",
    }
)
"""Formats whose loading can run code, or containers that may hold such content."""


def expected_formats(name: str) -> frozenset[str] | None:
    """The formats ``name``'s extension promises, or ``None`` when it promises nothing."""
    return EXPECTED.get(os.path.splitext(name)[1].lower())
