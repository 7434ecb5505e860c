"""A fingerprint of every file a CSV index references (images and masks), for caching.

TFX's FileBasedExampleGen fingerprints only the files matching the input pattern (the CSV),
so a changed PNG under an unchanged CSV would be a silent cache hit. ``referenced_files``
folds each referenced file's path, size and mtime (and, optionally, its content hash) into
one digest that ImageExampleGen's driver appends to the input fingerprint.
"""
import hashlib
import os
from typing import Mapping, Optional, Sequence, Tuple

from components.image_example_gen import index

STAT_THREADS = 16  # for URIs; local stats run in one thread (see index.LOCAL_CHECK_THREADS)


def _stat(path: str) -> Optional[Tuple[int, int]]:
  """(size, mtime in ns), or None for a missing file; os.stat locally, tf.io.gfile for URIs."""
  if index.is_uri(path):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    try:
      stat = tf.io.gfile.stat(path)
    except tf.errors.NotFoundError:
      return None
    return stat.length, stat.mtime_nsec
  try:
    stat = os.stat(path)
  except FileNotFoundError:
    return None
  return stat.st_size, stat.st_mtime_ns


def _file_line(path: str, content: bool) -> str:
  stat = _stat(path)
  if stat is None:
    return f'{path}\tmissing'
  line = f'{path}\t{stat[0]}\t{stat[1]}'
  if content:
    sha = hashlib.sha256()
    with index.open_binary(path) as f:
      for chunk in iter(lambda: f.read(1 << 20), b''):
        sha.update(chunk)
    line += f'\t{sha.hexdigest()}'
  return line


def referenced_files(csv_path: str, class_mapping: Mapping[str, int],
                     content: bool = False) -> str:
  """'referenced files: N, sha256:<digest over sorted path/size/mtime[/sha256] lines>'."""
  parsed = index.parse_index(index.read_csv_text(csv_path), index.csv_folder(csv_path),
                             class_mapping, csv_path)
  paths: Sequence[str] = sorted({p for r in parsed.rows for p in (r.image_path, r.mask_path) if p})
  threads = STAT_THREADS if any(index.is_uri(p) for p in paths) else index.LOCAL_CHECK_THREADS
  lines = index.map_in_threads(lambda p: _file_line(p, content), paths, threads)
  digest = hashlib.sha256('\n'.join(lines).encode('utf-8')).hexdigest()
  kind = 'path/size/mtime/content' if content else 'path/size/mtime'
  return f'referenced files ({kind}): {len(paths)}, sha256:{digest}'
