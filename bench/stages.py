"""One measured stage per process: ``python -m bench.stages STAGE '{json args}'``.

Each stage times only its work (imports are timed separately) and prints one line
``BENCH_RESULT {json}``; the parent reads the process's peak RSS from ``os.wait4`` and times the
whole process (interpreter start-up + imports + work). Pipeline stages also sample RSS every
50 ms and attribute the samples to the component running at the time; the ImageExampleGen stage
also samples its child processes (the SDK workers under DirectRunner multi_processing).
"""
import json
import logging
import os
import sys
import threading
import time
from typing import Dict, List, Optional, Tuple

RESULT_PREFIX = 'BENCH_RESULT '
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_SECONDS = 0.05


def memory_mb(pid='self') -> Dict[str, float]:
  """A process's resident set now: total, anonymous (heap) and file-backed (libraries)."""
  out = {}
  with open(f'/proc/{pid}/status') as f:
    for line in f:
      key = line.split(':', 1)[0]
      if key in ('VmRSS', 'RssAnon', 'RssFile', 'VmHWM'):
        out[key] = int(line.split()[1]) / 1024
  return out


def cpu_seconds() -> float:
  """This process's CPU time so far (user + system, every thread; not its children's)."""
  times = os.times()
  return times.user + times.system


def descendants(pid: int) -> List[int]:
  """Every live descendant of a process (children of each of its threads, recursively)."""
  out, stack = [], [pid]
  while stack:
    parent = stack.pop()
    try:
      tasks = os.listdir(f'/proc/{parent}/task')
    except OSError:
      continue
    for task in tasks:
      try:
        with open(f'/proc/{parent}/task/{task}/children') as f:
          kids = [int(k) for k in f.read().split()]
      except OSError:
        continue
      out += kids
      stack += kids
  return out


def _command(pid) -> str:
  with open(f'/proc/{pid}/cmdline', 'rb') as f:
    return f.read().replace(b'\0', b' ').decode(errors='replace').strip()


def descendants_memory_mb(pid: int) -> Dict[int, Tuple[float, float, str]]:
  """{pid: (VmRSS now, VmHWM: its own peak since it started its program, command line)} in MB
  for a process's live descendants. Left out: children forked but not yet running their own
  program (their command line is still the parent's, and their RSS counts the parent's pages),
  and exiting ones (no memory left to read)."""
  own = _command(pid)
  out = {}
  for child in descendants(pid):
    try:
      command = _command(child)
      m = memory_mb(child)
    except OSError:  # exited meanwhile
      continue
    if command == own or 'VmHWM' not in m:
      continue
    out[child] = (m.get('VmRSS', 0.0), m['VmHWM'], command[:120])
  return out


class Sampler:
  """Samples this process's RSS every 50 ms, and its live descendants' (with multi_processing:
  Beam's SDK workers); peak per time window.

  A descendant's own peak is its VmHWM (the highest reading; the last one is at most 50 ms
  before it exits). Not ``getrusage(RUSAGE_CHILDREN).ru_maxrss``: Linux records there the
  parent's RSS as of the fork for a child that then execs, so it reports the launcher's size."""

  def __init__(self, children: bool = False):
    # (monotonic, VmRSS MB, RssAnon MB, descendants' summed VmRSS MB, descendants)
    self.samples: List[Tuple[float, float, float, float, int]] = []
    self.children_hwm: Dict[int, float] = {}  # descendant pid -> its last VmHWM (MB)
    self.children_command: Dict[int, str] = {}  # descendant pid -> its command line (shortened)
    self._children = children
    self._pid = os.getpid()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def _sample(self):
    m = memory_mb()
    kids = descendants_memory_mb(self._pid) if self._children else {}
    for pid, (_, hwm, command) in kids.items():
      # A shell's child runs its program later: keep the latest command, the highest peak.
      self.children_hwm[pid] = max(hwm, self.children_hwm.get(pid, 0.0))
      self.children_command[pid] = command
    self.samples.append((time.monotonic(), m.get('VmRSS', 0.0), m.get('RssAnon', 0.0),
                         sum(k[0] for k in kids.values()), len(kids)))

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
    return self.samples[0][1:3] if self.samples else (0.0, 0.0)

  def _inside(self, start: float, end: float):
    inside = [s for s in self.samples if start <= s[0] <= end]
    return inside or [s for s in self.samples if s[0] >= start][:1]

  def peak(self, start: float, end: float) -> Tuple[float, float]:
    """(peak RSS, peak anonymous RSS) in [start, end] (MB); for a window shorter than the
    sampling interval, the first sample after its start."""
    inside = self._inside(start, end)
    return (max((s[1] for s in inside), default=0.0), max((s[2] for s in inside), default=0.0))

  def children_peak(self, start: float, end: float) -> Tuple[float, int]:
    """(peak summed RSS of the descendants in MB, most descendants at once) in [start, end]."""
    inside = self._inside(start, end)
    return (max((s[3] for s in inside), default=0.0), max((s[4] for s in inside), default=0))

  @property
  def largest_child_mb(self) -> Optional[float]:
    """The largest descendant's own peak RSS (VmHWM) over the whole sampling; None if none."""
    return max(self.children_hwm.values()) if self.children_hwm else None


