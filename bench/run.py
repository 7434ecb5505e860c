"""``make bench``: cxr-tfx vs the notebook loop and the raw-read floor, in one run.

Usage: python -m bench.run [--scale 0.1] [--small-scale 0.02] [--work-dir bench/work]
                           [--out bench/results] [--seed 0] [--profile]

Generates (or reuses) a demo dataset at two sizes and, at each, runs every stage in its own
process (so peak RSS is per stage and interpreter/import start-up is timed apart from the work):
the floor (read every PNG once), the notebook's write loop, the whole cxr-tfx pipeline in
LocalDagRunner (DirectRunner in_memory; per-component seconds from ML Metadata's progress, peak
RSS per component from a 50 ms sampler), the notebook's read loop and ``make_dataset``. At the
larger size it also times the notebook loop with gzip (levels 0, 1 and 6). Fixed and per-record
costs are fitted from the two sizes. Writes results.json and results.md under --out.
"""
import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from typing import Dict, List, Tuple

from bench import stages

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IEG = 'ImageExampleGen'
VALIDATION = ('StatisticsGen', 'ClassBalance')


def run_stage(name: str, **kwargs) -> Dict:
  """Runs one stage in a fresh process -> its result plus the process's peak RSS (MB)."""
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    proc = subprocess.Popen([sys.executable, '-m', 'bench.stages', name, json.dumps(kwargs)],
                            cwd=REPO, stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KB
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  lines = [l for l in stdout.splitlines() if l.startswith(stages.RESULT_PREFIX)]
  if proc.returncode != 0 or not lines:
    raise RuntimeError(f'stage {name} failed ({proc.returncode}):\n{stderr[-3000:]}')
  result = json.loads(lines[-1][len(stages.RESULT_PREFIX):])
  result['process_peak_rss_mb'] = usage.ru_maxrss / 1024
  print(f'  {name}: {result["seconds"]:.2f} s, {result["records"]} records, peak RSS '
        f'{result["process_peak_rss_mb"]:.0f} MB', file=sys.stderr, flush=True)
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
      'tfx', 'tensorflow', 'apache-beam', 'tensorflow-data-validation', 'tensorflow-transform')}
  return {'cpu': model, 'cores': os.cpu_count(), 'memory_gib': round(mem_kb / 2**20, 1),
          'python': platform.python_version(), 'versions': versions,
          'load_average_at_start': os.getloadavg()}


def dataset(work_dir: str, scale: float, seed: int):
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  out = os.path.join(work_dir, f'data-s{scale}-seed{seed}')
  marker = os.path.join(out, '.complete')
  if not os.path.exists(marker):
    shutil.rmtree(out, ignore_errors=True)
    demo_data.generate(out, scale=scale, seed=seed)
    open(marker, 'w').close()
  csv_path = os.path.join(out, 'all_image_mask_pairs.csv')
  return csv_path, os.path.join(out, 'class_mapping.json')


def measure(work_dir: str, scale: float, seed: int, gzip_variants: bool,
            profile: str = '') -> Dict[str, Dict]:
  csv_path, mapping = dataset(work_dir, scale, seed)
  print(f'scale {scale}: {csv_path}', file=sys.stderr, flush=True)
  out = os.path.join(work_dir, f'run-s{scale}')
  shutil.rmtree(out, ignore_errors=True)
  r = {'floor': run_stage('floor', csv_path=csv_path)}
  r['seed_write'] = run_stage('seed_write', csv_path=csv_path, mapping_path=mapping,
                              out_dir=os.path.join(out, 'seed'))
  if gzip_variants:
    for level in (0, 1, 6):
      r[f'seed_write_gzip{level}'] = run_stage(
          'seed_write', csv_path=csv_path, mapping_path=mapping,
          out_dir=os.path.join(out, f'seed-gz{level}'), compression='GZIP', level=level)
  r['pipeline'] = run_stage('pipeline', csv_path=csv_path, mapping_path=mapping,
                            root=os.path.join(out, 'root'), profile=profile)
  examples = r['pipeline']['examples_uri']
  r['pipeline']['examples_bytes'] = sum(
      os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(examples) for f in fs
      if f.startswith('data_tfrecord'))
  r['seed_read'] = run_stage('seed_read', shard_dir=os.path.join(out, 'seed'))
  r['make_dataset'] = run_stage('make_dataset', examples_uri=examples,
                                transform_graph_uri=r['pipeline']['transform_graph_uri'])
  return r


def fit(n1: int, t1: float, n2: int, t2: float) -> Tuple[float, float]:
  """t = fixed + n * per_record through two points -> (fixed seconds, per-record seconds)."""
  per = (t2 - t1) / (n2 - n1) if n2 != n1 else float('nan')
  return t1 - n1 * per, per


def _steady_ratio(large: Dict):
  """make_dataset vs the seed's reader after their first element (graph load, tracing)."""
  ours = large['make_dataset'].get('steady_records_per_s')
  seed = large['seed_read'].get('steady_records_per_s')
  return ours / seed if ours and seed else None


