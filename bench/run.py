"""``make bench``: cxr-tfx against the seed's loop and the raw-read floor, in one run.

Usage: python -m bench.run [--scale 0.1] [--small-scale 0.02] [--work-dir bench/work]
                           [--out bench/results] [--seed 0] [--stages STAGE,...] [--profile]
                           [--ieg-variants VARIANT,...] [--repeat N]
                           [--before bench/results/before/results.json]

Generates (or reuses: cached under --work-dir by scale and seed) a demo dataset at two sizes and,
at each size, runs every stage in its own process, so peak RSS is per stage and interpreter and
import start-up are timed apart from the work:

  floor              read every image's and mask's bytes (builtin open): a first pass (may hit
                     the disk) and the reported second pass (page cache, like later stages)
  checked_floor      ImageExampleGen's per-row checks as one plain loop on one core with the
                     fastest exact libraries (bench/checked_floor.py), verify=header and full:
                     the least the same work costs; ImageExampleGen's per-record cost is
                     reported as a ratio to it
  staging_pass       what ImageExampleGen's single pass adds to the checked floor: each
                     record written to a records file in staging and read back by offset to be
                     copied into its shard (ingest.RecordReader), one core, per record
  seed_write         the seed's loop: pandas read_csv + sample(frac=1, random_state=0) +
                     iterrows + tf.train.Example{image, mask, class} round-robin into 10
                     uncompressed TFRecordWriter shards (bench/seed_loop.py)
  gzip               the same loop with gzip at zlib levels 0, 1 and 6 (larger size only)
  image_example_gen  ImageExampleGen alone in LocalDagRunner (SQLite MLMD), one process per
                     variant, stored as image_example_gen_<variant>: header_in_memory,
                     full_in_memory, header_multi_processing, full_multi_processing (verify=
                     header or full, the default; DirectRunner in_memory, the default, with no
                     Beam args, or --direct_running_mode=multi_processing
                     --direct_num_workers=2; --ieg-variants picks): seconds in the component,
                     the launcher's RSS before and during it, and its child processes' (the
                     SDK workers under multi_processing)
  pipeline           the whole pipeline (pipeline.local_runner.run_local): seconds per
                     component from RunResult.components, peak RSS per component from a 50 ms
                     sampler attributed by the component's start/finish log records
  seed_read          the seed's reader: TFRecordDataset + per-example parse_single_example,
                     decode_png(channels=3), tf.cond zero mask, over the seed's shards
  make_dataset       components/transform/input_fn.make_dataset over ImageExampleGen's gzip
                     output with the run's TransformGraph (decode, resize, normalise, one shape)
  plan               the launcher alone (CSV -> check-pass plan) on a synthetic 1M-row index
                     (bench/plan.py; larger size only): seconds and peak memory above imports
  train              bench/train.py, on the smaller dataset only: the Trainer's input pipeline
                     alone, its model on batches in memory, and training end to end (images/s;
                     input-bound or not), on whatever devices the Trainer would use

With --repeat N every size is measured N times and each stage keeps its fastest run (all
times are recorded). Fixed and per-record cost are fitted from the two sizes (t = fixed + n *
per_record); a fixed cost (imports excluded: LocalDagRunner, MLMD, Beam job set-up; under
multi_processing also starting the SDK workers and the tfx sdist TFX's Beam executors build
whenever Beam args are given) is thus separated from the per-record cost. With --profile,
pyinstrument profiles ImageExampleGen's work as the product does it (ingest.run_ingest,
DirectRunner in_memory; verify=header and verify=full) and the whole pipeline on the larger
dataset, in separate processes (not the timed ones), into <out>/profiles/. Writes
<out>/results.json and <out>/results.md; --before adds a before/after
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

from bench import plan as plan_stage
from bench import stages
from bench import train as train_stage

REPO = stages.REPO
IEG = 'ImageExampleGen'
VALIDATION = ('StatisticsGen', 'ClassBalance')
STAGES = ('floor', 'checked_floor', 'staging_pass', 'seed_write', 'gzip', 'image_example_gen',
          'pipeline', 'seed_read', 'make_dataset', 'plan', 'train')
MP_WORKERS = 2  # the machine's cores: the product's scale-out mode here
MP_ARGS = ('--direct_running_mode=multi_processing', f'--direct_num_workers={MP_WORKERS}')
# in_memory is DirectRunner's default: no Beam args, as the product runs by default. (Any Beam
# arg makes TFX's BaseBeamExecutor build an ephemeral tfx sdist -- a `setup.py sdist`
# subprocess -- at every executor start: multi_processing pays it, like any --beam-arg user.)
IN_MEMORY_ARGS = ()
# ImageExampleGen variants: name -> (verify, Beam args, mask check). Result keys are
# IEG_PREFIX + name. The mask check is the default 'warn' (masks decoded and checked) except in
# header_in_memory_no_mask_check, which prices that check against header_in_memory.
IEG_VARIANTS = {
    'header_in_memory': ('header', IN_MEMORY_ARGS, 'warn'),
    'full_in_memory': ('full', IN_MEMORY_ARGS, 'warn'),
    'header_multi_processing': ('header', MP_ARGS, 'warn'),
    'full_multi_processing': ('full', MP_ARGS, 'warn'),
    'header_in_memory_no_mask_check': ('header', IN_MEMORY_ARGS, 'off'),
}
IEG_PREFIX = 'image_example_gen_'
# What the per-record target says about each variant: 'target' (<= FLOOR_TARGET x the checked
# floor of its verify level, in_memory: one core against one core), 'measured' (scale-out mode
# and the no-mask-check variant: reported, no target).
IEG_PER_RECORD_KIND = {'header_in_memory': 'target', 'full_in_memory': 'target',
                       'header_multi_processing': 'measured', 'full_multi_processing': 'measured',
                       'header_in_memory_no_mask_check': 'measured'}
FLOOR_TARGET = 1.25  # ImageExampleGen ms per record / the checked floor's, at most
# The stretch goal against the notebook loop (one core): ms per record / the loop's, at most
NOTEBOOK_MOONSHOT = {'full_in_memory': 3.0, 'header_in_memory': 2.0}
MP_SPEEDUP_TARGET = 1.5  # multi_processing (2 workers) throughput / in_memory's, at least
PLAN_ROWS = 1_000_000  # the launcher's scale test (bench/plan.py)
PLAN_SECONDS_TARGET = 60.0
PLAN_MEMORY_TARGET_MB = 1024.0
RSS_GROWTH_TARGET_MB = 50.0  # the launcher's RSS growth from the smaller to the larger size
PEAK_RSS_TARGET_MB = 1024.0
FIXED_TARGET_SECONDS = 10.0
VALIDATION_TARGET = 1.0  # StatisticsGen + ClassBalance seconds / ImageExampleGen's, at most
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
  from pipeline import demo_data
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
            larger: bool, ieg_variants: Sequence[str] = tuple(IEG_VARIANTS)) -> Dict[str, Dict]:
  """Every selected stage on one dataset size; a stage that cannot run says why."""
  csv_path, mapping = dataset(work_dir, scale, seed)
  log(f'scale {scale}: {csv_path}')
  out = os.path.join(work_dir, f'run-s{scale}')
  shutil.rmtree(out, ignore_errors=True)
  r = {}
  if 'floor' in selected:
    r['floor'] = run_stage('floor', csv_path=csv_path)
  if 'checked_floor' in selected:
    for verify in ('header', 'full'):
      where = os.path.join(out, f'checked-floor-{verify}')
      r[f'checked_floor_{verify}'] = run_stage('checked_floor', csv_path=csv_path,
                                               mapping_path=mapping, out_dir=where, verify=verify)
      shutil.rmtree(where, ignore_errors=True)
  if 'plan' in selected and larger:
    r['plan'] = plan_stage.measure(PLAN_ROWS, work_dir)
  if 'staging_pass' in selected:
    r['staging_pass'] = run_stage('staging_pass', csv_path=csv_path,
                                  out_dir=os.path.join(out, 'staging-pass'))
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
    for variant in ieg_variants:
      verify, beam_args, mask_check = IEG_VARIANTS[variant]
      where = os.path.join(out, f'ieg-{variant}')
      r[IEG_PREFIX + variant] = run_stage('image_example_gen', csv_path=csv_path,
                                          mapping_path=mapping, root=where, verify=verify,
                                          beam_args=list(beam_args), mask_check=mask_check)
      shutil.rmtree(where)
  train = 'train' in selected and not larger  # bench/train.py: the smaller dataset only
  if 'pipeline' in selected or 'make_dataset' in selected or train:
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
  if train:
    r['train'] = train_stage.stage(r['pipeline']['examples_uri'],
                                   r['pipeline']['transform_graph_uri'])
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
  for verify in ('header', 'full'):
    r[f'image_example_gen_{verify}'] = run_stage(
        'profile_ingest', csv_path=csv_path, mapping_path=mapping,
        examples_uri=os.path.join(run_dir, f'examples-{verify}'),
        profile=os.path.join(profiles, f'image_example_gen_{verify}.txt'), verify=verify)
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


def _cost_ratio(ours_ms: Optional[float], seed_ms: Optional[float]) -> Optional[float]:
  """Per-record cost of ours / the seed loop's (≤ 1.0: as cheap or cheaper per record); None
  when a fit is not positive (noise swamps the per-record cost on tiny datasets)."""
  if seed_ms is None or ours_ms is None or seed_ms <= 0 or ours_ms <= 0:
    return None
  return ours_ms / seed_ms


def _fit_row(small: Dict, large: Dict, n1: int, n2: int, key: str) -> Optional[Dict]:
  t1, t2 = _seconds(small, key), _seconds(large, key)
  if t1 is None or t2 is None:
    return None
  fixed, per = fit(n1, t1, n2, t2)
  return {'fixed_seconds': fixed, 'per_record_ms': per * 1e3, 'seconds_small': t1,
          'seconds_large': t2}


def ieg_label(variant: str) -> str:
  """'header_multi_processing' -> 'verify=header, DirectRunner multi_processing, 2 workers'."""
  verify, args, mask_check = IEG_VARIANTS[variant]
  mode = (f'multi_processing, {MP_WORKERS} workers'
          if '--direct_running_mode=multi_processing' in args else 'in_memory')
  return f'verify={verify}, DirectRunner {mode}' + (
      f', mask check {mask_check}' if mask_check != 'warn' else '')


def _multi(variant: str) -> bool:
  return '--direct_running_mode=multi_processing' in IEG_VARIANTS[variant][1]


FIT_KEYS = (('floor', 'floor'), ('checked_floor_header', 'checked_floor_header'),
            ('checked_floor_full', 'checked_floor_full'), ('staging_pass', 'staging_pass'),
            ('seed_loop', 'seed_write')) + tuple(
    (IEG_PREFIX + v, IEG_PREFIX + v) for v in IEG_VARIANTS) + (
        ('image_example_gen_in_pipeline', f'pipeline:{IEG}'),
        ('statistics_gen', 'pipeline:StatisticsGen'), ('class_balance', 'pipeline:ClassBalance'),
        ('transform', 'pipeline:Transform'), ('seed_read', 'seed_read'),
        ('make_dataset', 'make_dataset'))
FIT_LABELS = dict({IEG_PREFIX + v: f'ImageExampleGen alone, {ieg_label(v)}' for v in IEG_VARIANTS},
                  seed_loop='seed loop (notebook)',
                  checked_floor_header='checked floor, verify=header (plain loop, one core)',
                  checked_floor_full='checked floor, verify=full (plain loop, one core)',
                  staging_pass='records through staging (written, read back by offset; one core)',
                  image_example_gen_in_pipeline='ImageExampleGen in the pipeline (verify=full, '
                                                'in_memory)')


def _ieg_variant(small: Dict, large: Dict, fits: Dict, variant: str) -> Optional[Dict]:
  """One ImageExampleGen variant's fit, ratios and memory; None when it was not run."""
  key = IEG_PREFIX + variant
  f, big, little = fits.get(key), large.get(key), small.get(key)
  if not f and not _ok(big):
    return None
  seed = fits.get('seed_loop') or {}
  v: Dict[str, object] = {'label': ieg_label(variant), 'multi_processing': _multi(variant),
                          'per_record_kind': IEG_PER_RECORD_KIND[variant]}
  if f:
    floor = fits.get(f'checked_floor_{IEG_VARIANTS[variant][0]}') or {}
    v.update(fixed_seconds=f['fixed_seconds'], per_record_ms=f['per_record_ms'],
             per_record_cost_vs_seed_loop=_cost_ratio(f['per_record_ms'],
                                                      seed.get('per_record_ms')),
             per_record_cost_vs_checked_floor=_cost_ratio(f['per_record_ms'],
                                                          floor.get('per_record_ms')))
  if _ok(big):
    v.update(seconds_large=big['seconds'],
             time_vs_seed_loop_same_run=_ratio(big['seconds'], _seconds(large, 'seed_write')),
             peak_rss_mb_large=big['peak_rss_mb'], rss_before_run_mb=big['rss_before_run_mb'],
             anon_before_run_mb=big['anon_before_run_mb'], peak_anon_mb_large=big['peak_anon_mb'],
             workers_peak_rss_mb_large=big.get('workers_peak_rss_mb'),
             workers_total_peak_rss_mb_large=big.get('workers_total_peak_rss_mb'),
             csv_bytes_large=big.get('csv_bytes'))
  if _ok(big) and _ok(little):
    v.update(peak_rss_mb_small=little['peak_rss_mb'],
             rss_growth_mb=big['peak_rss_mb'] - little['peak_rss_mb'],
             anon_growth_mb=big['peak_anon_mb'] - little['peak_anon_mb'],
             csv_bytes_small=little.get('csv_bytes'))
  return v


