"""``make bench``: cxr-tfx against the seed's loop and the raw-read floor, in one run.

Usage: python -m bench.run [--scale 0.1] [--small-scale 0.02] [--work-dir bench/work]
                           [--out bench/results] [--seed 0] [--stages STAGE,...] [--profile]
                           [--before bench/results/before/results.json]

Generates (or reuses: cached under --work-dir by scale and seed) a demo dataset at two sizes and,
at each size, runs every stage in its own process, so peak RSS is per stage and interpreter and
import start-up are timed apart from the work:

  floor              read every image's and mask's bytes (builtin open): a first pass (may hit
                     the disk) and the reported second pass (page cache, like later stages)
  seed_write         the seed's loop: pandas read_csv + sample(frac=1, random_state=0) +
                     iterrows + tf.train.Example{image, mask, class} round-robin into 10
                     uncompressed TFRecordWriter shards (bench/seed_loop.py)
  gzip               the same loop with gzip at zlib levels 0, 1 and 6 (larger size only)
  image_example_gen  ImageExampleGen alone in LocalDagRunner (DirectRunner in_memory, SQLite
                     MLMD): seconds in the component, process RSS before and during it
  pipeline           the whole pipeline (pipeline.local_runner.run_local): seconds per
                     component from RunResult.components, peak RSS per component from a 50 ms
                     sampler attributed by the component's start/finish log records
  seed_read          the seed's reader: TFRecordDataset + per-example parse_single_example,
                     decode_png(channels=3), tf.cond zero mask, over the seed's shards
  make_dataset       components/transform/input_fn.make_dataset over ImageExampleGen's gzip
                     output with the run's TransformGraph (decode, resize, normalise, one shape)
  whatif             ImageExampleGen's work without TFX (ingest.run_ingest) as it is, with the
                     profile's proposed fixes, and with the checks moved into the write
                     (bench/whatif.py), each in its own process, timed as plan + write; all
                     must write byte-identical shards

With --repeat N every size is measured N times and each stage keeps its fastest run (all
times are recorded). Fixed and per-record cost are fitted from the two sizes (t = fixed + n *
per_record). With --profile, pyinstrument profiles ImageExampleGen's work (ingest.run_ingest,
and the proposed version) and the whole pipeline on the larger dataset, in separate processes
(not the timed ones), into <out>/profiles/. Writes <out>/results.json and <out>/results.md; --before adds a before/after
table against an earlier results.json. Other processes on the machine change absolute times,
not much the ratios, which all come from the same run; the load average is recorded.
"""
import argparse
import datetime
import importlib.metadata
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

from bench import stages

REPO = stages.REPO
IEG = 'ImageExampleGen'
VALIDATION = ('StatisticsGen', 'ClassBalance')
STAGES = ('floor', 'seed_write', 'gzip', 'image_example_gen', 'pipeline', 'seed_read',
          'make_dataset', 'whatif')
WHATIF = ('current', 'proposed', 'single_pass')
GZIP_LEVELS = (0, 1, 6)
INPUT_FN = os.path.join(REPO, 'components', 'transform', 'input_fn.py')


def log(message: str) -> None:
  print(message, file=sys.stderr, flush=True)


def run_stage(name: str, **kwargs) -> Dict:
  """Runs one stage in a fresh process -> its result, the process's peak RSS and wall time."""
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-m', 'bench.stages', name, json.dumps(kwargs)],
                            cwd=REPO, stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KB
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  lines = [l for l in stdout.splitlines() if l.startswith(stages.RESULT_PREFIX)]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f'stage {name} failed ({proc.returncode}):\n{stderr[-3000:]}')
  result = json.loads(lines[-1][len(stages.RESULT_PREFIX):])
  result['process_peak_rss_mb'] = usage.ru_maxrss / 1024
  result['process_wall_seconds'] = wall
  log(f'  {name}: {result["seconds"]:.2f} s, {result["records"]} records, peak RSS '
      f'{result["process_peak_rss_mb"]:.0f} MB (process {wall:.1f} s)')
  return result


def machine() -> Dict[str, object]:
  model = ''
  with open('/proc/cpuinfo') as f:
    for line in f:
      if line.startswith('model name'):
        model = line.split(':', 1)[1].strip()
        break
  with open('/proc/meminfo') as f:
    mem_kb = int(f.readline().split()[1])
  versions = {p: importlib.metadata.version(p) for p in (
      'tfx', 'tensorflow', 'apache-beam', 'tensorflow-data-validation', 'tensorflow-transform',
      'pandas')}
  return {'cpu': model, 'cores': os.cpu_count(), 'memory_gib': round(mem_kb / 2**20, 1),
          'python': platform.python_version(), 'versions': versions,
          'load_average_at_start': os.getloadavg()}


