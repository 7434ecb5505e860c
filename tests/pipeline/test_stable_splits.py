"""Splits that stay put, on real PNGs with real Beam and, where ML Metadata finds the published
membership, real TFX (ImageExampleGen under LocalDagRunner, a SQLite store).

Membership (image sha256 -> split) is the same when the dataset moves and the CSV's absolute
paths are rewritten, and for the CSV and ``--image-dir`` with the same mapping; growing the
dataset by 20 % moves no earlier image, both with the manifest given and found through ML
Metadata; a manifest carried to a fresh pipeline root (and through the KFP harness as a
runtime parameter) gives the same membership; a re-sent image in span 2 keeps its span-1 split
and is reported."""
import csv
import json
import os
import shutil

import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import read_csv_rows
from tests.support.testutil import shard_files

SPLITS = (('train', 3), ('eval', 1), ('test', 1))
GROW_SEED = 99  # demo_data.render seed of the added images (others than the dataset's)


def _ingest(source, mapping, out_dir, **kw):
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  previous = kw.pop('previous_manifest', '')
  config = IngestConfig(mapping, SPLITS, kw.pop('seed', 0), mask_size='256x256', **kw)
  return ingest.run_ingest(source, config, out_dir, beam.Pipeline, previous_manifest=previous)


def _membership(out_dir):
  """{image sha256: (split, label)} read from the written records themselves."""
  from tests.support.testutil import read_examples
  out = {}
  for folder in sorted(os.listdir(out_dir)):
    if folder.startswith('Split-'):
      for _, ex in read_examples(os.path.join(out_dir, folder, '*')):
        f = ex.features.feature
        out[f['image_sha256'].bytes_list.value[0].decode()] = (folder[len('Split-'):],
                                                              f['class'].int64_list.value[0])
  assert out and all(split for split, _ in out.values())
  return out


def _write_csv(path, rows):
  with open(path, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=['image_path', 'mask_path', 'class'])
    w.writeheader()
    w.writerows(rows)
  return str(path)


def _grow(root, rows, fraction, name_prefix='added'):
  """Adds round(fraction * len(rows)) new images (other pixels) to the dataset under ``root``;
  -> the new CSV rows (relative to ``root``)."""
  from PIL import Image

  from pipeline import demo_data
  added = []
  for i in range(round(fraction * len(rows))):
    cls = rows[i % len(rows)]['class']
    image, _ = demo_data.render(cls, i, GROW_SEED)
    rel = f'{demo_data.DATASET_DIR}/{cls}/images/{name_prefix}-{i}.png'
    Image.fromarray(image, mode='L').save(os.path.join(root, rel), format='PNG')
    added.append(dict(image_path=rel, mask_path='', **{'class': cls}))
  return added


@pytest.fixture(scope='module')
def dataset(demo_dataset, tmp_path_factory):
  """A private copy of the demo dataset (64 images) we may move and grow."""
  root = str(tmp_path_factory.mktemp('stable') / 'data')
  shutil.copytree(demo_dataset.root, root)
  return dict(root=root, csv=os.path.join(root, os.path.basename(demo_dataset.csv_path)),
              mapping=load_mapping(demo_dataset.class_mapping_path),
              mapping_path=demo_dataset.class_mapping_path,
              rows=read_csv_rows(os.path.join(root, os.path.basename(demo_dataset.csv_path))))


@pytest.fixture(scope='module')
def base(dataset, tmp_path_factory):
  out = str(tmp_path_factory.mktemp('base'))
  summary = _ingest(dataset['csv'], dataset['mapping'], out)
  return out, summary


def test_moving_the_data_and_rewriting_absolute_paths_keeps_every_split(dataset, base,
                                                                         tmp_path):
  moved = str(tmp_path / 'moved' / 'elsewhere')
  shutil.copytree(dataset['root'], moved)
  rows = [dict(r, image_path=os.path.join(moved, r['image_path']),
               mask_path=os.path.join(moved, r['mask_path']) if r['mask_path'] else '')
          for r in reversed(dataset['rows'])]  # absolute paths, and another row order
  csv_path = _write_csv(os.path.join(moved, 'absolute.csv'), rows)
  out = str(tmp_path / 'out')
  _ingest(csv_path, dataset['mapping'], out)
  assert _membership(out) == _membership(base[0])
  assert len(_membership(out)) == len(dataset['rows'])
  # Keys are relative to the CSV's folder, so the records are the same bytes too.
  assert shard_files(out) == shard_files(base[0])


