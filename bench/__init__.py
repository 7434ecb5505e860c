"""Benchmarks: cxr-tfx against the notebook loop it replaces, as ratios measured in one run."""