class Windows(logging.Handler):
  """Start/end times of each component, from LocalDagRunner's own log records (the records
  ``pipeline.progress`` turns into progress lines)."""

  def __init__(self):
    super().__init__(level=logging.INFO)
    self.windows: Dict[str, List[float]] = {}

  def emit(self, record):
    from pipeline import progress
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
  from pyinstrument import Profiler
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
  import csv
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


def staging_pass(csv_path, out_dir):
  """What ImageExampleGen's single pass adds to the checked floor: each row's record written
  to a records file in staging (the check pass) and read back by offset to be copied into its
  shard (the write pass: ``ingest.RecordReader``), in a plain loop on one core, page cache warm.
  The image's and mask's bytes stand in for the record (records are 3.5% larger)."""
  import csv
  root = os.path.dirname(csv_path)
  records = []
  with open(csv_path, newline='') as f:
    for row in csv.DictReader(f):
      data = b''
      for key in ('image_path', 'mask_path'):
        if row[key]:
          with open(os.path.join(root, row[key]), 'rb') as g:
            data += g.read()
      records.append(data)
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, 'records.rec')
  start = time.monotonic()
  where, offset = [], 0
  with open(path, 'wb') as f:
    for data in records:
      f.write(data)
      where.append((offset, len(data)))
      offset += len(data)
  fd = os.open(path, os.O_RDONLY)
  try:
    copied = sum(len(os.pread(fd, n, o)) for o, n in where)
  finally:
    os.close(fd)
  seconds = time.monotonic() - start
  os.remove(path)
  return {'seconds': seconds, 'records': len(records), 'bytes': copied, 'import_seconds': 0.0}


def seed_write(csv_path, mapping_path, out_dir, compression=None, level=None):
  """The seed's write loop (bench/seed_loop.py), uncompressed or gzip at a zlib level."""
  t0 = time.monotonic()
  import pandas  # noqa: F401
  import tensorflow  # noqa: F401

  from bench import seed_loop
  start = time.monotonic()
  out = seed_loop.write(csv_path, mapping_path, out_dir, compression=compression, level=level)
  return dict(out, seconds=time.monotonic() - start, import_seconds=start - t0)


def seed_read(shard_dir):
  """The seed's read loop over the seed's uncompressed shards."""
  t0 = time.monotonic()
  import tensorflow  # noqa: F401

  from bench import seed_loop
  start, cpu = time.monotonic(), cpu_seconds()
  n, first = seed_loop.read(shard_dir)
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'cpu_seconds': cpu_seconds() - cpu, 'first_batch_seconds': first,
          'steady_records_per_s': (n - 1) / (total - first) if total > first else None}


def _ingest_config(mapping_path, verify=None, mask_check=None):
  from components.image_example_gen.config import IngestConfig
  with open(mapping_path) as f:
    mapping = json.load(f)
  # Default splits train=8, eval=1, test=1; seed 0; verify 'full', mask check 'warn' unless given.
  given = {k: v for k, v in (('verify', verify), ('mask_check', mask_check)) if v}
  return IngestConfig(mapping, **given)


