"""Caching sees content, not only paths, sizes and mtimes (real components under LocalDagRunner,
a SQLite ML Metadata store): a schema edited in place reruns CuratedSchemaGen; a CSV whose two
rows' classes were swapped in place (same size, same mtime) reruns ImageExampleGen with the new
labels; unchanged inputs stay cache hits."""
import csv
import os
import shutil

from tests.support.testutil import load_mapping
from tests.support.testutil import read_examples

SPLITS = (('train', 1), ('test', 1))


def _run(root, component):
  """``component`` alone in a pipeline under LocalDagRunner -> its newest execution and the
  artifact it published (or reused), by ML Metadata."""
  from tfx.orchestration import metadata
  from tfx.orchestration import pipeline as tfx_pipeline
  from tfx.orchestration.local.local_dag_runner import LocalDagRunner

  from pipeline import mlmd
  db = os.path.join(root, 'metadata.sqlite')
  LocalDagRunner().run(tfx_pipeline.Pipeline(
      pipeline_name='cache-by-content', pipeline_root=root, components=[component],
      enable_cache=True, metadata_connection_config=metadata.sqlite_metadata_connection_config(db)))
  store = mlmd.sqlite_store(db)
  context = store.get_context_by_type_and_name('node', f'cache-by-content.{component.id}')
  newest = max(store.get_executions_by_context(context.id), key=lambda e: e.id)
  ids = [e.artifact_id for e in store.get_events_by_execution_ids([newest.id])
         if e.type == e.OUTPUT]
  return newest, store.get_artifacts_by_id(ids)[0]


def _same_stat_rewrite(path, text):
  """Rewrites ``path`` with ``text`` (same length) and puts its mtime back."""
  before = os.stat(path)
  assert len(text.encode()) == before.st_size
  with open(path, 'w', encoding='utf-8', newline='') as f:
    f.write(text)
  os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_schema_edited_in_place_is_not_a_cache_hit(demo_dataset, tmp_path):
  from components.schema_gen.component import CuratedSchemaGen
  from tests.support.testutil import REPO
  schema = str(tmp_path / 'schema.pbtxt')
  shutil.copy(os.path.join(REPO, 'schemas', 'schema.pbtxt'), schema)
  mapping = load_mapping(demo_dataset.class_mapping_path)
  root = str(tmp_path / 'root')
  first, artifact = _run(root, CuratedSchemaGen(schema, mapping))
  again, same = _run(root, CuratedSchemaGen(schema, mapping))
  assert again.last_known_state == again.CACHED and same.id == artifact.id
  with open(schema, encoding='utf-8') as f:
    text = f.read()
  _same_stat_rewrite(schema, text.replace('min_fraction: 1.0 min_count: 1',
                                          'min_fraction: 1.0 min_count: 2', 1))
  edited, new = _run(root, CuratedSchemaGen(schema, mapping))
  assert edited.last_known_state == edited.COMPLETE and new.id != artifact.id
  with open(os.path.join(new.uri, 'schema.pbtxt'), encoding='utf-8') as f:
    assert 'min_count: 2' in f.read()
  del first


def test_classes_swapped_in_the_csv_in_place_rerun_ingestion(demo_dataset, tmp_path):
  from components.image_example_gen.component import ImageExampleGen
  data = str(tmp_path / 'data')
  shutil.copytree(demo_dataset.root, data)
  csv_path = os.path.join(data, os.path.basename(demo_dataset.csv_path))
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  # Two images of each of two classes: swapping one COVID and one Normal label keeps the
  # file's size (5 + 6 characters either way).
  rows = ([r for r in rows if r['class'] == 'COVID'][:2]
          + [r for r in rows if r['class'] == 'Normal'][:2])
  mapping = load_mapping(demo_dataset.class_mapping_path)
  index_csv = os.path.join(data, 'index.csv')
  with open(index_csv, 'w', newline='') as f:
    w = csv.DictWriter(f, fieldnames=['image_path', 'mask_path', 'class'], lineterminator='\n')
    w.writeheader()
    w.writerows(rows)
  root = str(tmp_path / 'root')

  def gen():
    return ImageExampleGen(csv_path=index_csv, class_mapping=mapping, splits=SPLITS,
                           mask_size='256x256', mask_check='off')

  first, examples = _run(root, gen())
  again, same = _run(root, gen())
  assert again.last_known_state == again.CACHED and same.id == examples.id
  with open(index_csv, encoding='utf-8') as f:
    text = f.read()
  swapped = text.replace(',COVID\n', ',TMP\n', 1).replace(',Normal\n', ',COVID\n', 1).replace(
      ',TMP\n', ',Normal\n', 1)
  assert swapped != text
  _same_stat_rewrite(index_csv, swapped)
  rerun, new = _run(root, gen())
  assert rerun.last_known_state == rerun.COMPLETE and new.id != examples.id

  def labels(uri):
    out = {}
    for folder in sorted(d for d in os.listdir(uri) if d.startswith('Split-')):
      for _, ex in read_examples(os.path.join(uri, folder, '*')):
        f = ex.features.feature
        out[f['image_id'].bytes_list.value[0].decode()] = f['class'].int64_list.value[0]
    return out

  before, after = labels(examples.uri), labels(new.uri)
  changed = {k for k in before if before[k] != after[k]}
  assert len(changed) == 2 and {before[k] for k in changed} == {after[k] for k in changed}
  del first
