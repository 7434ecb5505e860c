"""One measured stage per process: ``python -m bench.stages STAGE '{json args}'``.

Each stage times only its work (imports are timed separately) and prints one line
``BENCH_RESULT {json}``; the parent reads the process's peak RSS from ``os.wait4`` and times the
whole process (interpreter start-up + imports + work). Pipeline stages also sample RSS every
50 ms and attribute the samples to the component running at the time.
"""
import dataclasses
import json
import logging
import os
import sys
import threading
import time
from typing import Dict, List, Tuple

RESULT_PREFIX = 'BENCH_RESULT '
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_SECONDS = 0.05


def memory_mb() -> Dict[str, float]:
  """This process's resident set now: total, anonymous (heap) and file-backed (libraries)."""
  out = {}
  with open('/proc/self/status') as f:
    for line in f:
      key = line.split(':', 1)[0]
      if key in ('VmRSS', 'RssAnon', 'RssFile', 'VmHWM'):
        out[key] = int(line.split()[1]) / 1024
  return out


class Sampler:
  """Samples this process's RSS every 50 ms; peak per time window."""

  def __init__(self):
    self.samples: List[Tuple[float, float, float]] = []  # (monotonic, VmRSS MB, RssAnon MB)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _sample(self):
    m = memory_mb()
    self.samples.append((time.monotonic(), m.get('VmRSS', 0.0), m.get('RssAnon', 0.0)))

  def _run(self):
    while not self._stop.is_set():
      self._sample()
      time.sleep(SAMPLE_SECONDS)

  def __enter__(self):
    self._sample()
    self._thread.start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    self._thread.join()
    self._sample()

  @property
  def baseline(self) -> Tuple[float, float]:
    """(RSS, anonymous RSS) when sampling started: after imports, before the work."""
    return self.samples[0][1:] if self.samples else (0.0, 0.0)

  def peak(self, start: float, end: float) -> Tuple[float, float]:
    """(peak RSS, peak anonymous RSS) in [start, end] (MB); for a window shorter than the
    sampling interval, the first sample after its start."""
    inside = [(r, a) for t, r, a in self.samples if start <= t <= end]
    if not inside:
      inside = [(r, a) for t, r, a in self.samples if t >= start][:1]
    return (max((r for r, _ in inside), default=0.0), max((a for _, a in inside), default=0.0))


class Windows(logging.Handler):
  """Start/end times of each component, from LocalDagRunner's own log records (the records
  ``pipeline.progress`` turns into progress lines)."""

  def __init__(self):
    super().__init__(level=logging.INFO)
    self.windows: Dict[str, List[float]] = {}

  def emit(self, record):
    from pipeline import progress  # pylint: disable=g-import-not-at-top
    if record.msg == progress._RUNNING:  # pylint: disable=protected-access
      self.windows[record.args[0]] = [time.monotonic(), float('inf')]
    elif record.msg == progress._FINISHED and record.args[0] in self.windows:  # pylint: disable=protected-access
      self.windows[record.args[0]][1] = time.monotonic()

  def per_component(self, finished, sampler: Sampler) -> Dict[str, Dict[str, float]]:
    """RunResult.components-style [(id, seconds, cached)] -> {id: seconds, cached, peak RSS}."""
    out = {}
    for name, seconds, cached in finished:
      rss, anon = sampler.peak(*self.windows.get(name, (0.0, 0.0)))
      out[name] = {'seconds': seconds, 'cached': cached, 'peak_rss_mb': rss,
                   'peak_anon_mb': anon}
    return out


def _relative(text: str) -> str:
  return text.replace(REPO, '<repo>')


def _pyinstrument(target, path: str, *args, **kwargs):
  """Runs target(*args, **kwargs) under pyinstrument (1 ms sampling) and writes the call tree
  and the functions by own time to ``path``. -> (target's result, seconds)."""
  from pyinstrument import Profiler  # pylint: disable=g-import-not-at-top
  profiler = Profiler(interval=0.001)
  start = time.monotonic()
  profiler.start()
  try:
    result = target(*args, **kwargs)
  finally:
    profiler.stop()
  seconds = time.monotonic() - start
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write(_relative(profiler.output_text(unicode=True, color=False)))
    f.write('\n\nFunctions by own time (top 40):\n')
    flat = profiler.output_text(unicode=True, color=False, flat=True).splitlines()
    flat = [l for l in flat if l[:1].isdigit()]  # drop the banner
    f.write(_relative('\n'.join(flat[:40])) + '\n')
  return result, seconds


# ----------------------------------------------------------------------------------------------
# Stages. Each returns a dict with at least 'seconds' (the work) and 'records'.


def floor(csv_path):
  """Reads every image's and mask's bytes once: the I/O floor (csv module, builtin open).

  Two passes: the first may hit the disk (page cache cold, as for a user's first run); the
  second, the one reported, reads from the page cache like every later stage does.
  """
  import csv  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(csv_path)

  def one_pass():
    start, n, size = time.monotonic(), 0, 0
    with open(csv_path, newline='') as f:
      for row in csv.DictReader(f):
        for key in ('image_path', 'mask_path'):
          if row[key]:
            with open(os.path.join(root, row[key]), 'rb') as g:
              size += len(g.read())
        n += 1
    return time.monotonic() - start, n, size

  first, _, _ = one_pass()
  seconds, n, size = one_pass()
  return {'seconds': seconds, 'first_pass_seconds': first, 'records': n, 'bytes': size,
          'import_seconds': 0.0}


