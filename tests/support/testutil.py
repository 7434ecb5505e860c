"""Shared test helpers. Heavy imports (TensorFlow, TFX, Beam) stay inside functions."""
import csv
import json
import os
import random
import subprocess
import sys
from typing import Dict, List, Sequence, Tuple, TYPE_CHECKING

# The seed notebook's reader, verbatim, kept once in bench/ (which compares against it); only
# the dataset around it adds compression_type='GZIP' for cxr-tfx's files.
from bench.seed_loop import parse_function as seed_parse_function  # noqa: F401 (re-export)

if TYPE_CHECKING:
  import tensorflow as tf  # annotations only: the suite imports TensorFlow lazily

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(os.path.dirname(sys.executable), 'cxr-tfx')

def read_csv_rows(csv_path: str) -> List[Dict[str, str]]:
  with open(csv_path, newline='', encoding='utf-8') as f:
    return list(csv.DictReader(f))


def write_csv_rows(csv_path: str, rows: Sequence[Dict[str, str]],
                   fieldnames: Sequence[str] = ('image_path', 'mask_path', 'class')) -> str:
  with open(csv_path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=list(fieldnames))
    writer.writeheader()
    writer.writerows(rows)
  return csv_path


def shuffled_copy(csv_path: str, name: str, seed: int = 1234) -> str:
  """The same rows in another order, next to the original (so relative paths still resolve)."""
  rows = read_csv_rows(csv_path)
  random.Random(seed).shuffle(rows)
  return write_csv_rows(os.path.join(os.path.dirname(csv_path), name), rows)


def read_examples(pattern: str) -> List[Tuple[str, 'tf.train.Example']]:
  """[(file name, Example)] for every record of every file matching the glob, in file order."""
  import tensorflow as tf
  out = []
  for path in sorted(tf.io.gfile.glob(pattern)):
    for raw in tf.data.TFRecordDataset(path, compression_type='GZIP').as_numpy_iterator():
      out.append((os.path.basename(path), tf.train.Example.FromString(raw)))
  return out


def load_mapping(path: str) -> Dict[str, int]:
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def refused_without_tensorflow(argv: Sequence[str], timeout: int = 120) -> str:
  """Runs ``cxr-tfx ARGV`` in a fresh interpreter (``cli.main``) and asserts that it exits 2
  without importing TensorFlow -> what it wrote to stderr."""
  code = ('import sys\nfrom pipeline import cli\n'
          f'code = cli.main({list(argv)!r})\n'
          'assert code == 2 and "tensorflow" not in sys.modules, code')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO,
                        timeout=timeout)
  assert done.returncode == 0, done.stderr
  return done.stderr


def shard_files(examples_uri: str) -> Dict[str, bytes]:
  """{'Split-<name>/<file>': bytes} of every shard file under an Examples folder."""
  out = {}
  for split in sorted(d for d in os.listdir(examples_uri) if d.startswith('Split-')):
    for name in sorted(os.listdir(os.path.join(examples_uri, split))):
      with open(os.path.join(examples_uri, split, name), 'rb') as f:
        out[f'{split}/{name}'] = f.read()
  return out
