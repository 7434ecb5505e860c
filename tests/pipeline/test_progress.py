"""What the command line shows while it works: the display (terminal, plain, quiet), the forked
spinner, ImageExampleGen's progress from its staging folder, and a real `cxr-tfx run` on a
pseudo-terminal (first line, spinner, progress bar, no library logs, the summary)."""
import fcntl
import io
import json
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time

import pytest

from pipeline import cli
from pipeline import progress
from tests.support.testutil import CLI
from tests.support.testutil import REPO


class _Clock:
  """A settable clock, so rates and ETAs are exact."""

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def _progress_from(values):
  """A poll returning the given (done, total, unit) values one after another (then the last)."""
  values = list(values)

  def poll():
    return values.pop(0) if len(values) > 1 else values[0]
  return poll


def test_plain_lines_say_done_total_rate_and_time_left():
  out, clock = io.StringIO(), _Clock()
  display = progress.Display(out, mode=progress.PLAIN, plain_interval=0.05, clock=clock)
  poll = _progress_from([(0, 1000, 'rows'), (0, 1000, 'rows'), (400, 1000, 'rows')])
  display.start('[ImageExampleGen]', poll)
  time.sleep(0.3)  # counting begins at 0 rows
  clock.now += 4.0
  time.sleep(0.5)  # 400 rows 4 s later: 100 rows/s, 6 s left
  display.finish('[ImageExampleGen] finished in 4.0 s (1,000 rows)')
  display.close()
  text = out.getvalue()
  assert '\r' not in text and '\x1b' not in text  # no terminal control codes in a log
  assert '[ImageExampleGen] 400/1,000 rows (40%), 100 rows/s, about 6.0 s left' in text
  assert text.endswith('[ImageExampleGen] finished in 4.0 s (1,000 rows)\n')


def test_spinner_and_expected_time_without_progress_and_nothing_when_quiet():
  out = io.StringIO()
  display = progress.Display(out, mode=progress.PLAIN, plain_interval=0.05)
  with display.activity('[StatisticsGen]', expected_seconds=15.0,
                        done_text='[StatisticsGen] done in {seconds}'):
    time.sleep(0.3)
  display.close()
  text = out.getvalue()
  assert re.search(r'\[StatisticsGen\]: \d+\.\d s so far \(the last complete run took 15\.0 s\)',
                   text)
  assert re.search(r'\[StatisticsGen\] done in 0\.\d s\n$', text)
  quiet = io.StringIO()
  display = progress.Display(quiet, quiet=True)
  display.line('first line')
  with display.activity('[x]', _progress_from([(1, 2, 'rows')]), done_text='done'):
    time.sleep(0.1)
  display.close()
  assert quiet.getvalue() == ''


def test_terminal_bar_is_redrawn_in_place():
  out, clock = io.StringIO(), _Clock()
  display = progress.Display(out, mode=progress.TTY, refresh_seconds=0.02, clock=clock)
  display.start('[ImageExampleGen]', _progress_from([(0, 64, 'rows'), (32, 64, 'rows')]))
  time.sleep(0.2)
  clock.now += 1
  time.sleep(0.2)
  display.line('a permanent line')
  display.close()
  text = out.getvalue()
  bars = re.findall(r'\r\x1b\[K\[ImageExampleGen\]:\s+(\d+)%\|[^|]*\| (\d+)/64 \[', text)
  assert ('0', '0') in bars and ('50', '32') in bars
  assert '\r\x1b[Ka permanent line\n' in text  # the live line is cleared first
  assert text.endswith('\r\x1b[K')  # and cleared at the end


def _pty_pair(columns=100):
  master, slave = pty.openpty()
  fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, columns, 0, 0))
  return master, slave


def _read_all(master, until):
  chunks = []
  while time.monotonic() < until:
    ready = select.select([master], [], [], 0.05)[0]
    if ready:
      try:
        data = os.read(master, 65536)
      except OSError:
        break
      if not data:
        break
      chunks.append((time.monotonic(), data.decode('utf-8', 'replace')))
  return chunks