def test_the_image_folder_and_the_csv_agree_on_membership_and_labels(dataset, base, tmp_path):
  from components.image_example_gen import index
  from pipeline import demo_data
  out = str(tmp_path / 'folder')
  _ingest(index.Source(image_dir=os.path.join(dataset['root'], demo_data.DATASET_DIR)),
          dataset['mapping'], out)
  assert _membership(out) == _membership(base[0])


def test_growing_by_a_fifth_moves_no_earlier_image(dataset, base, tmp_path):
  root = str(tmp_path / 'grown')
  shutil.copytree(dataset['root'], root)
  added = _grow(root, dataset['rows'], 0.2)
  csv_path = _write_csv(os.path.join(root, 'grown.csv'), dataset['rows'] + added)
  out = str(tmp_path / 'out')
  manifest = os.path.join(base[0], 'split_manifest.json')
  summary = _ingest(csv_path, dataset['mapping'], out, split_manifest=manifest)
  before, after = _membership(base[0]), _membership(out)
  assert {k: after[k] for k in before} == before
  m = summary.membership
  assert (m['source'], m['kept'], m['new'], m['missing']) == (
      'option', len(dataset['rows']), len(added), 0)
  assert sum(m['new_by_split'].values()) == len(added)
  assert m['max_split_class_deviation'] < 2


def test_exact_duplicates_share_a_split_and_start_over_says_what_it_discards(dataset, base,
                                                                          tmp_path):
  rows = dataset['rows']
  root = str(tmp_path / 'dups')
  shutil.copytree(dataset['root'], root)
  copies = []
  for i, r in enumerate(dataset['rows'][:6]):  # the same bytes under new names
    rel = os.path.join(os.path.dirname(r['image_path']), f'copy-{i}.png')
    shutil.copy(os.path.join(root, r['image_path']), os.path.join(root, rel))
    copies.append(dict(image_path=rel, mask_path='', **{'class': r['class']}))
  csv_path = _write_csv(os.path.join(root, 'dups.csv'), rows + copies)
  out = str(tmp_path / 'out')
  summary = _ingest(csv_path, dataset['mapping'], out, fresh_splits=True,
                    previous_manifest=os.path.join(base[0], 'split_manifest.json'))
  assert len(summary.duplicate_images) == 6
  assert not summary.cross_split_duplicates
  assert summary.membership['source'] == 'fresh'
  assert summary.membership['discarded']['images'] == len(dataset['rows'])


def test_an_output_without_a_manifest_gives_one_from_its_records(dataset, base, tmp_path):
  """Upgrading: outputs written before split manifests existed. migrate rebuilds the manifest
  from the records (sha256 and split folder); it equals the one published, and a run given it
  keeps every image's split."""
  from components.image_example_gen import assignment
  from components.image_example_gen import migrate
  published = assignment.load_manifest(os.path.join(base[0], 'split_manifest.json'))
  old = str(tmp_path / 'old')
  shutil.copytree(base[0], old)
  os.remove(os.path.join(old, 'split_manifest.json'))
  out = str(tmp_path / 'rebuilt.json')
  assert migrate.main([old, out]) == 0
  rebuilt = assignment.load_manifest(out)
  assert rebuilt.images == published.images and rebuilt.seed == published.seed
  assert rebuilt.split_names() == published.split_names()
  again = str(tmp_path / 'again')
  summary = _ingest(dataset['csv'], dataset['mapping'], again, seed=5, split_manifest=out)
  assert summary.membership['kept'] == len(dataset['rows'])
  assert _membership(again) == _membership(base[0])
  assert migrate.main([str(tmp_path), str(tmp_path / 'x.json')]) == 2  # not an output


# --- Through TFX: the published membership found in ML Metadata ---------------------------------

def _run_gen(root, csv_path, mapping, **kw):
  """ImageExampleGen alone under LocalDagRunner in ``root`` (its SQLite store there) -> the
  Examples it published (or reused) in this run, by ML Metadata."""
  from tfx.orchestration import metadata
  from tfx.orchestration import pipeline as tfx_pipeline
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner

  from components.image_example_gen import split_history
  from components.image_example_gen.component import ImageExampleGen
  from pipeline import mlmd
  gen = ImageExampleGen(csv_path=csv_path, class_mapping=mapping, splits=SPLITS,
                        mask_size='256x256', **kw)
  db = os.path.join(root, 'metadata.sqlite')
  LocalDagRunner().run(tfx_pipeline.Pipeline(
      pipeline_name='stable-splits', pipeline_root=root, components=[gen], enable_cache=True,
      metadata_connection_config=metadata.sqlite_metadata_connection_config(db)))
  store = mlmd.sqlite_store(db)
  context = store.get_context_by_type_and_name('node', 'stable-splits.ImageExampleGen')
  newest = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
  ids = [e.artifact_id for e in store.get_events_by_execution_ids([newest.id])
         if e.type == e.OUTPUT]
  artifact = store.get_artifacts_by_id(ids)[0]
  del split_history
  return artifact, newest


