"""ML Metadata lineage, caching that sees the images, a killed run, and Beam's multi_processing."""
import glob
import os
import signal
import subprocess
import time

import numpy as np
from PIL import Image
import pytest

from tests.testutil import CLI, REPO, load_mapping, read_csv_rows, read_examples, write_csv_rows


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """One store, four LocalDagRunner runs: A, A again, A after one PNG changed, B (other CSV)."""
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  from pipeline.local_runner import run_local  # pylint: disable=g-import-not-at-top
  ds = demo_data.generate(str(tmp_path_factory.mktemp('data')), scale=0.002, seed=3)
  root = str(tmp_path_factory.mktemp('root'))
  config = IngestConfig(load_mapping(ds.class_mapping_path), splits=(('train', 2), ('test', 1)))
  csv_b = write_csv_rows(os.path.join(ds.root, 'subset.csv'), read_csv_rows(ds.csv_path)[:-3])
  out = {'first': run_local(root, ds.csv_path, config), 'again': run_local(root, ds.csv_path, config)}
  first_png = os.path.join(ds.root, read_csv_rows(ds.csv_path)[0]['image_path'])
  Image.fromarray(np.full((299, 299), 7, np.uint8)).save(first_png)  # same path, new pixels
  out['png_changed'] = run_local(root, ds.csv_path, config)
  out['other_csv'] = run_local(root, csv_b, config)
  return out, first_png


def test_unchanged_rerun_is_cached_and_a_changed_png_is_not(runs):
  out, first_png = runs
  cached = {run: {name: c for name, _, c in result.components} for run, result in out.items()}
  assert not any(cached['first'].values())
  assert all(cached['again'].values())  # every component reused its outputs
  assert out['again'].examples_uri == out['first'].examples_uri
  assert cached['png_changed']['ImageExampleGen'] is False
  assert cached['png_changed']['ClassBalance'] is False  # downstream of the new examples
  assert cached['png_changed']['ImportSchemaGen'] is True  # the schema did not change
  assert out['png_changed'].examples_uri != out['first'].examples_uri
  with open(first_png, 'rb') as f:
    new_bytes = f.read()
  images = {ex.features.feature['image'].bytes_list.value[0]
            for _, ex in read_examples(os.path.join(out['png_changed'].examples_uri, '*', '*'))}
  assert new_bytes in images


def _chain(result, uri):
  from pipeline import lineage, mlmd  # pylint: disable=g-import-not-at-top
  tracer = lineage.Lineage(mlmd.sqlite_store(result.metadata_path))
  return tracer.chain(tracer.resolve(artifact_uri=uri))


def test_lineage_shows_inputs_and_visible_cache_reuse(runs):
  out, _ = runs
  chain = _chain(out['first'], out['first'].examples_uri)
  producers = chain['upstream']['produced_by']
  assert [p['state'] for p in producers] == ['COMPLETE', 'CACHED']  # the rerun reused it
  props = producers[0]['properties']
  assert props['seed'] == 0 and '"COVID": 0' in props['class_mapping']
  assert 'all_image_mask_pairs.csv' in props['input_config']
  assert 'referenced files (path/size/mtime): ' in props['input_fingerprint']
  assert '"hash_buckets": 2' in props['output_config']


def test_two_csvs_give_two_distinct_chains(runs):
  out, _ = runs
  a = _chain(out['first'], out['first'].examples_uri)['upstream']['produced_by'][0]
  b = _chain(out['other_csv'], out['other_csv'].examples_uri)['upstream']['produced_by'][0]
  assert 'subset.csv' in b['properties']['input_config']
  assert a['id'] != b['id']
  assert a['properties']['input_fingerprint'] != b['properties']['input_fingerprint']


def test_lineage_cli_prints_the_chain(runs):
  out, _ = runs
  done = subprocess.run([CLI, 'lineage', '--metadata', out['first'].metadata_path, '--latest',
                         'examples'], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
  assert done.stdout.startswith(f'● Examples #') and out['other_csv'].examples_uri in done.stdout
  assert 'produced by ImageExampleGen' in done.stdout and 'seed: 0' in done.stdout


def test_multi_processing_output_equals_in_memory_output(demo_dataset, tmp_path):
  """--beam-arg reaches Beam: DirectRunner multi_processing with 2 workers, same bytes."""
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  from pipeline.local_runner import run_local  # pylint: disable=g-import-not-at-top
  config = IngestConfig(load_mapping(demo_dataset.class_mapping_path))
  a = run_local(str(tmp_path / 'mem'), demo_dataset.csv_path, config,
                beam_pipeline_args=['--direct_running_mode=in_memory'])
  b = run_local(str(tmp_path / 'mp'), demo_dataset.csv_path, config,
                beam_pipeline_args=['--direct_running_mode=multi_processing',
                                    '--direct_num_workers=2'])
  files_a = sorted(glob.glob(os.path.join(a.examples_uri, 'Split-*', '*')))
  assert len(files_a) == 10
  for fa in files_a:
    with open(fa, 'rb') as x, open(fa.replace(a.examples_uri, b.examples_uri), 'rb') as y:
      assert x.read() == y.read(), fa


def test_killed_run_publishes_nothing_and_the_rerun_completes(tmp_path):
  from pipeline import demo_data, mlmd  # pylint: disable=g-import-not-at-top
  ds = demo_data.generate(str(tmp_path / 'data'), scale=0.02, seed=5)
  root = tmp_path / 'root'
  args = [CLI, 'run', '--csv', ds.csv_path, '--pipeline-root', str(root),
          '--splits', 'train=40,eval=5,test=5']
  proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
  deadline = time.time() + 300
  while time.time() < deadline and not glob.glob(str(root / '*' / '*' / '*' / 'Split-*' / '*')):
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  visible = glob.glob(str(root / '*' / '*' / '*' / 'Split-*' / '*'))
  assert visible, 'the run was not caught mid-write'
  assert glob.glob(str(root / '*' / '*' / '*' / '.staging')) or len(visible) < 50
  for path in visible:  # whatever a reader can see is a complete shard
    assert len(read_examples(path)) in (8, 9)
  store = mlmd.sqlite_store(str(root / 'metadata.sqlite'))
  assert mlmd.latest_artifact(store, 'Examples') is None  # nothing published

  rerun = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f'examples written: {ds.num_rows}' in rerun.stdout
  cached = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
  assert 'cached' in cached.stderr