def dataset(work_dir: str, scale: float, seed: int) -> Tuple[str, str]:
  """Demo data at a scale, generated once per (scale, seed) -> (CSV path, class mapping path)."""
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  out = os.path.join(work_dir, f'data-s{scale}-seed{seed}')
  marker = os.path.join(out, '.complete')
  if not os.path.exists(marker):
    log(f'generating demo data at scale {scale} into {out} (about 10 ms per image)')
    shutil.rmtree(out, ignore_errors=True)
    demo_data.generate(out, scale=scale, seed=seed)
    open(marker, 'w').close()
  return (os.path.join(out, 'all_image_mask_pairs.csv'),
          os.path.join(out, 'class_mapping.json'))


def _tree_bytes(path: str, prefix: str = '') -> int:
  return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs
             if f.startswith(prefix))


def measure(work_dir: str, scale: float, seed: int, selected: Sequence[str],
            larger: bool) -> Dict[str, Dict]:
  """Every selected stage on one dataset size; a stage that cannot run says why."""
  csv_path, mapping = dataset(work_dir, scale, seed)
  log(f'scale {scale}: {csv_path}')
  out = os.path.join(work_dir, f'run-s{scale}')
  shutil.rmtree(out, ignore_errors=True)
  r = {}
  if 'floor' in selected:
    r['floor'] = run_stage('floor', csv_path=csv_path)
  seed_dir = os.path.join(out, 'seed')
  if 'seed_write' in selected or 'seed_read' in selected:
    r['seed_write'] = run_stage('seed_write', csv_path=csv_path, mapping_path=mapping,
                                out_dir=seed_dir)
  if 'gzip' in selected and larger:
    for level in GZIP_LEVELS:
      r[f'seed_write_gzip{level}'] = run_stage(
          'seed_write', csv_path=csv_path, mapping_path=mapping,
          out_dir=os.path.join(out, f'seed-gz{level}'), compression='GZIP', level=level)
      shutil.rmtree(os.path.join(out, f'seed-gz{level}'))  # 1 GB each at scale 1
  if 'image_example_gen' in selected:
    r['image_example_gen'] = run_stage('image_example_gen', csv_path=csv_path,
                                       mapping_path=mapping, root=os.path.join(out, 'ieg'))
    shutil.rmtree(os.path.join(out, 'ieg'))
  if 'pipeline' in selected or 'make_dataset' in selected:
    r['pipeline'] = run_stage('pipeline', csv_path=csv_path, mapping_path=mapping,
                              root=os.path.join(out, 'root'))
    r['pipeline']['examples_bytes'] = _tree_bytes(r['pipeline']['examples_uri'], 'data_tfrecord')
  if 'seed_read' in selected:
    r['seed_read'] = run_stage('seed_read', shard_dir=seed_dir)
  if 'make_dataset' in selected:
    graph = r['pipeline'].get('transform_graph_uri')
    if not os.path.exists(INPUT_FN):
      r['make_dataset'] = {'skipped': 'transform not available (no components/transform/input_fn.py)'}
    elif not graph:
      r['make_dataset'] = {'skipped': 'transform not available (no TransformGraph artifact)'}
    else:
      r['make_dataset'] = run_stage('make_dataset', examples_uri=r['pipeline']['examples_uri'],
                                    transform_graph_uri=graph)
  if 'whatif' in selected:
    for variant in WHATIF:
      where = os.path.join(out, f'whatif-{variant}')
      r[f'whatif_{variant}'] = run_stage('whatif', csv_path=csv_path, mapping_path=mapping,
                                         examples_uri=where, variant=variant)
      shutil.rmtree(where)
  return r


def fastest(runs: Sequence[Dict[str, Dict]]) -> Dict[str, Dict]:
  """Per stage, the repetition with the fewest seconds; every repetition's seconds kept."""
  out = {}
  for key in runs[0]:
    measured = [r[key] for r in runs if key in r and 'seconds' in r[key]]
    if not measured:
      out[key] = runs[0][key]
      continue
    out[key] = dict(min(measured, key=lambda st: st['seconds']),
                    all_seconds=[st['seconds'] for st in measured])
  return out