def test_a_display_process_draws_while_this_process_is_busy():
  """With a real file descriptor the display draws from a forked process, so work holding the
  GIL (a TensorFlow import, Beam's in-process runner) cannot freeze it; close() waits until
  everything is written and the live line is cleared."""
  master, slave = _pty_pair()
  with os.fdopen(os.dup(slave), 'w') as stream:
    display = progress.Display(stream, mode=progress.TTY, refresh_seconds=0.05)
    started = time.monotonic()
    with display.activity('loading TensorFlow', done_text='loaded in {seconds}'):
      end = time.monotonic() + 0.6
      while time.monotonic() < end:  # busy in Python, holding the GIL
        sum(range(1000))
    display.start('[demo-data]')
    for done in range(0, 101):
      display.report(done, 100, 'images')
    display.finish('[demo-data] written', add_count=True)
    display.close()
    closed = time.monotonic()
    chunks = _read_all(master, time.monotonic() + 0.5)
  os.close(slave)
  os.close(master)
  text = ''.join(c for _, c in chunks)
  frames = re.findall(r'\r\x1b\[K. loading TensorFlow (\d+\.\d) s', text)
  assert len(frames) >= 5, text
  assert re.search(r'loaded in 0\.\d s\r?\n', text)
  assert '[demo-data] written (100 images)' in text  # the last report always arrives
  assert text.endswith('(100 images)\r\n') and closed - started < 3.0  # nothing after close
# --- ImageExampleGen's progress from its staging folder -----------------------------------------

def _plan_line(rows):
  """One line of the launcher's plan: a chunk of ``rows`` rows, not yet dealt to a shard."""
  return json.dumps(['', -1, 0, 0, [[i] for i in range(rows)]])


def test_staging_progress_counts_closed_pieces_by_the_rows_they_hold(tmp_path):
  from components.image_example_gen import staging as staging_lib
  examples = tmp_path / 'ImageExampleGen' / 'examples'
  staging = examples / '7' / '.staging'
  poll = progress.StagingProgress(str(examples), since=time.time())
  assert poll() is None  # no staging folder yet
  staging.mkdir(parents=True)
  (staging / 'plan.jsonl').write_text('\n'.join([_plan_line(128), _plan_line(20),
                                                 _plan_line(50)]) + '\n')
  with open(staging / 'plan.jsonl', 'a'):  # the launcher still writes the plan
    assert poll() is None
  assert poll() == (0, 198, 'rows')  # the plan is complete: the total is known
  pieces = staging / 'pieces'
  pieces.mkdir()  # the check pass is over: the write pass writes pieces
  assert poll() == (0, 198, 'rows')
  (pieces / staging_lib.piece_name('train', 0, 0, 128)).write_bytes(b'done')
  with open(pieces / staging_lib.piece_name('test', 1, 0, 50), 'wb') as writing:  # still written
    writing.write(b'...')
    writing.flush()
    assert poll() == (128, 198, 'rows')
  assert poll() == (178, 198, 'rows')  # closed: done
  (staging / 'Split-train').mkdir()  # shards assembled: every chunk was written
  assert poll() == (198, 198, 'rows')


def test_staging_progress_ignores_older_executions(tmp_path):
  from components.image_example_gen import staging as staging_lib
  examples = tmp_path / 'examples'
  old = examples / '3' / '.staging'
  old.mkdir(parents=True)
  (old / 'plan.jsonl').write_text(_plan_line(5) + '\n')
  os.utime(old / 'plan.jsonl', (time.time() - 60, time.time() - 60))
  poll = progress.StagingProgress(str(examples), since=time.time())
  assert poll() is None
  staging = examples / '9' / '.staging'
  (staging / 'pieces').mkdir(parents=True)
  (staging / 'plan.jsonl').write_text(_plan_line(128) + '\n')
  (staging / 'pieces' / staging_lib.piece_name('train', 0, 0, 100)).write_bytes(b'x')
  assert poll() == (100, 128, 'rows')


def test_piece_names_carry_their_rows():
  from components.image_example_gen import staging as staging_lib
  assert staging_lib.piece_rows(staging_lib.piece_name('eval', 3, 12, 128)) == 128
  assert staging_lib.piece_rows('train-00000-00000.gz') == 0  # not a piece name of this format
  assert staging_lib.piece_rows('manifest.jsonl') == 0


# --- A real run on a pseudo-terminal ------------------------------------------------------------