def summarize(small: Dict, large: Dict) -> Dict[str, object]:
  """Ratios, fits and targets from the measured stages (any stage may be missing)."""
  n1 = next((s['records'] for s in small.values() if _ok(s)), 0)
  n2 = next((s['records'] for s in large.values() if _ok(s)), 0)
  fits = {name: _fit_row(small, large, n1, n2, key) for name, key in FIT_KEYS}
  out: Dict[str, object] = {'records': {'small': n1, 'large': n2}, 'fits': fits}
  variants = {v: _ieg_variant(small, large, fits, v) for v in IEG_VARIANTS}
  out['image_example_gen'] = {k: v for k, v in variants.items() if v}

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
  hashing = (fits.get('staging_pass') or {}).get('per_record_ms')
  if hashing:
    priced = {v: out['image_example_gen'][v]['per_record_ms']
              for v in ('header_in_memory', 'full_in_memory')
              if out['image_example_gen'].get(v, {}).get('per_record_ms')}
    out['staging_round_trip'] = {'per_record_ms': hashing, 'variants': {
        v: {'image_example_gen_per_record_ms': ms, 'share': hashing / ms}
        for v, ms in priced.items()}}
  if _ok(large.get('plan')):
    out['plan'] = large['plan']
  out['targets'] = targets(out)
  return out


