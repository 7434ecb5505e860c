"""ML Metadata lineage, caching that sees the images, a killed run, and Beam's multi_processing."""
import glob
import os
import signal
import subprocess
import time

import numpy as np
from PIL import Image
import pytest

from pipeline import configs
from tests.support.testutil import CLI
from tests.support.testutil import load_mapping
from tests.support.testutil import read_csv_rows
from tests.support.testutil import read_examples
from tests.support.testutil import REPO
from tests.support.testutil import write_csv_rows


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  """One root and store, LocalDagRunner runs: A, A again, A after one PNG changed, B (other
  CSV); then A with Transform materializing, pipeline 'cxr-other' on B, and A once more."""
  from components.image_example_gen.config import IngestConfig
  from components.transform.config import TransformConfig
  from pipeline import demo_data
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  ds = demo_data.generate(str(tmp_path_factory.mktemp('data')), scale=0.002, seed=3)
  root = str(tmp_path_factory.mktemp('root'))
  config = IngestConfig(load_mapping(ds.class_mapping_path), splits=(('train', 2), ('test', 1)))
  csv_b = write_csv_rows(os.path.join(ds.root, 'subset.csv'), read_csv_rows(ds.csv_path)[:-3])
  a, b, materialize = (DataSource(csv_path=ds.csv_path), DataSource(csv_path=csv_b),
                        TransformConfig(materialize=True))
  options = PipelineOptions(root)
  out = {'first': run_local(options, a, config), 'again': run_local(options, a, config)}
  first_png = os.path.join(ds.root, read_csv_rows(ds.csv_path)[0]['image_path'])
  Image.fromarray(np.full((299, 299), 7, np.uint8)).save(first_png)  # same path, new pixels
  out['png_changed'] = run_local(options, a, config)
  out['other_csv'] = run_local(options, b, config)
  out['materialized'] = run_local(options, a, config, transform_config=materialize)
  out['other_pipeline'] = run_local(PipelineOptions(root, pipeline_name='cxr-other'), b, config)
  out['a_again'] = run_local(options, a, config, transform_config=materialize)
  return out, first_png


def test_unchanged_rerun_is_cached_and_a_changed_png_is_not(runs):
  out, first_png = runs
  cached = {run: {name: c for name, _, c in result.components} for run, result in out.items()}
  assert not any(cached['first'].values())
  assert all(cached['again'].values())  # every component reused its outputs
  assert out['again'].examples_uri == out['first'].examples_uri
  assert cached['png_changed']['ImageExampleGen'] is False
  assert cached['png_changed']['ClassBalance'] is False  # downstream of the new examples
  assert cached['png_changed'][configs.SCHEMA_GEN] is True  # the schema did not change
  assert out['png_changed'].examples_uri != out['first'].examples_uri
  with open(first_png, 'rb') as f:
    new_bytes = f.read()
  images = {ex.features.feature['image'].bytes_list.value[0]
            for _, ex in read_examples(os.path.join(out['png_changed'].examples_uri, '*', '*'))}
  assert new_bytes in images


def test_every_read_back_is_tied_to_its_own_run_and_pipeline(runs):
  """Results come from each run's MLMD context and producing component, not from "the newest
  artifact of a type": --materialize (Transform's transformed_examples is also an Examples
  artifact, and newer), another CSV, and another pipeline in the same store."""
  out, _ = runs
  n = out['first'].summary.rows_in
  assert out['other_csv'].summary.rows_in == n - 3
  materialized = out['materialized']
  assert materialized.summary.rows_in == n
  assert '/ImageExampleGen/' in materialized.examples_uri
  assert materialized.examples_uri == out['png_changed'].examples_uri  # cached ingestion
  assert materialized.transform_graph_uri != out['png_changed'].transform_graph_uri
  other = out['other_pipeline']
  assert other.summary.rows_in == n - 3 and other.examples_uri != out['other_csv'].examples_uri
  assert '/cxr-other/' not in other.pipeline_root  # one shared root and store
  # the newest Examples in the store now belong to 'cxr-other'; pipeline cxr-tfx reads its own
  again = out['a_again']
  assert again.summary.rows_in == n and again.examples_uri == materialized.examples_uri
  assert again.run_id != materialized.run_id
  assert all(c for _, _, c in again.components)  # all cached


