"""The static model scanner: identifies every file by content and never loads or runs a model.

Library API::

    from modelward.scan import scan, ScanOptions
    report = scan(["./models"], ScanOptions(hash=False))
    for f in report.files:
        print(f.path, f.format, [x.rule for x in f.findings])
"""

from __future__ import annotations

from modelward.scan.context import Limits
from modelward.scan.engine import Progress, ScanOptions, scan, scan_file

__all__ = ["Limits", "Progress", "ScanOptions", "scan", "scan_file"]