def profile(work_dir: str, scale: float, seed: int, out: str) -> Dict[str, Dict]:
  """pyinstrument profiles on one size, each in its own (untimed) process."""
  csv_path, mapping = dataset(work_dir, scale, seed)
  run_dir = os.path.join(work_dir, f'profile-s{scale}')
  shutil.rmtree(run_dir, ignore_errors=True)
  profiles = os.path.join(out, 'profiles')
  r = {}
  for variant, name in (('current', 'image_example_gen.txt'),
                        ('proposed', 'image_example_gen_proposed.txt'),
                        ('single_pass', 'image_example_gen_single_pass.txt')):
    r[f'image_example_gen_{variant}'] = run_stage(
        'profile_ingest', csv_path=csv_path, mapping_path=mapping,
        examples_uri=os.path.join(run_dir, f'examples-{variant}'),
        profile=os.path.join(profiles, name), variant=variant)
  r['pipeline'] = run_stage('pipeline', csv_path=csv_path, mapping_path=mapping,
                            root=os.path.join(run_dir, 'root'),
                            profile=os.path.join(profiles, 'pipeline.txt'))
  shutil.rmtree(run_dir, ignore_errors=True)
  return r


# ----------------------------------------------------------------------------------------------
# Arithmetic (pure).


def fit(n1: int, t1: float, n2: int, t2: float) -> Tuple[float, float]:
  """t = fixed + n * per_record through two points -> (fixed seconds, per-record seconds)."""
  per = (t2 - t1) / (n2 - n1) if n2 != n1 else float('nan')
  return t1 - n1 * per, per


def _ok(stage) -> bool:
  return isinstance(stage, dict) and 'seconds' in stage and not stage.get('skipped')


def _seconds(run: Dict, key: str) -> Optional[float]:
  """A stage's work seconds; 'pipeline:<component>' for a component of the whole pipeline."""
  if key.startswith('pipeline:'):
    comp = run.get('pipeline', {}).get('components', {}).get(key.split(':', 1)[1])
    return comp['seconds'] if comp else None
  return run[key]['seconds'] if _ok(run.get(key)) else None


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
  return a / b if a is not None and b else None


def _per_record_ratio(seed_ms: Optional[float], ours_ms: Optional[float]) -> Optional[float]:
  """Per-record throughput of ours vs the seed loop; None when a fit is not positive (noise
  swamps the per-record cost on tiny datasets)."""
  if seed_ms is None or ours_ms is None or seed_ms <= 0 or ours_ms <= 0:
    return None
  return seed_ms / ours_ms


def _fit_row(small: Dict, large: Dict, n1: int, n2: int, key: str) -> Optional[Dict]:
  t1, t2 = _seconds(small, key), _seconds(large, key)
  if t1 is None or t2 is None:
    return None
  fixed, per = fit(n1, t1, n2, t2)
  return {'fixed_seconds': fixed, 'per_record_ms': per * 1e3, 'seconds_small': t1,
          'seconds_large': t2}


FIT_KEYS = (('floor', 'floor'), ('seed_loop', 'seed_write'), ('image_example_gen',
            'image_example_gen'), ('image_example_gen_in_pipeline', f'pipeline:{IEG}'),
            ('statistics_gen', 'pipeline:StatisticsGen'), ('class_balance', 'pipeline:ClassBalance'),
            ('transform', 'pipeline:Transform'), ('seed_read', 'seed_read'),
            ('make_dataset', 'make_dataset')) + tuple(
                (f'ingest_{v}', f'whatif_{v}') for v in WHATIF)