def _direct_options(beam_args) -> Dict[str, object]:
  """DirectRunner's running mode and worker count as these Beam args set them."""
  from apache_beam.options.pipeline_options import DirectOptions
  from apache_beam.options.pipeline_options import PipelineOptions
  options = PipelineOptions(list(beam_args)).view_as(DirectOptions)
  return {'running_mode': options.direct_running_mode,
          'workers': options.direct_num_workers if options.direct_running_mode != 'in_memory'
                     else 1}


def image_example_gen(csv_path, mapping_path, root, verify='full', beam_args=(),
                      mask_check='warn'):
  """ImageExampleGen alone in LocalDagRunner (a one-component pipeline, SQLite MLMD), with
  ``verify`` ('full' | 'header') and ``beam_args`` (its Beam pipeline args: DirectRunner
  in_memory, or multi_processing with --direct_num_workers=N) and ``mask_check``.

  This process is the launcher (LocalDagRunner runs the executor in it): its peak RSS is the
  launcher's, and with in_memory the Beam job's too. Its child processes (with
  multi_processing: the SDK workers, each started through a shell) are sampled every 50 ms:
  ``workers_peak_rss_mb`` is the largest one's own peak (VmHWM), ``workers_total_peak_rss_mb``
  the peak of their summed RSS while the component ran; both None when it started none."""
  t0 = time.monotonic()
  from tfx.orchestration import metadata
  from tfx.orchestration import pipeline as tfx_pipeline
  from tfx.orchestration.local import local_dag_runner

  from components.image_example_gen.component import ImageExampleGen
  from pipeline import progress
  config = _ingest_config(mapping_path, verify, mask_check)
  direct = _direct_options(beam_args)
  os.makedirs(root, exist_ok=True)
  component = ImageExampleGen(csv_path=os.path.abspath(csv_path), config=config)
  component.with_beam_pipeline_args(list(beam_args))
  p = tfx_pipeline.Pipeline(
      pipeline_name='cxr-bench-ieg', pipeline_root=root, components=[component],
      enable_cache=False, metadata_connection_config=(
          metadata.sqlite_metadata_connection_config(os.path.join(root, 'metadata.sqlite'))))
  windows = Windows()
  logging.getLogger('absl').addHandler(windows)
  import_seconds = time.monotonic() - t0
  with progress.component_progress(emit_line=lambda line: None) as reporter, \
      Sampler(children=True) as sampler:
    start = time.monotonic()
    local_dag_runner.LocalDagRunner().run(p)
    total = time.monotonic() - start
  components = windows.per_component(reporter.finished, sampler)
  ieg = components.get('ImageExampleGen', {})
  workers_total, workers_seen = sampler.children_peak(
      *windows.windows.get('ImageExampleGen', (0.0, float('inf'))))
  with open(csv_path) as f:
    n = sum(1 for _ in f) - 1  # the demo CSV: one line per row
  return {'seconds': ieg.get('seconds', total), 'run_seconds': total, 'records': n,
          'verify': config.verify, 'mask_check': config.mask_check,
          'beam_args': list(beam_args), **direct,
          'csv_bytes': os.path.getsize(csv_path),
          'import_seconds': import_seconds, 'components': components,
          'rss_before_run_mb': sampler.baseline[0], 'anon_before_run_mb': sampler.baseline[1],
          'peak_rss_mb': ieg.get('peak_rss_mb', 0.0), 'peak_anon_mb': ieg.get('peak_anon_mb', 0.0),
          # Child processes: the SDK workers (and their shells) under multi_processing.
          'workers_peak_rss_mb': sampler.largest_child_mb,
          'workers_total_peak_rss_mb': workers_total if workers_seen else None,
          'workers_seen': workers_seen, 'child_processes': len(sampler.children_hwm),
          'child_commands': sorted({f'{c} ({sampler.children_hwm[p]:.0f} MB)'
                                    for p, c in sampler.children_command.items()})}


def _run_pipeline(root, csv_path, config):
  from pipeline import configs
  from pipeline import local_runner
  return local_runner.run_local(configs.PipelineOptions(root, enable_cache=False),
                                configs.DataSource(csv_path=csv_path), config)


