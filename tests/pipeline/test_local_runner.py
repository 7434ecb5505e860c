"""End to end: `cxr-tfx run` with LocalDagRunner and a SQLite ML Metadata store."""
import os
import re
import subprocess

import pytest

from tests.support.testutil import CLI
from tests.support.testutil import load_mapping
from tests.support.testutil import REPO
from tests.support.testutil import shuffled_copy


@pytest.fixture(scope='module')
def cli_run(demo_dataset, tmp_path_factory):
  root = str(tmp_path_factory.mktemp('root'))
  args = [CLI, 'run', '--csv', demo_dataset.csv_path, '--pipeline-root', root]
  first = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=900)
  second = subprocess.run(args, capture_output=True, text=True, cwd=REPO, timeout=900)
  return root, first, second


def _examples_artifacts(metadata_path):
  from pipeline import mlmd
  return mlmd.sqlite_store(metadata_path).get_artifacts_by_type('Examples')


def test_run_prints_progress_and_the_shard_table(cli_run, demo_dataset):
  _, first, _ = cli_run
  assert first.returncode == 0, first.stderr[-3000:]
  assert first.stderr.startswith('cxr-tfx run: CuratedSchemaGen → ImageExampleGen → ')
  assert re.search(r'\[ImageExampleGen\] finished in [\d.]+ s', first.stderr)
  assert 'Traceback' not in first.stderr and 'WARNING' not in first.stderr
  out = first.stdout
  assert f'rows in: {demo_dataset.num_rows}   examples written: {demo_dataset.num_rows}' in out
  assert 'Viral Pneumonia' in out and 'data_tfrecord-00007-of-00008.gz' in out
  all_line = next(l for l in out.splitlines() if l.startswith('all '))
  assert all_line.split()[-1] == str(demo_dataset.num_rows)
  assert (f'split membership: none published before, so all {demo_dataset.num_rows} images '
          'were dealt afresh; published: ') in out


def test_examples_artifact_is_in_the_sqlite_store(cli_run):
  root, first, _ = cli_run
  assert first.returncode == 0
  artifacts = _examples_artifacts(os.path.join(root, 'metadata.sqlite'))
  assert len(artifacts) == 1
  examples = artifacts[0]
  assert examples.properties['split_names'].string_value == '["train", "eval", "test"]'
  assert sorted(os.listdir(examples.uri)) == [
      'Split-eval', 'Split-test', 'Split-train', 'ingest_summary.json', 'quarantine.json',
      'split_fingerprints.jsonl.gz', 'split_manifest.json']
  assert len(os.listdir(os.path.join(examples.uri, 'Split-train'))) == 8
  assert examples.uri in first.stdout


def test_unchanged_rerun_is_a_cache_hit(cli_run, demo_dataset):
  root, _, second = cli_run
  assert second.returncode == 0, second.stderr[-3000:]
  assert '[ImageExampleGen] finished' in second.stderr and 'cached' in second.stderr
  (examples,) = _examples_artifacts(os.path.join(root, 'metadata.sqlite'))
  # The first lines say which published membership the rerun keeps (found in ML Metadata).
  assert (f'splits: {demo_dataset.num_rows} images keep the split published in '
          f'{examples.uri}/split_manifest.json (found in ML Metadata)') in second.stderr


def test_shuffled_csv_in_another_process_gives_identical_shards(cli_run, demo_dataset,
                                                                tmp_path):
  """Cross-process determinism: the CLI run above vs. this process, rows in another order."""
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  root, first, _ = cli_run
  assert first.returncode == 0
  result = run_local(PipelineOptions(str(tmp_path)),
                     DataSource(csv_path=shuffled_copy(demo_dataset.csv_path, 'other-order.csv')),
                     IngestConfig(load_mapping(demo_dataset.class_mapping_path)))
  base_uri = _examples_artifacts(os.path.join(root, 'metadata.sqlite'))[0].uri
  for split, n in (('train', 8), ('eval', 1), ('test', 1)):
    for k in range(n):
      name = f'Split-{split}/data_tfrecord-{k:05d}-of-{n:05d}.gz'
      with open(os.path.join(base_uri, name), 'rb') as a, open(
          os.path.join(result.examples_uri, name), 'rb') as b:
        assert a.read() == b.read(), name


def test_train_with_splits_it_cannot_use_fails_before_anything_runs(demo_dataset, tmp_path):
  """`run_local(train_config=...)` checks the splits when it builds the pipeline: a CxrError naming
  --splits, and no component ran (no metadata store was written). The training run itself:
  tests/pipeline/test_train.py."""
  from components.errors import CxrError
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  config = IngestConfig(load_mapping(demo_dataset.class_mapping_path),
                        splits=(('fit', 3), ('holdout', 1)))
  with pytest.raises(CxrError, match=r'"train" split.*--splits'):
    run_local(PipelineOptions(str(tmp_path)), DataSource(csv_path=demo_dataset.csv_path),
              config, train_config=TrainConfig(train_steps=5))
  assert not os.path.exists(tmp_path / 'metadata.sqlite')