def summarize(small: Dict, large: Dict) -> Dict[str, object]:
  """Ratios, fits and targets from the measured stages (any stage may be missing)."""
  n1 = next((s['records'] for s in small.values() if _ok(s)), 0)
  n2 = next((s['records'] for s in large.values() if _ok(s)), 0)
  fits = {name: _fit_row(small, large, n1, n2, key) for name, key in FIT_KEYS}
  out: Dict[str, object] = {'records': {'small': n1, 'large': n2}, 'fits': fits}

  ieg_alone = fits.get('image_example_gen') or fits.get('image_example_gen_in_pipeline')
  seed = fits.get('seed_loop')
  rss = lambda r: (r.get('image_example_gen') or {}).get('peak_rss_mb')
  ieg = {'measured_in': ('ImageExampleGen alone in LocalDagRunner' if fits.get('image_example_gen')
                         else 'ImageExampleGen in the whole pipeline')}
  if ieg_alone:
    ieg.update(fixed_seconds=ieg_alone['fixed_seconds'], per_record_ms=ieg_alone['per_record_ms'],
               seconds_large=ieg_alone['seconds_large'])
  if ieg_alone and seed:
    ieg['per_record_throughput_vs_seed_loop'] = _per_record_ratio(seed['per_record_ms'],
                                                                  ieg_alone['per_record_ms'])
    ieg['throughput_vs_seed_loop_same_run'] = _ratio(seed['seconds_large'],
                                                     ieg_alone['seconds_large'])
  if rss(small) is not None and rss(large) is not None:
    big, little = large['image_example_gen'], small['image_example_gen']
    ieg.update(peak_rss_mb_small=rss(small), peak_rss_mb_large=rss(large),
               rss_growth_mb=rss(large) - rss(small),
               rss_before_run_mb=big['rss_before_run_mb'],
               peak_anon_mb_large=big['peak_anon_mb'], anon_before_run_mb=big['anon_before_run_mb'],
               anon_growth_mb=big['peak_anon_mb'] - little['peak_anon_mb'])
  out['image_example_gen'] = ieg

  comps = large.get('pipeline', {}).get('components', {})
  if IEG in comps:
    present = [c for c in VALIDATION if c in comps]
    val = sum(comps[c]['seconds'] for c in present)
    out['validation'] = {'components': present, 'seconds': val,
                         'ratio_to_image_example_gen': _ratio(val, comps[IEG]['seconds'])
                                                       if present else None}

  md, sr = large.get('make_dataset'), large.get('seed_read')
  if _ok(md) and _ok(sr):
    out['read_path'] = {
        'make_dataset_records_per_s': md['records'] / md['seconds'],
        'seed_read_records_per_s': sr['records'] / sr['seconds'],
        'ratio': (md['records'] / md['seconds']) / (sr['records'] / sr['seconds']),
        'make_dataset_first_batch_seconds': md.get('first_batch_seconds'),
        'steady_ratio': _ratio(md.get('steady_records_per_s'), sr.get('steady_records_per_s'))}
  elif md and md.get('skipped'):
    out['read_path'] = {'skipped': md['skipped']}

  if _ok(large.get('seed_write_gzip1')) and _ok(large.get('seed_write')):
    base = large['seed_write']
    gz = {k: {'seconds': large[k]['seconds'], 'bytes': large[k]['bytes'],
              'size_vs_uncompressed': large[k]['bytes'] / base['bytes'],
              'time_vs_uncompressed': large[k]['seconds'] / base['seconds'],
              'extra_ms_per_record': (large[k]['seconds'] - base['seconds']) / n2 * 1e3}
          for k in ['seed_write'] + [f'seed_write_gzip{l}' for l in GZIP_LEVELS]
          if _ok(large.get(k))}
    if 'pipeline' in large:
      gz['image_example_gen_output_bytes'] = large['pipeline']['examples_bytes']
    out['gzip'] = gz
  variants = [v for v in WHATIF if fits.get(f'ingest_{v}')]
  if 'current' in variants and len(variants) > 1:
    whatif = {'identical_shards': all(
        len({r[f'whatif_{v}']['shards_sha256'] for v in variants}) == 1 for r in (small, large))}
    for variant in variants:
      f, key = fits[f'ingest_{variant}'], f'whatif_{variant}'
      write = lambda r: r[key]['seconds'] - r[key].get('plan_seconds', 0.0)
      _, write_per = fit(n1, write(small), n2, write(large))
      whatif[variant] = {
          'plan_seconds_large': large[key].get('plan_seconds'),
          'write_seconds_large': write(large), 'write_per_record_ms': write_per * 1e3,
          'seconds_large': f['seconds_large'], 'fixed_seconds': f['fixed_seconds'],
          'per_record_ms': f['per_record_ms'],
          'per_record_throughput_vs_seed_loop': _per_record_ratio(
              seed['per_record_ms'] if seed else None, f['per_record_ms']),
          'peak_rss_mb_large': large[key]['peak_rss_mb'],
          'rss_before_run_mb': large[key]['rss_before_run_mb'],
          'rss_growth_mb': large[key]['peak_rss_mb'] - small[key]['peak_rss_mb']}
    out['whatif'] = whatif
  out['targets'] = targets(out)
  return out


