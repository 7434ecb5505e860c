"""The staging folder's layout, shared by its producer (``ingest``: the launcher and the Beam
workers) and its reader (``pipeline.progress``, which must not import TensorFlow or Beam).

``<examples uri>/.staging/``: ``plan.jsonl`` (the launcher's rows, one JSON chunk per line:
``[split, shard, num_shards, chunk, rows]``), ``records/`` (the check pass's serialized records,
one file per checked chunk, named by ``records_name``), ``pieces/`` (one gzip member file per
written chunk, named by ``piece_name``), ``manifest.jsonl`` (the job's results) and the assembled
``Split-<name>/`` shards, all renamed into place or removed when the run ends.
"""
STAGING_DIR = '.staging'
PLAN_FILE = 'plan.jsonl'
PIECES_DIR = 'pieces'
RECORDS_DIR = 'records'
RECORDS_SUFFIX = '.rec'
MANIFEST_FILE = 'manifest.jsonl'
PIECE_SUFFIX = '.gz'


def piece_name(split: str, shard: int, chunk: int, rows: int) -> str:
  """A written chunk's piece file: its shard, its place in the shard and how many rows it
  holds (so progress counts rows without reading it)."""
  return f'{split}-{shard:05d}-{chunk:05d}-{rows}{PIECE_SUFFIX}'


def records_name(chunk: int, rows: int) -> str:
  """A checked chunk's records file: the chunk and how many rows it checked."""
  return f'{chunk:05d}-{rows}{RECORDS_SUFFIX}'


def piece_rows(name: str) -> int:
  """The rows a piece (``piece_name``) or records file (``records_name``) holds; 0 for any
  other name."""
  suffix = next((s for s in (PIECE_SUFFIX, RECORDS_SUFFIX) if name.endswith(s)), '')
  stem = name[:-len(suffix)] if suffix else ''
  tail = stem.rsplit('-', 1)[-1] if stem else ''
  return int(tail) if tail.isdigit() else 0
