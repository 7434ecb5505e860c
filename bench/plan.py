"""The launcher at scale: ImageExampleGen's plan (CSV -> check-pass chunks) for a synthetic
index of N rows (``python -m bench.plan --rows 1000000``; ``python -m bench.run --stages plan``).

The launcher opens no image, so the rows need no files: a CSV of N rows in the COVID-19
Radiography Database's layout is written once under --work-dir, then one process imports
ImageExampleGen's launcher code and times ``index.read_source`` + ``ingest.unassigned_chunks``
+ the plan's JSON lines written to a file, as ``run_ingest`` does before the Beam job starts.
Peak memory is the process's VmHWM minus its RSS after the imports.
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import time
from typing import Dict

from bench import stages

CLASSES = ('COVID', 'Normal', 'Viral Pneumonia', 'Lung_Opacity')


def write_index(path: str, rows: int) -> None:
  """N rows, image and mask paths as the Kaggle layout spells them, classes in turn."""
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path + '.tmp', 'w', newline='') as f:
    out = csv.writer(f)
    out.writerow(['image_path', 'mask_path', 'class'])
    for i in range(rows):
      name = CLASSES[i % len(CLASSES)]
      out.writerow([f'COVID-19_Radiography_Dataset/{name}/images/{name}-{i + 1}.png',
                    f'COVID-19_Radiography_Dataset/{name}/masks/{name}-{i + 1}.png', name])
  os.replace(path + '.tmp', path)


def plan(csv_path: str) -> Dict[str, float]:
  """The launcher's work on the CSV (in this process) -> seconds, rows, memory."""
  t0 = time.monotonic()
  from components.image_example_gen import index
  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  imported = stages.memory_mb()['VmRSS']
  start = time.monotonic()
  config = IngestConfig({name: i for i, name in enumerate(CLASSES)})
  read = index.read_source(index.Source(csv_path=csv_path), config)
  rows = len(read.checked.rows)
  out = os.path.join(os.path.dirname(csv_path), 'plan.jsonl')
  with open(out, 'w') as f:
    for chunk in ingest.unassigned_chunks(read.checked.rows):
      f.write(chunk.to_json() + '\n')
  seconds = time.monotonic() - start
  peak = stages.memory_mb()['VmHWM']
  return {'seconds': seconds, 'rows': rows, 'import_seconds': start - t0,
          'rss_after_imports_mb': imported, 'peak_mb': peak,
          'peak_above_imports_mb': peak - imported, 'plan_bytes': os.path.getsize(out)}


def measure(rows: int, work_dir: str) -> Dict[str, float]:
  """The launcher on a synthetic N-row index (written once under work_dir), in a fresh process."""
  csv_path = os.path.join(work_dir, f'plan-{rows}', 'index.csv')
  if not os.path.exists(csv_path):
    write_index(csv_path, rows)
  done = subprocess.run([sys.executable, '-m', 'bench.plan', '--child', csv_path],
                        capture_output=True, text=True, cwd=stages.REPO, check=False)
  line = next((l for l in done.stdout.splitlines() if l.startswith(stages.RESULT_PREFIX)), None)
  if line is None:
    return {'skipped': f'bench.plan failed: {done.stderr.strip()[-500:]}'}
  os.remove(os.path.join(os.path.dirname(csv_path), 'plan.jsonl'))
  return json.loads(line[len(stages.RESULT_PREFIX):])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--rows', type=int, default=1_000_000)
  parser.add_argument('--work-dir', default=os.path.join(stages.REPO, 'bench', 'work'))
  parser.add_argument('--child', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.child:
    print(stages.RESULT_PREFIX + json.dumps(plan(args.child)), flush=True)
    return 0
  result = measure(args.rows, args.work_dir)
  print(json.dumps(result, indent=1))
  return 0 if 'seconds' in result else 1


if __name__ == '__main__':
  sys.exit(main())