def summarize(small: Dict, large: Dict) -> Dict[str, object]:
  n1, n2 = small['floor']['records'], large['floor']['records']
  comp = lambda r, name: r['pipeline']['components'].get(name, {}).get('seconds', 0.0)
  ieg_fixed, ieg_per = fit(n1, comp(small, IEG), n2, comp(large, IEG))
  seed_fixed, seed_per = fit(n1, small['seed_write']['seconds'], n2, large['seed_write']['seconds'])
  floor_fixed, floor_per = fit(n1, small['floor']['seconds'], n2, large['floor']['seconds'])
  val = lambda r: sum(comp(r, c) for c in VALIDATION)
  rss = lambda r: r['pipeline']['components'].get(IEG, {}).get('peak_rss_mb', 0.0)
  md_rate = large['make_dataset']['records'] / large['make_dataset']['seconds']
  seed_read_rate = large['seed_read']['records'] / large['seed_read']['seconds']
  out = {
      'records': {'small': n1, 'large': n2},
      'image_example_gen': {
          'fixed_seconds': ieg_fixed, 'per_record_ms': ieg_per * 1e3,
          'seconds_large': comp(large, IEG),
          'throughput_vs_seed_loop_same_run': large['seed_write']['seconds'] / comp(large, IEG),
          'per_record_throughput_vs_seed_loop': seed_per / ieg_per if ieg_per > 0 else None,
          'peak_rss_mb_small': rss(small), 'peak_rss_mb_large': rss(large),
          'rss_growth_mb': rss(large) - rss(small)},
      'seed_loop': {'fixed_seconds': seed_fixed, 'per_record_ms': seed_per * 1e3},
      'floor': {'fixed_seconds': floor_fixed, 'per_record_ms': floor_per * 1e3},
      'validation': {'statistics_plus_balance_seconds': val(large),
                     'ratio_to_image_example_gen': val(large) / comp(large, IEG)},
      'read_path': {'make_dataset_records_per_s': md_rate, 'seed_read_records_per_s': seed_read_rate,
                    'ratio': md_rate / seed_read_rate,
                    'make_dataset_first_batch_seconds': large['make_dataset'].get('first_batch_seconds'),
                    'steady_ratio': _steady_ratio(large)},
  }
  if 'seed_write_gzip1' in large:
    base = large['seed_write']
    out['gzip'] = {k: {'seconds': large[k]['seconds'], 'bytes': large[k]['bytes'],
                       'size_vs_uncompressed': large[k]['bytes'] / base['bytes'],
                       'time_vs_uncompressed': large[k]['seconds'] / base['seconds']}
                   for k in ('seed_write', 'seed_write_gzip0', 'seed_write_gzip1',
                             'seed_write_gzip6')}
    out['gzip']['image_example_gen_output_bytes'] = large['pipeline']['examples_bytes']
  return out


