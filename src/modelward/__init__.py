"""modelward: find, identify and vet the AI models on endpoints. It never loads a model.

The scanner's library API lives in :mod:`modelward.scan`::

    from modelward.scan import scan, ScanOptions
    report = scan(["model.pt"])
    if report.fails(Severity.HIGH): ...
"""

from __future__ import annotations

__version__ = "0.1.0"

from modelward.errors import Error, ScanError, UsageError
from modelward.models import FileReport, Finding, ScanReport, Severity

__all__ = [
    "Error",
    "FileReport",
    "Finding",
    "ScanError",
    "ScanReport",
    "Severity",
    "UsageError",
    "__version__",
]