def targets(s: Dict) -> List[Dict[str, object]]:
  """The issue's targets, one row per target and ImageExampleGen variant: target, variant,
  measured text, met (True/False; None when not measured or when the row has no target) and
  kind ('target'; 'priced' or 'measured' for per-record rows the target does not cover)."""
  rows = []

  def add(name, variant, measured, met, kind='target', value=None):
    rows.append({'target': name, 'variant': variant, 'measured': measured, 'met': met,
                 'kind': kind, 'value': value})

  seed_ms = (s['fits'].get('seed_loop') or {}).get('per_record_ms')
  ieg = s['image_example_gen']
  # The in_memory variants are always listed, so a run without them shows 'not measured'.
  listed = [v for v in IEG_VARIANTS if v in ieg or IEG_PER_RECORD_KIND[v] == 'target']
  n1, n2 = s['records']['small'], s['records']['large']

  for name in listed:
    v, kind = ieg.get(name, {}), IEG_PER_RECORD_KIND[name]
    ratio = v.get('per_record_cost_vs_checked_floor')
    floor_ms = (s['fits'].get(f'checked_floor_{IEG_VARIANTS[name][0]}') or {}).get(
        'per_record_ms')
    if ratio is not None:
      measured = (f"{ratio:.2f}× ({v['per_record_ms']:.3f} vs {floor_ms:.3f} ms per record, "
                  'two-size fit)')
    elif 'per_record_ms' in v:
      measured = (f"fit not positive ({v['per_record_ms']:.3f} ms per record; checked floor "
                  f"{_f(floor_ms, '{:.3f}')} ms)")
    else:
      measured = 'not measured'
    add(f"ImageExampleGen per-record cost ≤ {FLOOR_TARGET:.2f}× the checked floor's (the same "
        'checks as a plain loop, one core)', ieg_label(name), measured,
        (ratio <= FLOOR_TARGET if ratio is not None else None) if kind == 'target' else None,
        kind, ratio)
  for name, most in NOTEBOOK_MOONSHOT.items():
    v = ieg.get(name, {})
    ratio = v.get('per_record_cost_vs_seed_loop')
    add(f"moonshot: ImageExampleGen per-record cost ≤ {most:.1f}× the notebook loop's",
        ieg_label(name),
        f"{ratio:.2f}× ({v['per_record_ms']:.3f} vs {_f(seed_ms, '{:.3f}')} ms per record)"
        if ratio is not None else 'not measured', ratio <= most if ratio is not None else None,
        value=ratio)
  for verify in ('header', 'full'):
    one = ieg.get(f'{verify}_in_memory', {}).get('per_record_ms')
    two = ieg.get(f'{verify}_multi_processing', {}).get('per_record_ms')
    speedup = one / two if one and two and two > 0 else None
    add(f'multi_processing with {MP_WORKERS} workers ≥ {MP_SPEEDUP_TARGET:.1f}× the throughput '
        'of in_memory (per-record fits)', f'verify={verify}',
        f'{speedup:.2f}× ({one:.3f} vs {two:.3f} ms per record)' if speedup else 'not measured',
        speedup >= MP_SPEEDUP_TARGET if speedup else None, value=speedup)
  plan = s.get('plan') or {}
  if plan:
    add(f'launcher plans {PLAN_ROWS:,} rows in ≤ {PLAN_SECONDS_TARGET:.0f} s and '
        f'≤ {PLAN_MEMORY_TARGET_MB:.0f} MB above the imports', 'bench/plan.py',
        f"{plan['seconds']:.1f} s, {plan['peak_above_imports_mb']:.0f} MB above the imports "
        f"({plan['rss_after_imports_mb']:.0f} MB after them)",
        plan['seconds'] <= PLAN_SECONDS_TARGET
        and plan['peak_above_imports_mb'] <= PLAN_MEMORY_TARGET_MB)
  for name in listed:
    v = ieg.get(name, {})
    fixed = v.get('fixed_seconds')
    workers = '; includes starting the SDK workers' if _multi(name) else ''
    add(f'ImageExampleGen fixed cost ≤ {FIXED_TARGET_SECONDS:.0f} s', ieg_label(name),
        f'{fixed:.1f} s (imports excluded{workers})'
        if fixed is not None else 'not measured',
        fixed <= FIXED_TARGET_SECONDS if fixed is not None else None)
  for name in listed:
    v = ieg.get(name, {})
    peak, worker = v.get('peak_rss_mb_large'), v.get('workers_peak_rss_mb_large')
    if peak is None:
      add('ImageExampleGen peak RSS ≤ 1 GB per process', ieg_label(name), 'not measured', None)
      continue
    text = (f"launcher {peak:.0f} MB ({v['rss_before_run_mb']:.0f} MB of it before the run: "
            f"TensorFlow, TFX, Beam loaded; anonymous {v['anon_before_run_mb']:.0f} → "
            f"{v['peak_anon_mb_large']:.0f} MB)")
    met = peak <= PEAK_RSS_TARGET_MB
    if v['multi_processing'] or worker is not None:
      one, several = (('SDK worker', 'workers') if v['multi_processing']
                      else ('child process', 'child processes'))
      text += (f"; largest {one} {_f(worker, '{:.0f}')} MB, all {several} together "
               f"{_f(v.get('workers_total_peak_rss_mb_large'), '{:.0f}')} MB at peak")
      met = met and (worker is None or worker <= PEAK_RSS_TARGET_MB)
    add('ImageExampleGen peak RSS ≤ 1 GB per process', ieg_label(name), text, met)
  for name in listed:
    v = ieg.get(name, {})
    growth = v.get('rss_growth_mb')
    csv = (f"; CSV {v['csv_bytes_small'] / 1e6:.2f} → {v['csv_bytes_large'] / 1e6:.2f} MB"
           if v.get('csv_bytes_small') and v.get('csv_bytes_large') else '')
    add(f'ImageExampleGen launcher RSS growth < {RSS_GROWTH_TARGET_MB:.0f} MB ({n1} → {n2} '
        'records)', ieg_label(name),
        f"{growth:+.0f} MB ({v['peak_rss_mb_small']:.0f} → {v['peak_rss_mb_large']:.0f} MB; "
        f"anonymous {v['anon_growth_mb']:+.0f} MB{csv})" if growth is not None
        else 'not measured', growth < RSS_GROWTH_TARGET_MB if growth is not None else None)

  rp = s.get('read_path', {})
  name = 'make_dataset throughput ≥ 1.0× the seed read loop (doing more)'
  if 'ratio' in rp:
    steady = rp.get('steady_ratio')
    add(name, '', f"{rp['ratio']:.2f}× overall" + (
        f"; {steady:.2f}× after the first batch (graph load + tracing "
        f"{rp['make_dataset_first_batch_seconds']:.1f} s)" if steady else ''),
        rp['ratio'] >= 1.0)
  else:
    add(name, '', rp.get('skipped', 'not measured'), None)
  val = s.get('validation')
  name = f'StatisticsGen + ClassBalance ≤ {VALIDATION_TARGET:.1f}× ImageExampleGen'
  where = 'in the whole pipeline (ImageExampleGen verify=full, in_memory)'
  if val and val['ratio_to_image_example_gen'] is not None:
    add(name, where, f"{val['ratio_to_image_example_gen']:.2f}× ({' + '.join(val['components'])}"
        f" {val['seconds']:.2f} s, same process)",
        val['ratio_to_image_example_gen'] <= VALIDATION_TARGET)
  else:
    add(name, where, 'not in pipeline yet' if val else 'not measured', None)
  return rows