def targets(s: Dict) -> List[Dict[str, object]]:
  """The issue's targets: (name, measured text, met: True/False/None when not measured)."""
  ieg, rows = s['image_example_gen'], []

  def add(name, measured, met):
    rows.append({'target': name, 'measured': measured, 'met': met})

  per = ieg.get('per_record_throughput_vs_seed_loop')
  add('ImageExampleGen per-record throughput ≥ 1.0× the seed loop',
      f"{per:.2f}× ({ieg['per_record_ms']:.3f} ms vs {s['fits']['seed_loop']['per_record_ms']:.3f}"
      f" ms per record; same-run total {ieg['throughput_vs_seed_loop_same_run']:.2f}×)"
      if per is not None else 'not measured (or the fit is not positive: use larger sizes)',
      per >= 1.0 if per is not None else None)
  fixed = ieg.get('fixed_seconds')
  add('ImageExampleGen fixed cost ≤ 10 s',
      f'{fixed:.1f} s (interpreter and imports excluded)' if fixed is not None else 'not measured',
      fixed <= 10 if fixed is not None else None)
  peak = ieg.get('peak_rss_mb_large')
  add('ImageExampleGen peak RSS ≤ 1 GB',
      f"{peak:.0f} MB ({ieg['rss_before_run_mb']:.0f} MB of it before the run: TensorFlow, TFX, "
      f"Beam loaded; anonymous memory {ieg['anon_before_run_mb']:.0f} → "
      f"{ieg['peak_anon_mb_large']:.0f} MB)" if peak is not None else 'not measured',
      peak <= 1024 if peak is not None else None)
  growth = ieg.get('rss_growth_mb')
  add(f"ImageExampleGen RSS growth < 100 MB ({s['records']['small']} → "
      f"{s['records']['large']} records)",
      f"{growth:+.0f} MB (anonymous {ieg['anon_growth_mb']:+.0f} MB)" if growth is not None
      else 'not measured', growth < 100 if growth is not None else None)
  rp = s.get('read_path', {})
  if 'ratio' in rp:
    steady = rp.get('steady_ratio')
    add('make_dataset throughput ≥ 1.0× the seed read loop (doing more)',
        f"{rp['ratio']:.2f}× overall" + (
            f"; {steady:.2f}× after the first batch (graph load + tracing "
            f"{rp['make_dataset_first_batch_seconds']:.1f} s)" if steady else ''),
        rp['ratio'] >= 1.0)
  else:
    add('make_dataset throughput ≥ 1.0× the seed read loop (doing more)',
        rp.get('skipped', 'not measured'), None)
  val = s.get('validation')
  if val and val['ratio_to_image_example_gen'] is not None:
    add('StatisticsGen + ClassBalance ≤ 2× ImageExampleGen',
        f"{val['ratio_to_image_example_gen']:.2f}× ({' + '.join(val['components'])}, "
        'same process)', val['ratio_to_image_example_gen'] <= 2.0)
  else:
    add('StatisticsGen + ClassBalance ≤ 2× ImageExampleGen',
        'not in pipeline yet' if val else 'not measured', None)
  return rows


def key_figures(report: Dict) -> Dict[str, Optional[float]]:
  """The few numbers a before/after table compares; reads this and the earlier layout."""
  s, large = report['summary'], report['runs']['large']
  comps = large.get('pipeline', {}).get('components', {})
  fits = s.get('fits', {})
  ieg_pipe = fits.get('image_example_gen_in_pipeline') or s.get('image_example_gen', {})
  seed = fits.get('seed_loop') or s.get('seed_loop', {})
  rp = s.get('read_path', {})
  val = s.get('validation', {})
  return {
      'ImageExampleGen in the pipeline, seconds (larger size)': comps.get(IEG, {}).get('seconds'),
      'ImageExampleGen in the pipeline, ms per record (fit)': ieg_pipe.get('per_record_ms'),
      'seed loop, ms per record (fit)': seed.get('per_record_ms'),
      'ImageExampleGen per-record throughput vs seed loop': _per_record_ratio(
          seed.get('per_record_ms'), ieg_pipe.get('per_record_ms')),
      'ImageExampleGen window peak RSS in the pipeline, MB': comps.get(IEG, {}).get('peak_rss_mb'),
      'StatisticsGen + ClassBalance vs ImageExampleGen': val.get('ratio_to_image_example_gen'),
      'make_dataset vs seed read loop': rp.get('ratio'),
  }


# ----------------------------------------------------------------------------------------------
# Markdown.