def seed_write(csv_path, mapping_path, out_dir, compression=None, level=None):
  """The seed's write loop (bench/seed_loop.py), uncompressed or gzip at a zlib level."""
  t0 = time.monotonic()
  from bench import seed_loop  # pylint: disable=g-import-not-at-top
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  import pandas  # pylint: disable=g-import-not-at-top,unused-import
  start = time.monotonic()
  out = seed_loop.write(csv_path, mapping_path, out_dir, compression=compression, level=level)
  return dict(out, seconds=time.monotonic() - start, import_seconds=start - t0)


def seed_read(shard_dir):
  """The seed's read loop over the seed's uncompressed shards."""
  t0 = time.monotonic()
  from bench import seed_loop  # pylint: disable=g-import-not-at-top
  import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  start = time.monotonic()
  n, first = seed_loop.read(shard_dir)
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'first_batch_seconds': first,
          'steady_records_per_s': (n - 1) / (total - first) if total > first else None}


def _ingest_config(mapping_path):
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  with open(mapping_path) as f:
    return IngestConfig(json.load(f))  # default splits train=8, eval=1, test=1; seed 0


def image_example_gen(csv_path, mapping_path, root):
  """ImageExampleGen alone in LocalDagRunner (a one-component pipeline, SQLite MLMD, DirectRunner
  in_memory): the process holds only what ImageExampleGen needs, so its peak RSS is the
  component's, not the whole pipeline's."""
  t0 = time.monotonic()
  from tfx.orchestration import metadata  # pylint: disable=g-import-not-at-top
  from tfx.orchestration import pipeline as tfx_pipeline  # pylint: disable=g-import-not-at-top
  from tfx.orchestration.local import local_dag_runner  # pylint: disable=g-import-not-at-top
  from components.image_example_gen.component import ImageExampleGen  # pylint: disable=g-import-not-at-top
  from pipeline import progress  # pylint: disable=g-import-not-at-top
  config = _ingest_config(mapping_path)
  os.makedirs(root, exist_ok=True)
  component = ImageExampleGen(csv_path=os.path.abspath(csv_path), **{
      f.name: getattr(config, f.name) for f in dataclasses.fields(config)})
  p = tfx_pipeline.Pipeline(
      pipeline_name='cxr-bench-ieg', pipeline_root=root, components=[component],
      enable_cache=False, metadata_connection_config=(
          metadata.sqlite_metadata_connection_config(os.path.join(root, 'metadata.sqlite'))))
  windows = Windows()
  logging.getLogger('absl').addHandler(windows)
  import_seconds = time.monotonic() - t0
  with progress.component_progress(emit_line=lambda line: None) as reporter, Sampler() as sampler:
    start = time.monotonic()
    local_dag_runner.LocalDagRunner().run(p)
    total = time.monotonic() - start
  components = windows.per_component(reporter.finished, sampler)
  ieg = components.get('ImageExampleGen', {})
  with open(csv_path) as f:
    n = sum(1 for _ in f) - 1  # the demo CSV: one line per row
  return {'seconds': ieg.get('seconds', total), 'run_seconds': total, 'records': n,
          'import_seconds': import_seconds, 'components': components,
          'rss_before_run_mb': sampler.baseline[0], 'anon_before_run_mb': sampler.baseline[1],
          'peak_rss_mb': ieg.get('peak_rss_mb', 0.0), 'peak_anon_mb': ieg.get('peak_anon_mb', 0.0)}


def _run_pipeline(root, csv_path, config):
  from pipeline import local_runner  # pylint: disable=g-import-not-at-top
  return local_runner.run_local(root, csv_path, config, enable_cache=False)


def pipeline(csv_path, mapping_path, root, profile=''):
  """The whole pipeline (create_pipeline) via pipeline.local_runner.run_local; per-component
  seconds from RunResult.components and peak RSS per component from the sampler."""
  t0 = time.monotonic()
  from pipeline import local_runner, mlmd  # pylint: disable=g-import-not-at-top,unused-import
  import tfx.v1  # pylint: disable=g-import-not-at-top,unused-import
  config = _ingest_config(mapping_path)
  windows = Windows()
  logging.getLogger('absl').addHandler(windows)
  import_seconds = time.monotonic() - t0
  with Sampler() as sampler:
    start = time.monotonic()
    if profile:
      result, _ = _pyinstrument(_run_pipeline, profile, root, csv_path, config)
    else:
      result = _run_pipeline(root, csv_path, config)
    total = time.monotonic() - start
  graph = mlmd.latest_artifact(mlmd.sqlite_store(result.metadata_path), 'TransformGraph')
  return {'seconds': total, 'import_seconds': import_seconds,
          'records': result.summary.examples_written,
          'components': windows.per_component(result.components, sampler),
          'examples_uri': result.examples_uri,
          'transform_graph_uri': graph.uri if graph else None,
          'rss_before_run_mb': sampler.baseline[0], 'anon_before_run_mb': sampler.baseline[1]}