def key_figures(report: Dict) -> Dict[str, Optional[float]]:
  """The few numbers a before/after table compares; reads this and earlier layouts."""
  s, large = report['summary'], report['runs']['large']
  comps = large.get('pipeline', {}).get('components', {})
  fits = s.get('fits', {})
  ieg_pipe = fits.get('image_example_gen_in_pipeline') or s.get('image_example_gen', {})
  seed = fits.get('seed_loop') or s.get('seed_loop', {})
  # Earlier layouts had one ImageExampleGen-alone stage (in_memory, the checks of the time).
  header = fits.get(IEG_PREFIX + 'header_in_memory') or fits.get('image_example_gen') or {}
  full = fits.get(IEG_PREFIX + 'full_in_memory') or {}
  rp = s.get('read_path', {})
  val = s.get('validation', {})
  return {
      'ImageExampleGen in the pipeline, seconds (larger size)': comps.get(IEG, {}).get('seconds'),
      'ImageExampleGen in the pipeline, ms per record (fit)': ieg_pipe.get('per_record_ms'),
      'ImageExampleGen alone, verify=header in_memory, ms per record (fit; earlier runs: the '
      'checks of their time)': header.get('per_record_ms'),
      'ImageExampleGen alone, verify=full in_memory, ms per record (fit)':
          full.get('per_record_ms'),
      'seed loop, ms per record (fit)': seed.get('per_record_ms'),
      'ImageExampleGen in the pipeline, per-record cost vs seed loop': _cost_ratio(
          ieg_pipe.get('per_record_ms'), seed.get('per_record_ms')),
      'ImageExampleGen window peak RSS in the pipeline, MB': comps.get(IEG, {}).get('peak_rss_mb'),
      'StatisticsGen + ClassBalance vs ImageExampleGen': val.get('ratio_to_image_example_gen'),
      'make_dataset vs seed read loop': rp.get('ratio'),
  }