def _f(x, fmt='{:.2f}', none='—'):
  return none if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def markdown(report: Dict) -> str:
  s, m = report['summary'], report['machine']
  large = report['runs']['large']
  n = s['records']['large']
  load0, load1 = m['load_average_at_start'], report['load_average_at_end']
  busy = max(load0[0], load1[0]) > 0.5
  lines = [
      '# cxr-tfx benchmark results', '',
      f"Run {report['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, no GPU, "
      f"Python {m['python']}, " + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.',
      f"Load average (1, 5, 15 min) at start {', '.join(f'{x:.2f}' for x in load0)}, at end "
      f"{', '.join(f'{x:.2f}' for x in load1)}: "
      + ('other processes were running on the machine during the run, so absolute times are '
         'inflated; ratios compare stages of the same run.' if busy else
         'the machine was otherwise idle.'),
      f"Datasets: demo data (seed {report.get('seed', 0)}) at scale {report['scales'][0]} "
      f"({s['records']['small']} records) and {report['scales'][1]} ({n} records); the seed "
      'loop shuffles with random_state=0 (unseeded in the seed).'
      + (f" Each size was measured {report['repeat']} times; each stage's fastest run is "
         'reported (all times in results.json).' if report.get('repeat', 1) > 1 else ''), '',
      f'## Stages at {n} records', '',
      'Seconds are the work only (interpreter start-up and imports excluded, listed below); '
      'peak RSS is the stage process\'s (a pipeline component\'s: the peak of the 50 ms samples '
      'while it ran).', '',
      '| stage | seconds | records/s | time vs seed loop | time vs floor | peak RSS (MB) |',
      '|---|---:|---:|---:|---:|---:|']
  seed_s, floor_s = _seconds(large, 'seed_write'), _seconds(large, 'floor')

  def row(name, secs, rss):
    if secs is None:
      return
    lines.append(f'| {name} | {secs:.2f} | {_f(_ratio(n, secs), "{:.0f}")} | '
                 f'{_f(_ratio(secs, seed_s), "{:.2f}×")} | {_f(_ratio(secs, floor_s), "{:.1f}×")} '
                 f'| {_f(rss, "{:.0f}")} |')

  def process_row(name, key):
    st = large.get(key)
    if _ok(st):
      row(name, st['seconds'], st['process_peak_rss_mb'])
    elif st and st.get('skipped'):
      lines.append(f"| {name} | skipped: {st['skipped']} | | | | |")

  process_row('floor: read every PNG once (page cache warm, as for every stage below)', 'floor')
  if _ok(large.get('floor')) and 'first_pass_seconds' in large['floor']:
    row('floor, first pass (page cache as found: may hit the disk)',
        large['floor']['first_pass_seconds'], large['floor']['process_peak_rss_mb'])
  process_row('seed loop: iterrows + 10 uncompressed TFRecordWriters', 'seed_write')
  for level in GZIP_LEVELS:
    process_row(f'seed loop, gzip level {level}', f'seed_write_gzip{level}')
  process_row('ImageExampleGen alone (LocalDagRunner, DirectRunner in_memory)',
              'image_example_gen')
  for name, c in large.get('pipeline', {}).get('components', {}).items():
    row(f'pipeline: {name}', max(c['seconds'], 1e-3), c['peak_rss_mb'])
  process_row('seed read loop (parse_single_example + decode_png + tf.cond)', 'seed_read')
  process_row('make_dataset (batched parse + Transform graph: decode, resize, [0,1], one shape)',
              'make_dataset')

  lines += ['', '### Start-up (not in the seconds above)', '',
            '| stage process | imports (s) | whole process, wall (s) |', '|---|---:|---:|']
  for key in ('seed_write', 'image_example_gen', 'pipeline', 'seed_read', 'make_dataset'):
    st = large.get(key)
    if _ok(st):
      lines.append(f"| {key} | {st.get('import_seconds', 0):.1f} | "
                   f"{st['process_wall_seconds']:.1f} |")
  if 'pipeline' in large:
    lines.append(f"\nWhole LocalDagRunner run (all components): {large['pipeline']['seconds']:.1f} s.")

  lines += ['', '## Targets (ratios from the same run)', '', '| target | measured | met |',
            '|---|---|---|']
  for t in s['targets']:
    met = {True: 'yes', False: '**no**', None: 'n/a'}[t['met']]
    lines.append(f"| {t['target']} | {t['measured']} | {met} |")

  if 'gzip' in s:
    g = s['gzip']
    lines += ['', '## Compression (the seed loop with gzip, same records)', '',
              '| writer | seconds | MB | size vs uncompressed | time vs uncompressed | extra ms '
              'per record |', '|---|---:|---:|---:|---:|---:|']
    for k, label in (('seed_write', 'uncompressed'), ('seed_write_gzip0', 'gzip level 0 (stored)'),
                     ('seed_write_gzip1', 'gzip level 1'),
                     ('seed_write_gzip6', 'gzip level 6 (zlib default)')):
      if k in g:
        lines.append(f"| {label} | {g[k]['seconds']:.2f} | {g[k]['bytes'] / 1e6:.1f} | "
                     f"{g[k]['size_vs_uncompressed']:.4f} | {g[k]['time_vs_uncompressed']:.2f}× | "
                     f"{g[k]['extra_ms_per_record']:.3f} |")
    if 'image_example_gen_output_bytes' in g:
      lines.append(f"| ImageExampleGen output (gzip level 0; + image_id, image_sha256) | | "
                   f"{g['image_example_gen_output_bytes'] / 1e6:.1f} | "
                   f"{g['image_example_gen_output_bytes'] / g['seed_write']['bytes']:.4f} | | |")

  lines += ['', '## Fixed and per-record cost (fitted from the two sizes)', '',
            f"| stage | {s['records']['small']} records (s) | {n} records (s) | fixed (s) | "
            'per record (ms) |', '|---|---:|---:|---:|---:|']
  for name, f in s['fits'].items():
    if f:
      lines.append(f"| {name} | {f['seconds_small']:.2f} | {f['seconds_large']:.2f} | "
                   f"{f['fixed_seconds']:.2f} | {f['per_record_ms']:.3f} |")

  ieg = s['image_example_gen']
  if 'peak_rss_mb_large' in ieg:
    small = report['runs']['small']['image_example_gen']
    big = large['image_example_gen']
    lines += ['', '## ImageExampleGen memory (alone in LocalDagRunner)', '',
              '| records | RSS before the run (MB) | peak RSS (MB) | anonymous before (MB) | '
              'anonymous peak (MB) |', '|---:|---:|---:|---:|---:|']
    for st in (small, big):
      lines.append(f"| {st['records']} | {st['rss_before_run_mb']:.0f} | {st['peak_rss_mb']:.0f} | "
                   f"{st['anon_before_run_mb']:.0f} | {st['peak_anon_mb']:.0f} |")

  w = s.get('whatif')
  if w:
    lines += ['', '## Proposed ImageExampleGen fixes, measured (bench/whatif.py)', '',
              '`ingest.run_ingest` without TFX around it: **as it is**; **proposed**: (1) the '
              'allowed-root check resolves each folder once, (2) the shard plans are staged as '
              'files and only (split, index) keys go through Beam, with one Reshuffle; '
              '**single pass**: proposed, plus the file checks done while writing (plan from the '
              'CSV alone; each file read and hashed once; default policies only). Plan = '
              'everything before the Beam job. Shards byte-identical across variants: '
              + ('**yes**' if w['identical_shards'] else '**NO**') + '.', '',
              f'| {n} records | seconds | plan (s) | write (s) | fixed (s) | per record (ms) | '
              'write per record (ms) | per-record throughput vs seed loop | peak RSS (MB) | '
              'RSS growth (MB) |', '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
    for name, key in (('as it is', 'current'), ('proposed', 'proposed'),
                      ('single pass', 'single_pass')):
      v = w.get(key)
      if v:
        lines.append(
            f"| {name} | {v['seconds_large']:.2f} | {_f(v['plan_seconds_large'])} | "
            f"{v['write_seconds_large']:.2f} | {v['fixed_seconds']:.2f} | {v['per_record_ms']:.3f} | "
            f"{v['write_per_record_ms']:.3f} | "
            f"{_f(v['per_record_throughput_vs_seed_loop'], '{:.2f}×')} | "
            f"{v['peak_rss_mb_large']:.0f} | {v['rss_growth_mb']:+.0f} |")
    lines.append(f"| seed loop (for reference) | {_f(_seconds(large, 'seed_write'))} | | | | "
                 f"{_f((s['fits'].get('seed_loop') or {}).get('per_record_ms'), '{:.3f}')} | | 1.00× | | |")

  prof = report.get('profile')
  if prof:
    p = prof['image_example_gen_current']
    lines += ['', f"## Profile ({p['records']} records; pyinstrument, untimed processes)", '',
              f"ImageExampleGen's work (`ingest.run_ingest`) took {p['seconds']:.2f} s under the "
              f"profiler; the plan alone (CSV, file checks with sha256, assignment) "
              f"{p['plan_seconds']:.2f} s; building the Beam graph that carries the plan "
              f"{p['graph_build_seconds']:.2f} s, converting it to the runner proto "
              f"{p['graph_to_proto_seconds']:.2f} s; the plan pickles to "
              f"{p['plan_pickle_bytes'] / 1e6:.2f} MB, the pipeline proto is "
              f"{p['graph_proto_bytes'] / 1e6:.2f} MB.", '',
              f"Under the profiler, proposed took {prof['image_example_gen_proposed']['seconds']:.2f} s "
              f"and single pass {prof['image_example_gen_single_pass']['seconds']:.2f} s.", '',
              'Call trees: `profiles/image_example_gen.txt` (as it is), '
              '`profiles/image_example_gen_proposed.txt`, `profiles/image_example_gen_single_pass.txt`, '
              '`profiles/pipeline.txt` (whole pipeline).']

  before = report.get('before')
  if before:
    lines += ['', f"## Before/after ({before['path']}, {before['records']} records, vs this run)",
              '', '| figure | before | now |', '|---|---:|---:|']
    now = key_figures(report)
    for k, v in before['figures'].items():
      lines.append(f'| {k} | {_f(v)} | {_f(now.get(k))} |')
  lines.append('')
  return '\n'.join(lines)


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.run', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--scale', type=float, default=0.1,
                      help='larger dataset, as a fraction of the real 21,165 records '
                           '(default %(default)s = 2,116; 1 = 21,165)')
  parser.add_argument('--small-scale', type=float, default=0.02,
                      help='smaller dataset, for the fixed/per-record fit and RSS growth '
                           '(default %(default)s = 423 records)')
  parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'),
                      help='datasets (kept between runs, keyed by scale and seed) and outputs '
                           '(default %(default)s; gitignored)')
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results'),
                      help='results.json, results.md and profiles/ go here (default %(default)s)')
  parser.add_argument('--seed', type=int, default=0, help='demo data seed (default %(default)s)')
  parser.add_argument('--stages', default=','.join(STAGES),
                      help='comma-separated subset of: ' + ', '.join(STAGES) +
                           ' (default: all; seed_read needs seed_write, make_dataset the '
                           'pipeline: they are run as needed)')
  parser.add_argument('--profile', action='store_true',
                      help='also profile ImageExampleGen (ingest.run_ingest) and the whole '
                           'pipeline with pyinstrument on the smaller dataset, into '
                           '<out>/profiles/')
  parser.add_argument('--repeat', type=int, default=1,
                      help='measure each size N times, keep each stage\'s fastest run '
                           '(default %(default)s)')
  parser.add_argument('--before', default='',
                      help='an earlier results.json: adds a before/after table')
  args = parser.parse_args(argv)
  selected = [x.strip() for x in args.stages.split(',') if x.strip()]
  unknown = sorted(set(selected) - set(STAGES))
  if unknown:
    parser.error(f'unknown stage(s) {unknown}; choose from {", ".join(STAGES)}')
  if not args.small_scale < args.scale:
    parser.error('--small-scale must be smaller than --scale (two sizes for the fit)')
  os.makedirs(args.out, exist_ok=True)
  report = {'date': datetime.date.today().isoformat(), 'machine': machine(), 'seed': args.seed,
            'scales': [args.small_scale, args.scale], 'stages': selected, 'runs': {}}
  report['repeat'] = args.repeat
  for size, scale, larger in (('small', args.small_scale, False), ('large', args.scale, True)):
    report['runs'][size] = fastest([measure(args.work_dir, scale, args.seed, selected, larger)
                                    for _ in range(max(1, args.repeat))])
  if args.profile:
    report['profile'] = profile(args.work_dir, args.scale, args.seed, args.out)
  report['load_average_at_end'] = os.getloadavg()
  report['summary'] = summarize(report['runs']['small'], report['runs']['large'])
  if args.before:
    with open(args.before) as f:
      earlier = json.load(f)
    report['before'] = {'path': os.path.relpath(args.before, args.out),
                        'records': earlier['summary']['records']['large'],
                        'figures': key_figures(earlier)}
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump(report, f, indent=1)
  text = markdown(report)
  with open(os.path.join(args.out, 'results.md'), 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