def profile_ingest(csv_path, mapping_path, examples_uri, profile, variant='current'):
  """pyinstrument over ImageExampleGen's work (``ingest.run_ingest``, DirectRunner in_memory as
  in TFX; or bench/whatif.py's proposed version), then, for the current one, a breakdown: the
  plan (index + file checks + assignment) and the Beam graph that carries the plan (pickled and
  compressed into the pipeline proto)."""
  t0 = time.monotonic()
  import pickle  # pylint: disable=g-import-not-at-top
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from bench import whatif as whatif_lib  # pylint: disable=g-import-not-at-top
  from components.image_example_gen import ingest  # pylint: disable=g-import-not-at-top
  config = _ingest_config(mapping_path)
  import_seconds = time.monotonic() - t0
  if variant != 'current':
    (written, _), seconds = _pyinstrument(whatif_lib.VARIANTS[variant], profile, csv_path,
                                          config, examples_uri)
    return {'seconds': seconds, 'records': written, 'import_seconds': import_seconds}
  summary, seconds = _pyinstrument(ingest.run_ingest, profile, csv_path, config, examples_uri,
                                   beam.Pipeline)
  start = time.monotonic()
  the_plan = ingest.plan(csv_path, config)
  plan_seconds = time.monotonic() - start
  start = time.monotonic()
  graph = beam.Pipeline()
  _ = graph | 'WriteShards' >> ingest.WriteShards(the_plan.shards, examples_uri + '-graph')  # pylint: disable=no-value-for-parameter
  build_seconds = time.monotonic() - start
  start = time.monotonic()
  proto = graph.to_runner_api()
  to_proto_seconds = time.monotonic() - start
  return {'seconds': seconds, 'records': summary.examples_written,
          'import_seconds': import_seconds, 'plan_seconds': plan_seconds,
          'plan_pickle_bytes': len(pickle.dumps(the_plan.shards)),
          'graph_build_seconds': build_seconds, 'graph_to_proto_seconds': to_proto_seconds,
          'graph_proto_bytes': len(proto.SerializeToString())}


def whatif(csv_path, mapping_path, examples_uri, variant):
  """ImageExampleGen's work without TFX around it, as it is ('current') or with the profile's
  proposed fixes ('proposed', bench/whatif.py); seconds, RSS and a digest of the shard files."""
  t0 = time.monotonic()
  import hashlib  # pylint: disable=g-import-not-at-top
  from bench import whatif as whatif_lib  # pylint: disable=g-import-not-at-top
  config = _ingest_config(mapping_path)
  import_seconds = time.monotonic() - t0
  with Sampler() as sampler:
    start = time.monotonic()
    written, plan_seconds = whatif_lib.VARIANTS[variant](csv_path, config, examples_uri)
    seconds = time.monotonic() - start
  digests = whatif_lib.shard_digests(examples_uri)
  rss, anon = sampler.peak(0.0, float('inf'))
  return {'seconds': seconds, 'records': written, 'import_seconds': import_seconds,
          'plan_seconds': plan_seconds, 'write_seconds': seconds - plan_seconds,
          'rss_before_run_mb': sampler.baseline[0], 'anon_before_run_mb': sampler.baseline[1],
          'peak_rss_mb': rss, 'peak_anon_mb': anon, 'shard_files': len(digests),
          'shards_sha256': hashlib.sha256(json.dumps(sorted(digests.items())).encode()).hexdigest()}


def make_dataset_read(examples_uri, transform_graph_uri, batch_size=32):
  """make_dataset (components/transform/input_fn.py) over ImageExampleGen's output with the
  TransformGraph: parse, decode, resize, normalise, one shape; every split, one epoch."""
  t0 = time.monotonic()
  import tensorflow_transform as tft  # pylint: disable=g-import-not-at-top
  from components.transform.input_fn import make_dataset  # pylint: disable=g-import-not-at-top
  start = time.monotonic()
  dataset = make_dataset(os.path.join(examples_uri, 'Split-*', '*'),
                         tft.TFTransformOutput(transform_graph_uri), batch_size)
  n, first, first_n = 0, None, 0
  for _, label in dataset:
    n += int(label.shape[0])
    if first is None:  # graph load + tracing + the first batch
      first, first_n = time.monotonic() - start, n
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'first_batch_seconds': first, 'batch_size': batch_size,
          'steady_records_per_s': (n - first_n) / (total - first) if total > first else None}


STAGES = {'floor': floor, 'seed_write': seed_write, 'seed_read': seed_read,
          'image_example_gen': image_example_gen, 'pipeline': pipeline,
          'profile_ingest': profile_ingest, 'whatif': whatif, 'make_dataset': make_dataset_read}

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  result = STAGES[sys.argv[1]](**json.loads(sys.argv[2]))
  result['end_memory_mb'] = memory_mb()
  print(RESULT_PREFIX + json.dumps(result), flush=True)
