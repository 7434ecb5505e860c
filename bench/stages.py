"""One measured stage per process: ``python -m bench.stages STAGE '{json args}'``.

Each stage times only its work (imports are timed separately) and prints one line
``BENCH_RESULT {json}``; the parent reads the process's peak RSS from ``os.wait4``.
"""
import json
import logging
import os
import sys
import threading
import time

RESULT_PREFIX = 'BENCH_RESULT '


def _rss_mb() -> float:
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('VmRSS:'):
        return int(line.split()[1]) / 1024
  return 0.0


class _Sampler:
  """Samples this process's RSS every 50 ms; peak per time window."""

  def __init__(self):
    self.samples = []
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _run(self):
    while not self._stop.is_set():
      self.samples.append((time.monotonic(), _rss_mb()))
      time.sleep(0.05)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()

  def peak(self, start: float, end: float) -> float:
    inside = [r for t, r in self.samples if start <= t <= end]
    return max(inside, default=0.0)


class _Windows(logging.Handler):
  """Start/end times of each component, from LocalDagRunner's own log records."""

  def __init__(self):
    super().__init__(level=logging.INFO)
    self.windows = {}

  def emit(self, record):
    from pipeline import progress  # pylint: disable=g-import-not-at-top
    if record.msg == progress._RUNNING:  # pylint: disable=protected-access
      self.windows[record.args[0]] = [time.monotonic(), None]
    elif record.msg == progress._FINISHED:  # pylint: disable=protected-access
      self.windows[record.args[0]][1] = time.monotonic()


def floor(csv_path):
  """Reads every image's and mask's bytes once: the I/O floor."""
  import csv  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(csv_path)
  start, n, size = time.monotonic(), 0, 0
  with open(csv_path, newline='') as f:
    for row in csv.DictReader(f):
      for key in ('image_path', 'mask_path'):
        if row[key]:
          with open(os.path.join(root, row[key]), 'rb') as g:
            size += len(g.read())
      n += 1
  return {'seconds': time.monotonic() - start, 'records': n, 'bytes': size}


def seed_write(csv_path, mapping_path, out_dir, compression=None, level=None):
  t0 = time.monotonic()
  from bench import seed_loop  # pylint: disable=g-import-not-at-top
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  import pandas  # pylint: disable=g-import-not-at-top,unused-import
  start = time.monotonic()
  out = seed_loop.write(csv_path, mapping_path, out_dir, compression=compression, level=level)
  return dict(out, seconds=time.monotonic() - start, import_seconds=start - t0)


def seed_read(shard_dir):
  t0 = time.monotonic()
  from bench import seed_loop  # pylint: disable=g-import-not-at-top
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  start = time.monotonic()
  n, first = seed_loop.read(shard_dir)
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'first_batch_seconds': first,
          'steady_records_per_s': (n - 1) / (total - first) if total > first else None}


def pipeline(csv_path, mapping_path, root, profile=''):
  """The whole pipeline in LocalDagRunner; per-component seconds and peak RSS."""
  t0 = time.monotonic()
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  from pipeline import local_runner, mlmd  # pylint: disable=g-import-not-at-top
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  import tfx.v1  # pylint: disable=g-import-not-at-top,unused-import
  with open(mapping_path) as f:
    mapping = json.load(f)
  windows = _Windows()
  logging.getLogger('absl').addHandler(windows)
  import_seconds = time.monotonic() - t0
  profiler = None
  if profile:  # cProfile (stdlib): main thread only, which is where DirectRunner runs DoFns
    import cProfile  # pylint: disable=g-import-not-at-top
    profiler = cProfile.Profile()
    profiler.enable()
  with _Sampler() as sampler:
    start = time.monotonic()
    result = local_runner.run_local(root, csv_path, IngestConfig(mapping), enable_cache=False)
    total = time.monotonic() - start
  if profiler:
    import io  # pylint: disable=g-import-not-at-top
    import pstats  # pylint: disable=g-import-not-at-top
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats('cumulative').print_stats(45)
    with open(profile, 'w') as f:
      f.write(text.getvalue().replace(os.path.dirname(os.path.dirname(
          os.path.abspath(__file__))), '<repo>'))
  graph = mlmd.latest_artifact(mlmd.sqlite_store(result.metadata_path), 'TransformGraph')
  components = {name: {'seconds': secs,
                       'peak_rss_mb': sampler.peak(*windows.windows.get(name, (0, 0)))}
                for name, secs, _ in result.components}
  return {'seconds': total, 'import_seconds': import_seconds,
          'records': result.summary.examples_written, 'components': components,
          'examples_uri': result.examples_uri, 'transform_graph_uri': graph.uri,
          'rss_before_run_mb': sampler.samples[0][1] if sampler.samples else 0.0}


def make_dataset_read(examples_uri, transform_graph_uri, batch_size=32):
  t0 = time.monotonic()
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  from components.transform.input_fn import make_dataset  # pylint: disable=g-import-not-at-top
  start = time.monotonic()
  dataset = make_dataset(os.path.join(examples_uri, 'Split-*', '*'),
                         tft.TFTransformOutput(transform_graph_uri), batch_size)
  n, first = 0, None
  for _, label in dataset:
    n += int(label.shape[0])
    if first is None:  # graph load + tracing + the first batch
      first, first_n = time.monotonic() - start, n
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'first_batch_seconds': first,
          'steady_records_per_s': (n - first_n) / (total - first) if total > first else None}


STAGES = {'floor': floor, 'seed_write': seed_write, 'seed_read': seed_read,
          'pipeline': pipeline, 'make_dataset': make_dataset_read}

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  result = STAGES[sys.argv[1]](**json.loads(sys.argv[2]))
  print(RESULT_PREFIX + json.dumps(result), flush=True)
