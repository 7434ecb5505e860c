"""``python -m bench.validate``: how long `cxr-tfx validate` makes a user wait.

Usage: python -m bench.validate [--scale 1.0] [--seed 0] [--work-dir bench/work]
                                [--out bench/results] [--repeat 3] [--workers N]

The target (issue 17): under 5 s for the 21,165-row demo set (``cxr-tfx demo-data --scale 1``,
cached under --work-dir like bench.run's datasets) on the 2-core machine, with the header
check. Every variant is a fresh ``cxr-tfx validate --csv ... --quiet`` process, timed from
outside (start-up, CSV parse, every file's checks in the worker pool, the plan, the report:
what the user waits for); each is run --repeat times after one untimed pass (page cache warm,
as for bench.run's stages) and the fastest and the median are kept. Variants:

  header         the default: --verify header, mask check at its default (warn)
  header_no_mask --verify header with --mask-check off (what the mask check costs)
  full           --verify full (every image and mask decoded, as `run`'s default)
  header_1_proc  the default on one process (--workers 1): what the pool gains

Writes <out>/validate.json and <out>/validate.md.
"""
import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List

from bench import run as bench_run

REPO = bench_run.REPO
CLI = os.path.join(os.path.dirname(sys.executable), 'cxr-tfx')
TARGET_SECONDS = 5.0


def variants(csv_path: str, workers: int) -> Dict[str, Dict[str, object]]:
  """name -> {argv, how}: the commands timed."""
  base = [CLI, 'validate', '--csv', csv_path, '--quiet', '--workers', str(workers)]
  out = {
      'header': {'argv': base, 'how': 'cxr-tfx validate (defaults: verify header, mask check '
                                      'warn)'},
      'full': {'argv': base + ['--verify', 'full'], 'how': 'cxr-tfx validate --verify full'},
      'header_1_proc': {'argv': base[:-1] + ['1'], 'how': 'cxr-tfx validate --workers 1'},
      'header_no_mask': {'argv': base + ['--mask-check', 'off'],
                         'how': 'cxr-tfx validate --mask-check off'},
  }
  return out


def time_once(argv: List[str]) -> Dict[str, float]:
  start = time.monotonic()
  proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True)
  stdout, stderr = proc.communicate()
  wall = time.monotonic() - start
  if proc.returncode != 0:
    raise RuntimeError(f'{argv} failed ({proc.returncode}):\n{stderr[-2000:]}')
  return {'wall_seconds': wall, 'stdout_tail': stdout[-300:]}


def markdown(report: Dict) -> str:
  m = report['machine']
  lines = [
      '# `cxr-tfx validate` at 21,165 rows', '',
      f"Run {report['date']} on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, no GPU, "
      f"Python {m['python']}. Load average (1, 5, 15 min) at start "
      f"{', '.join(f'{x:.2f}' for x in m['load_average_at_start'])}, at end "
      f"{', '.join(f'{x:.2f}' for x in report['load_average_at_end'])}: other processes were "
      'running on the machine during the run, so absolute times are inflated.',
      f"Dataset: demo data (seed {report['seed']}) at scale {report['scale']} "
      f"({report['rows']:,} rows, {report['files']:,} images and masks), page cache warm. "
      f"Each variant: a fresh process timed from outside (wall, what the user waits for), "
      f"{report['repeat']} runs after one untimed pass; {report['workers']} worker processes "
      'unless stated.', '',
      f'Target: under {TARGET_SECONDS:.0f} s with the header check.', '',
      '| variant | how | fastest (s) | median (s) | ms per row | target |', '|---|---|---:|---:|---:|---|']
  for name, v in report['variants'].items():
    fastest = min(v['wall_seconds'])
    target = ('—' if name not in ('header', 'header_no_mask') else
              ('met' if fastest < TARGET_SECONDS else '**missed**'))
    lines.append(f"| {name} | {v['how']} | {fastest:.2f} | "
                 f"{statistics.median(v['wall_seconds']):.2f} | "
                 f"{1000 * fastest / report['rows']:.3f} | {target} |")
  lines += ['', 'All runs (s): ' + '; '.join(
      f"{name} {', '.join(f'{x:.2f}' for x in v['wall_seconds'])}"
      for name, v in report['variants'].items()), '']
  return '\n'.join(lines)


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.validate', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--scale', type=float, default=1.0,
                      help='dataset size as a fraction of the real 21,165 rows '
                           '(default %(default)s)')
  parser.add_argument('--seed', type=int, default=0, help='demo data seed (default %(default)s)')
  parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'),
                      help='datasets, shared with bench.run (default %(default)s; gitignored)')
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results'),
                      help='validate.json and validate.md go here (default %(default)s)')
  parser.add_argument('--repeat', type=int, default=3, help='timed runs per variant')
  parser.add_argument('--workers', type=int, default=len(os.sched_getaffinity(0)),
                      help='worker processes (default %(default)s: the cores available)')
  parser.add_argument('--variants', default='',
                      help='comma-separated subset of: header, header_no_mask, full, '
                           'header_1_proc (default: all)')
  args = parser.parse_args(argv)
  csv_path, _ = bench_run.dataset(args.work_dir, args.scale, args.seed)
  with open(csv_path, encoding='utf-8') as f:
    rows = sum(1 for _ in f) - 1
  with open(csv_path, encoding='utf-8') as f:
    files = sum(1 + bool(line.rstrip('\n').split(',')[1]) for line in list(f)[1:])
  report = {'date': datetime.date.today().isoformat(), 'machine': bench_run.machine(),
            'scale': args.scale, 'seed': args.seed, 'rows': rows, 'files': files,
            'repeat': args.repeat, 'workers': args.workers, 'variants': {}}
  chosen = variants(csv_path, args.workers)
  if args.variants:
    chosen = {k: chosen[k] for k in args.variants.split(',')}
  for name, v in chosen.items():
    bench_run.log(f'{name}: {v["how"]}')
    time_once(v['argv'])  # untimed: page cache warm
    runs = [time_once(v['argv']) for _ in range(max(1, args.repeat))]
    walls = [r['wall_seconds'] for r in runs]
    bench_run.log(f'  {", ".join(f"{w:.2f}" for w in walls)} s')
    command = ['cxr-tfx', *v['argv'][1:]]
    report['variants'][name] = {'how': v['how'], 'command': [
        os.path.relpath(a, REPO) if a.startswith(REPO) else a for a in command],
                                'wall_seconds': walls}
  report['load_average_at_end'] = os.getloadavg()
  bench_run.write_report(args.out, 'validate', report, markdown(report))
  return 0


if __name__ == '__main__':
  sys.exit(main())