def test_a_later_run_over_a_superset_keeps_every_earlier_image_without_being_asked(
    dataset, tmp_path):
  from components.image_example_gen import spec
  root = str(tmp_path / 'pipeline')
  data = str(tmp_path / 'data')
  shutil.copytree(dataset['root'], data)
  first_csv = _write_csv(os.path.join(data, 'index.csv'), dataset['rows'])
  first, _ = _run_gen(root, first_csv, dataset['mapping'])
  added = _grow(data, dataset['rows'], 0.2)
  grown_csv = _write_csv(os.path.join(data, 'index.csv'), dataset['rows'] + added)
  second, _ = _run_gen(root, grown_csv, dataset['mapping'])
  before, after = _membership(first.uri), _membership(second.uri)
  assert {k: after[k] for k in before} == before
  with open(os.path.join(second.uri, 'ingest_summary.json')) as f:
    m = json.load(f)['membership']
  assert (m['source'], m['kept'], m['new']) == ('ml-metadata', len(before), len(added))
  assert m['prior_manifest'] == first.custom_properties[spec.SPLIT_MANIFEST_PROPERTY].string_value
  # The same inputs again: TFX's cache reuses the second run's output.
  third, execution = _run_gen(root, grown_csv, dataset['mapping'])
  assert third.id == second.id and execution.last_known_state == execution.CACHED
  # What the command line's first lines say a run will keep: the second run's manifest.
  from components.image_example_gen import split_history
  from pipeline import mlmd
  published = split_history.published_examples(
      mlmd.sqlite_store(os.path.join(root, 'metadata.sqlite')), 'stable-splits', 'ImageExampleGen')
  assert split_history.latest_manifest(
      published, spec.SPLIT_MANIFEST_PROPERTY, spec.SPLIT_MANIFEST_IMAGES_PROPERTY) == (
          second.custom_properties[spec.SPLIT_MANIFEST_PROPERTY].string_value, len(after))
  # A manifest carried to a fresh pipeline root gives the same membership.
  other, _ = _run_gen(str(tmp_path / 'other_root'), grown_csv, dataset['mapping'],
                      split_manifest=os.path.join(second.uri, 'split_manifest.json'))
  assert _membership(other.uri) == after


def test_a_resent_image_in_span_2_keeps_its_span_1_split_and_is_reported(dataset, tmp_path):
  root = str(tmp_path / 'pipeline')
  data = str(tmp_path / 'data')
  shutil.copytree(dataset['root'], data)
  rows = dataset['rows']
  _write_csv(os.path.join(data, 'index-1.csv'), rows[:40])
  pattern = os.path.join(data, 'index-{SPAN}.csv')
  first, _ = _run_gen(root, pattern, dataset['mapping'], span=1)
  span1 = _membership(first.uri)
  # Span 2: new images, plus a span-1 image of a held-out split sent again under a new name.
  held_out_sha, (held_split, _) = next((k, v) for k, v in sorted(span1.items())
                                       if v[0] != 'train')
  resent = next(r for r in rows[:40]
                if _sha_of(os.path.join(data, r['image_path'])) == held_out_sha)
  rel = os.path.join(os.path.dirname(resent['image_path']), 'resent-under-a-new-name.png')
  shutil.copy(os.path.join(data, resent['image_path']), os.path.join(data, rel))
  _write_csv(os.path.join(data, 'index-2.csv'),
             rows[40:] + [dict(image_path=rel, mask_path='', **{'class': resent['class']})])
  second, _ = _run_gen(root, pattern, dataset['mapping'], span=2)
  assert _membership(second.uri)[held_out_sha][0] == held_split
  with open(os.path.join(second.uri, 'ingest_summary.json')) as f:
    m = json.load(f)['membership']
  assert m['resent_count'] == 1
  assert (m['resent'][0]['first_span'], m['resent'][0]['split']) == (1, held_split), m
  assert m['resent'][0]['image_id'].endswith('resent-under-a-new-name.png')


def _sha_of(path):
  import hashlib
  with open(path, 'rb') as f:
    return hashlib.sha256(f.read()).hexdigest()
