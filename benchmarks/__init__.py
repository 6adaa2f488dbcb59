"""Benchmarks of modelward against the peer scanners (run ``python benchmarks/scan_bench.py``)."""
