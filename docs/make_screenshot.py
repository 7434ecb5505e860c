"""Renders ClassBalance's HTML report with headless Chromium, network disabled, into
docs/class_balance_report.png (the screenshot in README.md and docs/validation.md).

  .venv/bin/python docs/make_screenshot.py                      # demo data + the pipeline, ~1 min
  .venv/bin/python docs/make_screenshot.py --report out/ClassBalance/anomalies/5/balance_report.html

Without --report it generates the demo dataset `cxr-tfx run` uses without --csv (423 images,
10% without masks, seed 0) in a temporary folder and runs the pipeline there (LocalDagRunner).
The browser resolves no host name and sends every request to a closed local port, so the picture
is what an air-gapped machine shows.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile

DOCS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DOCS)
OFFLINE = ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars',
           '--host-resolver-rules=MAP * ~NOTFOUND', '--proxy-server=http://127.0.0.1:9',
           '--proxy-bypass-list=<-loopback>', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--no-first-run']


def demo_report(work_dir: str) -> str:
  """Runs the pipeline on the demo data -> the path of ClassBalance's HTML report."""
  sys.path.insert(0, REPO)
  import json

  from components.image_example_gen.config import IngestConfig
  from pipeline import configs
  from pipeline import demo_data
  from pipeline.local_runner import run_local
  ds = demo_data.generate(os.path.join(work_dir, 'data'), scale=configs.DEMO_SCALE,
                          missing_masks=configs.DEMO_MISSING_MASKS, seed=0)
  with open(ds.class_mapping_path) as f:
    mapping = json.load(f)
  result = run_local(configs.PipelineOptions(os.path.join(work_dir, 'root')),
                     configs.DataSource(csv_path=ds.csv_path), IngestConfig(mapping))
  return result.balance_report


def screenshot(chromium: str, page: str, png: str, width: int, height: int) -> None:
  with tempfile.TemporaryDirectory() as profile:
    done = subprocess.run([chromium, *OFFLINE, f'--user-data-dir={profile}',
                           f'--window-size={width},{height}', f'--screenshot={png}',
                           'file://' + os.path.abspath(page)],
                          capture_output=True, text=True, timeout=300)
  if done.returncode != 0 or not os.path.exists(png):
    raise SystemExit(f'chromium failed ({done.returncode}): {done.stderr[-2000:]}')


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--report', help='an existing balance_report.html (default: run the demo)')
  parser.add_argument('--out', default=os.path.join(DOCS, 'class_balance_report.png'))
  parser.add_argument('--width', type=int, default=1280)
  parser.add_argument('--height', type=int, default=2400,
                      help='pixels from the top of the page (default %(default)s: the verdicts, '
                           'findings, classes and weights, and the thumbnails)')
  parser.add_argument('--chromium', default=shutil.which('chromium') or '/usr/bin/chromium')
  args = parser.parse_args(argv)
  if not os.path.exists(args.chromium):
    raise SystemExit(f'no chromium at {args.chromium} (option --chromium)')
  work = os.path.join(tempfile.gettempdir(), 'cxr-tfx-demo')  # a stable path for the picture
  shutil.rmtree(work, ignore_errors=True)
  try:
    page = args.report or demo_report(work)
    screenshot(args.chromium, page, args.out, args.width, args.height)
  finally:
    shutil.rmtree(work, ignore_errors=True)
  print(f'wrote {args.out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
