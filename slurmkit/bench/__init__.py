"""Benchmarks: nccl-tests and torch engines, the pure parser of their output, verdicts and reports."""