@pytest.fixture(scope='module')
def tty_run(tmp_path_factory):
  """`cxr-tfx run` without --csv (demo data at the default scale, 423 images, then the
  pipeline with train=3,test=1) with a pseudo-terminal (100 columns) as its stdout and stderr:
  [(seconds since start, text)], the exit code."""
  root = tmp_path_factory.mktemp('tty_run')
  master, slave = _pty_pair()
  started = time.monotonic()
  proc = subprocess.Popen([CLI, 'run', '--pipeline-root', str(root), '--splits', 'train=3,test=1'],
                          stdin=slave, stdout=slave, stderr=slave, cwd=REPO, close_fds=True)
  os.close(slave)
  chunks = []
  deadline = started + 900
  while time.monotonic() < deadline:
    ready = select.select([master], [], [], 0.5)[0]
    if ready:
      try:
        data = os.read(master, 65536)
      except OSError:  # EIO: the child closed the terminal
        break
      if not data:
        break
      chunks.append((time.monotonic() - started, data.decode('utf-8', 'replace')))
    elif proc.poll() is not None:
      break
  os.close(master)
  return chunks, proc.wait(timeout=60)


def _between(chunks, start_text, end_text):
  """The chunks from the one containing start_text to the one containing end_text."""
  out, inside = [], False
  for t, text in chunks:
    inside = inside or start_text in text
    if inside:
      out.append((t, text))
      if end_text in text:
        break
  return out


def _bars(chunks, label):
  """(done, total) of every progress bar drawn for label, in order."""
  pattern = re.compile(re.escape(label) + r':\s+\d+%\|[^|\r]*\|\s*(\d+)/(\d+) \[')
  return [tuple(int(x) for x in m) for _, text in chunks for m in pattern.findall(text)]


def test_first_line_within_a_second_then_progress_until_libraries_load(tty_run):
  chunks, code = tty_run
  text = ''.join(c for _, c in chunks)
  assert code == 0, text[-3000:]
  t, first = chunks[0]
  assert t < 1.0, (t, first)
  assert first.startswith('cxr-tfx run: no --csv, so first 423 demo images into ')
  assert f'then {" → ".join(cli.COMPONENTS)}; outputs in ' in first
  demo = _between(chunks, '[demo-data]', '[demo-data] written in')
  bars = _bars(demo, '[demo-data]')
  assert bars and bars == sorted(bars) and {total for _, total in bars} == {423}
  assert 'demo data: 423 images (42 without masks)' in text
  loading = _between(chunks, 'loading TensorFlow, TFX and Beam', 'loaded TensorFlow')
  assert len(loading) > 3 and 'loaded TensorFlow, TFX and Beam in' in loading[-1][1]
  gaps = [b[0] - a[0] for a, b in zip(loading, loading[1:])]
  assert max(gaps) <= 2.0, gaps  # redrawn at least every 2 s while TensorFlow loads


def test_progress_bar_updates_during_image_example_gen(tty_run):
  chunks, _ = tty_run
  during = _between(chunks, '[ImageExampleGen]', '[ImageExampleGen] finished')
  bars = _bars(during, '[ImageExampleGen]')
  assert len(set(bars)) >= 2, during  # drawn, then redrawn with more rows done
  assert bars == sorted(bars) and {total for _, total in bars} == {423}
  gaps = [b[0] - a[0] for a, b in zip(during, during[1:])]
  assert max(gaps) <= 2.0, gaps
  assert '[ImageExampleGen] finished in' in during[-1][1] and '(423 rows)' in during[-1][1]


def test_no_library_logs_and_the_summary_is_complete(tty_run):
  chunks, _ = tty_run
  text = ''.join(c for _, c in chunks)
  for noise in ('absl', 'WARNING:', 'INFO:', 'ERROR:', 'tensorflow/', 'FutureWarning',
                'oneDNN'):
    assert noise not in text, noise
  for component in cli.COMPONENTS:
    assert f'[{component}] finished in' in text
  assert re.search(r'example validator: no anomalies \(train, test\)', text)
  assert re.search(r'Transform graph: \S+/Transform/transform_graph/\d+', text)
  times = text[text.index('component times (ML Metadata'):]
  assert re.search(r'ImageExampleGen\s+\d+\.\d s', times)
  assert re.search(r'total time: (\d+\.\d s|\d+ min \d\d s)', text)