# ----------------------------------------------------------------------------------------------
# Markdown.


def _f(x, fmt='{:.2f}', none='—'):
  return none if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _met(t: Dict) -> str:
  if t['kind'] == 'target':
    if t['met'] is None:
      return 'n/a' if t['measured'] == 'not measured' else 'n/a (no verdict: see measured)'
    return 'yes' if t['met'] else '**no**'
  ratio = t.get('value')
  over = '' if ratio is None else (
      f"; {'within' if ratio <= FLOOR_TARGET else '**above**'} {FLOOR_TARGET:.2f}×")
  return 'measured (no target' + over + ')'


def markdown(report: Dict) -> str:
  s, m = report['summary'], report['machine']
  small_run, large = report['runs']['small'], report['runs']['large']
  n, n_small = s['records']['large'], s['records']['small']
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
      f"({n_small} records) and {report['scales'][1]} ({n} records); the seed "
      'loop shuffles with random_state=0 (unseeded in the seed).'
      + (f" Each size was measured {report['repeat']} times; each stage's fastest run is "
         'reported (all times in results.json).' if report.get('repeat', 1) > 1 else ''), '',
      f'## Stages at {n} records', '',
      'Seconds are the work only (interpreter start-up and imports excluded, listed below); '
      'peak RSS is the stage process\'s (a pipeline component\'s: the peak of the 50 ms samples '
      'while it ran). ImageExampleGen alone runs in LocalDagRunner, one process per variant; '
      'that process is the launcher (with in_memory it also runs the Beam job; with '
      'multi_processing the SDK workers are its child processes, whose RSS is in the memory '
      'table below). The whole pipeline runs ImageExampleGen with its defaults (verify=full, '
      'in_memory).', '',
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
  for verify in ('header', 'full'):
    process_row(f'checked floor, verify={verify}: the same checks as a plain loop, one core',
                f'checked_floor_{verify}')
  if _ok(large.get('floor')) and 'first_pass_seconds' in large['floor']:
    row('floor, first pass (page cache as found: may hit the disk)',
        large['floor']['first_pass_seconds'], large['floor']['process_peak_rss_mb'])
  process_row('records through staging: each record written, read back by offset (one core)',
              'staging_pass')
  process_row('seed loop: iterrows + 10 uncompressed TFRecordWriters', 'seed_write')
  for level in GZIP_LEVELS:
    process_row(f'seed loop, gzip level {level}', f'seed_write_gzip{level}')
  for v in IEG_VARIANTS:
    process_row(f'ImageExampleGen alone, {ieg_label(v)} (RSS: launcher)', IEG_PREFIX + v)
  for name, c in large.get('pipeline', {}).get('components', {}).items():
    row(f'pipeline: {name}', max(c['seconds'], 1e-3), c['peak_rss_mb'])
  process_row('seed read loop (parse_single_example + decode_png + tf.cond)', 'seed_read')
  process_row('make_dataset (batched parse + Transform graph: decode, resize, [0,1], one shape)',
              'make_dataset')

  lines += ['', '### Start-up (not in the seconds above)', '',
            '| stage process | imports (s) | whole process, wall (s) |', '|---|---:|---:|']
  for key in ('seed_write', *(IEG_PREFIX + v for v in IEG_VARIANTS), 'pipeline', 'seed_read',
              'make_dataset'):
    st = large.get(key)
    if _ok(st):
      lines.append(f"| {key} | {st.get('import_seconds', 0):.1f} | "
                   f"{st['process_wall_seconds']:.1f} |")
  if 'pipeline' in large:
    lines.append(f"\nWhole LocalDagRunner run (all components): {large['pipeline']['seconds']:.1f} s.")

  lines += ['', '## Targets (ratios from the same run)', '',
            'Per-record costs come from the two-size fit (seconds = fixed + records × per '
            'record), so the fixed cost — LocalDagRunner and MLMD, Beam job set-up and, under '
            'multi_processing, starting the SDK workers — is not in them. The per-record target '
            'is for verify=header, in_memory; verify=full (the default) is priced, and '
            'multi_processing measured, against the same ratio.', '',
            '| target | variant | measured | met |', '|---|---|---|---|']
  for t in s['targets']:
    lines.append(f"| {t['target']} | {t['variant'] or '—'} | {t['measured']} | {_met(t)} |")

  price = s.get('staging_round_trip')
  if price:
    lines += ['', '## One pass: the records through staging', '',
              'Split membership follows each image\'s sha256, so the deal waits for every image '
              'to be read. ImageExampleGen reads, checks, hashes and serializes each row once, '
              'before the deal, into a records file in staging; after the deal the write pass '
              'copies each record, by offset, into its shard. What that round trip costs (a '
              'plain loop, one core, page cache warm; two-size fit) against the whole '
              'ImageExampleGen of this run:', '',
              '| ImageExampleGen variant | records through staging (ms/record) | '
              'ImageExampleGen (ms/record) | share |',
              '|---|---:|---:|---:|']
    for variant, p in price['variants'].items():
      lines.append(f"| {ieg_label(variant)} | {price['per_record_ms']:.3f} | "
                   f"{p['image_example_gen_per_record_ms']:.3f} | {p['share']:.0%} |")

  ieg = s['image_example_gen']
  if ieg:
    lines += ['', '## ImageExampleGen variants (alone in LocalDagRunner)', '',
              f'| variant | {n_small} records (s) | {n} records (s) | fixed (s) | per record (ms) '
              '| per-record cost vs notebook loop | launcher peak RSS (MB) | launcher RSS growth '
              '(MB) |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for v, st in ieg.items():
      f = s['fits'].get(IEG_PREFIX + v) or {}
      lines.append(
          f"| {st['label']} | {_f(f.get('seconds_small'))} | {_f(f.get('seconds_large'))} | "
          f"{_f(st.get('fixed_seconds'))} | {_f(st.get('per_record_ms'), '{:.3f}')} | "
          f"{_f(st.get('per_record_cost_vs_seed_loop'), '{:.2f}×')} | "
          f"{_f(st.get('peak_rss_mb_large'), '{:.0f}')} | "
          f"{_f(st.get('rss_growth_mb'), '{:+.0f}')} |")
    seed = s['fits'].get('seed_loop')
    if seed:
      lines.append(f"| seed loop (for reference) | {seed['seconds_small']:.2f} | "
                   f"{seed['seconds_large']:.2f} | {seed['fixed_seconds']:.2f} | "
                   f"{seed['per_record_ms']:.3f} | 1.00× | | |")
    lines += ['', '### ImageExampleGen memory', '',
              'Launcher: the stage process (LocalDagRunner + the executor; under in_memory also '
              'the Beam job), its peak while ImageExampleGen ran. Child processes (under '
              'multi_processing the SDK workers, each started through a shell; — when there were '
              'none), sampled every 50 ms: largest = the biggest one\'s own peak RSS (its VmHWM); '
              'together = the peak of their summed RSS.', '',
              '| variant | records | CSV (MB) | launcher RSS before the run (MB) | launcher peak '
              'RSS (MB) | launcher anonymous before → peak (MB) | largest child: SDK worker (MB) '
              '| children together (MB) |', '|---|---:|---:|---:|---:|---:|---:|---:|']
    for v in ieg:
      for run in (small_run, large):
        st = run.get(IEG_PREFIX + v)
        if not _ok(st):
          continue
        lines.append(
            f"| {ieg_label(v)} | {st['records']} | {_f((st.get('csv_bytes') or 0) / 1e6)} | "
            f"{st['rss_before_run_mb']:.0f} | {st['peak_rss_mb']:.0f} | "
            f"{st['anon_before_run_mb']:.0f} → {st['peak_anon_mb']:.0f} | "
            f"{_f(st.get('workers_peak_rss_mb'), '{:.0f}')} | "
            f"{_f(st.get('workers_total_peak_rss_mb'), '{:.0f}')} |")

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
            f"| stage | {n_small} records (s) | {n} records (s) | fixed (s) | "
            'per record (ms) |', '|---|---:|---:|---:|---:|']
  for name, f in s['fits'].items():
    if f:
      lines.append(f"| {FIT_LABELS.get(name, name)} | {f['seconds_small']:.2f} | "
                   f"{f['seconds_large']:.2f} | {f['fixed_seconds']:.2f} | "
                   f"{f['per_record_ms']:.3f} |")

  prof = report.get('profile')
  if prof:
    first = next((p for k, p in prof.items() if k.startswith('image_example_gen_')), None)
    lines += ['', f"## Profile ({first['records'] if first else n} records; pyinstrument, "
              'untimed processes)', '',
              "ImageExampleGen's work as the product does it (`ingest.run_ingest`, DirectRunner "
              'in_memory, no TFX around it). The launcher\'s plan (CSV index, then chunks of '
              'rows by key: shards are dealt in the Beam job, after the check pass; timed again '
              'on its own after the profiled run) is the only work before the Beam job.', '']
    for verify in ('header', 'full'):
      p = prof.get(f'image_example_gen_{verify}')
      if p:
        lines.append(f"- verify={verify}: {p['seconds']:.2f} s under the profiler; the plan "
                     f"{p['plan_seconds']:.2f} s, {p['plan_chunks']} chunks, plan file "
                     f"{p['plan_bytes'] / 1e6:.2f} MB (the CSV: {p['csv_bytes'] / 1e6:.2f} MB).")
    lines += ['', 'Call trees: `profiles/image_example_gen_header.txt`, '
              '`profiles/image_example_gen_full.txt`, `profiles/pipeline.txt` (whole pipeline).']

  before = report.get('before')
  if before:
    lines += ['', f"## Before/after ({before['path']}, {before['records']} records, vs this run)",
              '', '| figure | before | now |', '|---|---:|---:|']
    now = key_figures(report)
    for k, v in now.items():
      lines.append(f"| {k} | {_f(before['figures'].get(k))} | {_f(v)} |")
  lines += train_stage.markdown_lines(small_run.get('train'))
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
  parser.add_argument('--ieg-variants', default=','.join(IEG_VARIANTS),
                      help='ImageExampleGen variants the image_example_gen stage measures, '
                           'comma-separated, from: ' + ', '.join(IEG_VARIANTS) +
                           f' (multi_processing: --direct_num_workers={MP_WORKERS}; '
                           'default: all)')
  parser.add_argument('--profile', action='store_true',
                      help='also profile ImageExampleGen (ingest.run_ingest, in_memory, '
                           'verify=header and verify=full) and the whole pipeline with '
                           'pyinstrument on the larger dataset, into <out>/profiles/')
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
  ieg_variants = [x.strip() for x in args.ieg_variants.split(',') if x.strip()]
  unknown = sorted(set(ieg_variants) - set(IEG_VARIANTS))
  if unknown:
    parser.error(f'unknown ImageExampleGen variant(s) {unknown}; choose from '
                 f'{", ".join(IEG_VARIANTS)}')
  if not args.small_scale < args.scale:
    parser.error('--small-scale must be smaller than --scale (two sizes for the fit)')
  os.makedirs(args.out, exist_ok=True)
  report = {'date': datetime.date.today().isoformat(), 'machine': machine(), 'seed': args.seed,
            'scales': [args.small_scale, args.scale], 'stages': selected,
            'image_example_gen_variants': {
                v: {'stage': IEG_PREFIX + v, 'label': ieg_label(v), 'verify': IEG_VARIANTS[v][0],
                    'beam_args': list(IEG_VARIANTS[v][1]), 'mask_check': IEG_VARIANTS[v][2]}
                for v in ieg_variants},
            'runs': {}}
  report['repeat'] = args.repeat
  for size, scale, larger in (('small', args.small_scale, False), ('large', args.scale, True)):
    report['runs'][size] = fastest([measure(args.work_dir, scale, args.seed, selected, larger,
                                            ieg_variants)
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
  write_report(args.out, 'results', report, markdown(report))
  return 0


def write_report(out_dir: str, stem: str, report: Dict, text: str) -> None:
  """<out_dir>/<stem>.json (the figures) and <stem>.md (text, also printed)."""
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, f'{stem}.json'), 'w') as f:
    json.dump(report, f, indent=1)
  with open(os.path.join(out_dir, f'{stem}.md'), 'w') as f:
    f.write(text)
  print(text)


if __name__ == '__main__':
  sys.exit(main())