def markdown(report: Dict) -> str:
  s = report['summary']
  ieg = s['image_example_gen']
  m = report['machine']
  large = report['runs']['large']
  lines = [
      '# cxr-tfx benchmark results', '',
      f"Run {report['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python "
      f"{m['python']}, " + ', '.join(f'{k} {v}' for k, v in m['versions'].items()) + '.',
      f"Load average at start {m['load_average_at_start']}, at end {report['load_average_at_end']}"
      ' (other processes on the machine affect absolute times; ratios are from the same run).',
      f"Datasets: demo data at scale {report['scales'][0]} ({s['records']['small']} records) and "
      f"{report['scales'][1]} ({s['records']['large']} records).", '',
      f"## Stages at {s['records']['large']} records", '',
      '| stage | seconds | records/s | vs seed loop (time) | peak RSS (MB) |',
      '|---|---:|---:|---:|---:|']
  seed_secs = large['seed_write']['seconds']
  def row(name, secs, recs, rss):
    lines.append(f'| {name} | {secs:.2f} | {recs / secs:.0f} | {secs / seed_secs:.2f}× | '
                 f'{rss:.0f} |')
  n = s['records']['large']
  row('floor: read every PNG once', large['floor']['seconds'], n, large['floor']['process_peak_rss_mb'])
  row('seed loop: iterrows + 10 TFRecordWriters', seed_secs, n, large['seed_write']['process_peak_rss_mb'])
  for name, c in large['pipeline']['components'].items():
    row(f'pipeline: {name}', max(c['seconds'], 1e-3), n, c['peak_rss_mb'])
  row('seed read loop (parse_single_example + tf.cond)', large['seed_read']['seconds'], n,
      large['seed_read']['process_peak_rss_mb'])
  row('make_dataset (parse, decode, resize, one shape)', large['make_dataset']['seconds'], n,
      large['make_dataset']['process_peak_rss_mb'])
  lines += ['', f"Import/start-up, not included above: pipeline process "
            f"{large['pipeline']['import_seconds']:.1f} s; whole LocalDagRunner run "
            f"{large['pipeline']['seconds']:.1f} s.", '', '## Targets', '',
            '| target | measured | met |', '|---|---|---|']
  def target(name, measured, ok):
    lines.append(f'| {name} | {measured} | {"yes" if ok else "**no**"} |')
  per = ieg['per_record_throughput_vs_seed_loop']
  target('ImageExampleGen per-record throughput ≥ 1.0× seed loop',
         f"{per:.2f}× (per record {ieg['per_record_ms']:.2f} ms vs "
         f"{s['seed_loop']['per_record_ms']:.2f} ms; same-run total "
         f"{ieg['throughput_vs_seed_loop_same_run']:.2f}×)", per is not None and per >= 1.0)
  target('ImageExampleGen fixed cost ≤ 10 s', f"{ieg['fixed_seconds']:.1f} s",
         ieg['fixed_seconds'] <= 10)
  target('ImageExampleGen peak RSS ≤ 1 GB', f"{ieg['peak_rss_mb_large']:.0f} MB (process, "
         'TensorFlow and TFX loaded)', ieg['peak_rss_mb_large'] <= 1024)
  target(f"RSS growth < 100 MB ({s['records']['small']} → {s['records']['large']} records)",
         f"{ieg['rss_growth_mb']:+.0f} MB", ieg['rss_growth_mb'] < 100)
  steady = s['read_path'].get('steady_ratio')
  target('make_dataset ≥ 1.0× seed read loop', f"{s['read_path']['ratio']:.2f}× overall"
         + (f"; {steady:.2f}× after the first batch (graph load and tracing: "
            f"{s['read_path']['make_dataset_first_batch_seconds']:.1f} s)" if steady else ''),
         s['read_path']['ratio'] >= 1.0)
  target('StatisticsGen + ClassBalance ≤ 2× ImageExampleGen',
         f"{s['validation']['ratio_to_image_example_gen']:.2f}×",
         s['validation']['ratio_to_image_example_gen'] <= 2.0)
  if 'gzip' in s:
    g = s['gzip']
    lines += ['', '## Compression (seed loop variants, same records)', '',
              '| writer | seconds | MB | size vs uncompressed | time vs uncompressed |',
              '|---|---:|---:|---:|---:|']
    for k, label in (('seed_write', 'uncompressed'), ('seed_write_gzip0', 'gzip level 0 (stored)'),
                     ('seed_write_gzip1', 'gzip level 1'),
                     ('seed_write_gzip6', 'gzip level 6 (default)')):
      lines.append(f"| {label} | {g[k]['seconds']:.2f} | {g[k]['bytes'] / 1e6:.1f} | "
                   f"{g[k]['size_vs_uncompressed']:.3f} | {g[k]['time_vs_uncompressed']:.2f}× |")
    lines.append(f"| ImageExampleGen (gzip level 0, + image_id, image_sha256) | "
                 f"{ieg['seconds_large']:.2f} | {g['image_example_gen_output_bytes'] / 1e6:.1f} "
                 f"| {g['image_example_gen_output_bytes'] / g['seed_write']['bytes']:.3f} | |")
  lines += ['', '## Fixed and per-record cost (fitted from the two sizes)', '',
            '| stage | fixed (s) | per record (ms) |', '|---|---:|---:|',
            f"| floor | {s['floor']['fixed_seconds']:.2f} | {s['floor']['per_record_ms']:.3f} |",
            f"| seed loop | {s['seed_loop']['fixed_seconds']:.2f} | {s['seed_loop']['per_record_ms']:.3f} |",
            f"| ImageExampleGen | {ieg['fixed_seconds']:.2f} | {ieg['per_record_ms']:.3f} |", '']
  return '\n'.join(lines)


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.run', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--scale', type=float, default=0.1,
                      help='larger dataset, as a fraction of the real 21,165 (default %(default)s)')
  parser.add_argument('--small-scale', type=float, default=0.02,
                      help='smaller dataset for the fixed/per-record fit (default %(default)s)')
  parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'),
                      help='datasets (kept between runs) and outputs (default %(default)s)')
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results'),
                      help='results.json and results.md go here (default %(default)s)')
  parser.add_argument('--seed', type=int, default=0, help='demo data seed (default %(default)s)')
  parser.add_argument('--profile', action='store_true',
                      help='cProfile the pipeline at the larger size into '
                           '<out>/profiles/pipeline.txt')
  args = parser.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  profile = ''
  if args.profile:
    os.makedirs(os.path.join(args.out, 'profiles'), exist_ok=True)
    profile = os.path.join(args.out, 'profiles', 'pipeline.txt')
  report = {'date': datetime.date.today().isoformat(), 'machine': machine(),
            'scales': [args.small_scale, args.scale], 'runs': {}}
  report['runs']['small'] = measure(args.work_dir, args.small_scale, args.seed, False)
  report['runs']['large'] = measure(args.work_dir, args.scale, args.seed, True, profile)
  report['load_average_at_end'] = os.getloadavg()
  report['summary'] = summarize(report['runs']['small'], report['runs']['large'])
  with open(os.path.join(args.out, 'results.json'), 'w') as f:
    json.dump(report, f, indent=1)
  text = markdown(report)
  with open(os.path.join(args.out, 'results.md'), 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