def pipeline(csv_path, mapping_path, root, profile=''):
  """The whole pipeline (create_pipeline) via pipeline.local_runner.run_local; per-component
  seconds from RunResult.components and peak RSS per component from the sampler."""
  t0 = time.monotonic()
  import tfx.v1  # noqa: F401

  from pipeline import local_runner  # noqa: F401
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
  return {'seconds': total, 'import_seconds': import_seconds,
          'records': result.summary.examples_written,
          'components': windows.per_component(result.components, sampler),
          'examples_uri': result.examples_uri,
          'transform_graph_uri': result.transform_graph_uri or None,
          'rss_before_run_mb': sampler.baseline[0], 'anon_before_run_mb': sampler.baseline[1]}


def profile_ingest(csv_path, mapping_path, examples_uri, profile, verify='full'):
  """pyinstrument over ImageExampleGen's work as the product does it (``ingest.run_ingest``,
  DirectRunner in_memory, no TFX around it), then the launcher's plan timed on its own (CSV
  index + shard assignment + chunking: everything before the Beam job but writing the plan)
  and the plan file's size."""
  t0 = time.monotonic()
  import apache_beam as beam

  from components.image_example_gen import index
  from components.image_example_gen import ingest
  config = _ingest_config(mapping_path, verify)
  import_seconds = time.monotonic() - t0
  summary, seconds = _pyinstrument(ingest.run_ingest, profile, csv_path, config, examples_uri,
                                   beam.Pipeline)
  start = time.monotonic()
  checked = index.read_index(csv_path, config.class_mapping, config.allowed_roots,
                             config.group_column)
  chunks = ingest.unassigned_chunks(checked.rows)  # the deal happens in the Beam job
  plan_seconds = time.monotonic() - start
  return {'seconds': seconds, 'records': summary.examples_written, 'verify': config.verify,
          'import_seconds': import_seconds, 'plan_seconds': plan_seconds,
          'plan_chunks': len(chunks),
          'plan_bytes': sum(len(c.to_json().encode()) + 1 for c in chunks),
          'csv_bytes': os.path.getsize(csv_path)}


def make_dataset_read(examples_uri, transform_graph_uri, batch_size=32):
  """make_dataset (components/transform/input_fn.py) over ImageExampleGen's output with the
  TransformGraph: parse, decode, resize, normalise, one shape; every split, one epoch."""
  t0 = time.monotonic()
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  start, cpu = time.monotonic(), cpu_seconds()
  dataset = make_dataset(os.path.join(examples_uri, 'Split-*', '*'),
                         tft.TFTransformOutput(transform_graph_uri), batch_size)
  n, first, first_n, first_cpu = 0, None, 0, None
  for _, label in dataset:
    n += int(label.shape[0])
    if first is None:  # graph load + tracing + the first batch
      first, first_n, first_cpu = time.monotonic() - start, n, cpu_seconds() - cpu
  total = time.monotonic() - start
  return {'seconds': total, 'records': n, 'import_seconds': start - t0,
          'cpu_seconds': cpu_seconds() - cpu, 'first_batch_seconds': first,
          'first_batch_cpu_seconds': first_cpu, 'batch_size': batch_size,
          'steady_records_per_s': (n - first_n) / (total - first) if total > first else None}


def checked_floor(csv_path, mapping_path, out_dir, verify):
  """bench/checked_floor.py: the same checks as a plain loop, one core."""
  from bench import checked_floor as checked_floor_lib
  return checked_floor_lib.run(csv_path, mapping_path, out_dir, verify)


STAGES = {'floor': floor, 'checked_floor': checked_floor, 'staging_pass': staging_pass,
          'seed_write': seed_write, 'seed_read': seed_read,
          'image_example_gen': image_example_gen, 'pipeline': pipeline,
          'profile_ingest': profile_ingest, 'make_dataset': make_dataset_read}

if __name__ == '__main__':
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  result = STAGES[sys.argv[1]](**json.loads(sys.argv[2]))
  result['end_memory_mb'] = memory_mb()
  print(RESULT_PREFIX + json.dumps(result), flush=True)