def test_report_and_lineage_read_the_named_pipelines_newest_run(runs):
  out, _ = runs
  metadata = out['first'].metadata_path
  for name, expected in (('cxr-tfx', out['a_again']), ('cxr-other', out['other_pipeline'])):
    done = subprocess.run([CLI, 'lineage', '--metadata', metadata, '--latest', 'examples',
                           '--pipeline-name', name], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].endswith(expected.examples_uri)
  done = subprocess.run([CLI, 'lineage', '--metadata', metadata, '--latest', 'balance'],
                        capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
  assert 'produced by ClassBalance' in done.stdout
  done = subprocess.run([CLI, 'lineage', '--metadata', metadata, '--latest', 'examples',
                         '--pipeline-name', 'nope'], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 2 and "no run of pipeline 'nope'" in done.stderr


def _chain(result, uri):
  from pipeline import lineage
  from pipeline import mlmd
  tracer = lineage.Lineage(mlmd.sqlite_store(result.metadata_path))
  return tracer.chain(tracer.resolve(artifact_uri=uri))


def test_lineage_shows_inputs_and_visible_cache_reuse(runs):
  out, _ = runs
  chain = _chain(out['first'], out['first'].examples_uri)
  producers = chain['upstream']['produced_by']
  assert [p['state'] for p in producers] == ['COMPLETE']  # made once...
  assert len(chain['upstream']['reused_by']) == 1  # ...and reused by the unchanged rerun
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
  # the newest run of cxr-tfx (the default pipeline name) reused A's examples
  assert done.stdout.startswith('● Examples #') and out['a_again'].examples_uri in done.stdout
  assert 'produced by ImageExampleGen' in done.stdout and 'seed: 0' in done.stdout


def test_cached_reruns_do_not_grow_the_chain(runs):
  """Run 'materialized' made the examples' newest consumers; 'a_again' reused every output:
  each producer and consumer is shown once, the cached executions on one line."""
  out, _ = runs
  from pipeline import lineage
  chain = _chain(out['a_again'], out['a_again'].examples_uri)
  text = lineage.format_chain(chain)
  assert text.count('produced by ImageExampleGen') == 1
  reused = chain['upstream']['reused_by']
  assert len(reused) == 2  # the cached ImageExampleGen of 'materialized' and of 'a_again'
  assert f'reused by 2 cached execution(s): #{reused[0]}, #{reused[1]}' in text
  consumers = [(e['component'], tuple(a['id'] for a in e['outputs']))
               for e in chain['downstream']]
  assert len(consumers) == len(set(consumers))  # no (component, outputs) twice
  statistics = [e for e in chain['downstream'] if e['component'] == 'StatisticsGen']
  assert len(statistics) == 1 and statistics[0]['state'] == 'COMPLETE'
  assert len(statistics[0]['reused_by']) == 2


def test_relative_uris_and_producer_names_resolve(runs):
  out, _ = runs
  root = out['first'].pipeline_root
  relative = os.path.relpath(out['first'].examples_uri, os.path.dirname(root))
  done = subprocess.run([CLI, 'lineage', '--metadata', out['first'].metadata_path,
                         '--artifact-uri', relative + '/'], capture_output=True, text=True,
                        cwd=os.path.dirname(root))
  assert done.returncode == 0, done.stderr
  assert done.stdout.startswith('● Examples #') and out['first'].examples_uri in done.stdout
  for producer, kind in (('ClassBalance', 'balance'), ('ExampleValidator', 'anomalies')):
    by_name = subprocess.run([CLI, 'lineage', '--metadata', out['first'].metadata_path,
                              '--latest', producer], capture_output=True, text=True, cwd=REPO)
    by_kind = subprocess.run([CLI, 'lineage', '--metadata', out['first'].metadata_path,
                              '--latest', kind], capture_output=True, text=True, cwd=REPO)
    assert by_name.returncode == 0, by_name.stderr
    assert by_name.stdout == by_kind.stdout
    assert f'produced by {producer} (execution' in by_name.stdout


def test_lineage_into_a_closed_pipe_exits_quietly(runs):
  """`cxr-tfx lineage ... | head -n 1`: the reader leaves early; no BrokenPipeError traceback."""
  out, _ = runs
  done = subprocess.run(f'set -o pipefail; {CLI} lineage --metadata '
                        f'{out["first"].metadata_path} --latest examples | head -n 1',
                        shell=True, executable='/bin/bash', capture_output=True, text=True,
                        cwd=REPO)
  assert done.returncode == 0, done.stderr
  assert done.stdout.startswith('● Examples #') and len(done.stdout.splitlines()) == 1
  assert 'Traceback' not in done.stderr and 'BrokenPipe' not in done.stderr


def test_multi_processing_output_equals_in_memory_output(demo_dataset, tmp_path):
  """--beam-arg reaches Beam: DirectRunner multi_processing with 2 workers, same bytes."""
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  config = IngestConfig(load_mapping(demo_dataset.class_mapping_path))
  source = DataSource(csv_path=demo_dataset.csv_path)
  a = run_local(PipelineOptions(str(tmp_path / 'mem'),
                                beam_pipeline_args=['--direct_running_mode=in_memory']),
                source, config)
  b = run_local(PipelineOptions(str(tmp_path / 'mp'),
                                beam_pipeline_args=['--direct_running_mode=multi_processing',
                                                    '--direct_num_workers=2']),
                source, config)
  files_a = sorted(glob.glob(os.path.join(a.examples_uri, 'Split-*', '*')))
  assert len(files_a) == 10
  for fa in files_a:
    with open(fa, 'rb') as x, open(fa.replace(a.examples_uri, b.examples_uri), 'rb') as y:
      assert x.read() == y.read(), fa


def test_killed_run_publishes_nothing_and_the_rerun_completes(tmp_path):
  from pipeline import demo_data
  from pipeline import mlmd
  ds = demo_data.generate(str(tmp_path / 'data'), scale=0.02, seed=5)
  root = tmp_path / 'root'
  args = [CLI, 'run', '--csv', ds.csv_path, '--pipeline-root', str(root),
          '--splits', 'train=40,eval=5,test=5']
  proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
  deadline = time.time() + 300
  pieces = str(root / '*' / '*' / '*' / '.staging' / 'pieces' / '*')
  while time.time() < deadline and not glob.glob(pieces):
    time.sleep(0.005)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert glob.glob(str(root / '*' / '*' / '*' / '.staging')), 'the run was not caught mid-write'
  # shards are renamed into Split-* only after the whole job is reconciled: nothing is visible
  assert not glob.glob(str(root / '*' / '*' / '*' / 'Split-*'))
  store = mlmd.sqlite_store(str(root / 'metadata.sqlite'))
  assert not [a for a in store.get_artifacts_by_type('Examples')
              if a.state == a.LIVE]  # nothing published

  killed = [e for e in store.get_executions() if e.last_known_state == e.RUNNING]
  assert len(killed) == 1  # the kill left ImageExampleGen RUNNING, its output unpublished

  rerun = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert f'examples written: {ds.num_rows}' in rerun.stdout
  # the rerun marked the killed execution FAILED and removed its unpublished output folder
  store = mlmd.sqlite_store(str(root / 'metadata.sqlite'))
  state = store.get_executions_by_id([killed[0].id])[0]
  assert state.last_known_state == state.FAILED
  assert 'abandoned' in state.custom_properties['cxr_failure'].string_value
  assert not glob.glob(str(root / '*' / '*' / '*' / '.staging'))
  assert not os.path.exists(root / 'ImageExampleGen' / 'examples' / str(killed[0].id))
  cached = subprocess.run(args, capture_output=True, text=True, cwd=REPO)
  assert 'cached' in cached.stderr
