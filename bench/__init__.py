"""Benchmarks: pytest-benchmark suites and the peer comparison (compare.py)."""
