"""ClassBalance: per-split and per-shard class-balance checks, leakage checks and image-level
statistics over ImageExampleGen's output, reported as TFDV Anomalies plus JSON and HTML."""
