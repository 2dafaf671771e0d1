"""Benchmarks, run by ``make bench`` (never by ``make test``): figures are ratios against a
baseline measured side by side in the same process."""
