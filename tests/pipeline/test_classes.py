"""Any class set, from one source of truth, end to end (create_pipeline under LocalDagRunner,
SQLite ML Metadata): a 2-class and a 5-class dataset run with the schema's class domain
generated from their mappings and correct reports; a mapping that disagrees with a
user-supplied schema stops the run in seconds, before ImageExampleGen reads anything."""
import collections
import json
import os
import time

import pytest

from tests.support.testutil import read_csv_rows
from tests.support.testutil import write_csv_rows

SPLITS = (('train', 2), ('test', 1))
# A binary set whose positive class name needs escaping in HTML, and the demo's four classes
# plus a fifth (half of the Normal rows relabelled: issue 13's "KeyError: 4").
TWO = {'Normal': 0, 'Pneumonia & other': 1}
FIVE = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3, 'Tuberculosis': 4}


def _relabel(demo_dataset, name, mapping):
  """The demo rows under ``mapping``'s classes, as a CSV next to the demo's (relative paths
  resolve) and a mapping file -> (csv path, mapping path, {class: rows})."""
  rows = read_csv_rows(demo_dataset.csv_path)
  normal = 0
  for row in rows:
    if len(mapping) == 2:
      row['class'] = 'Normal' if row['class'] == 'Normal' else 'Pneumonia & other'
    elif row['class'] == 'Normal':
      normal += 1
      row['class'] = 'Tuberculosis' if normal % 2 else 'Normal'
  csv_path = write_csv_rows(os.path.join(demo_dataset.root, f'{name}.csv'), rows)
  mapping_path = os.path.join(demo_dataset.root, f'{name}_mapping.json')
  with open(mapping_path, 'w') as f:
    json.dump(mapping, f)
  return csv_path, mapping_path, dict(collections.Counter(r['class'] for r in rows))


def _run(demo_dataset, tmp_path_factory, name, mapping, **kwargs):
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  csv_path, mapping_path, counts = _relabel(demo_dataset, name, mapping)
  root = str(tmp_path_factory.mktemp(name))
  result = run_local(PipelineOptions(root),
                     DataSource(csv_path=csv_path, class_mapping_path=mapping_path),
                     IngestConfig(mapping, splits=SPLITS), **kwargs)
  return result, mapping, counts


@pytest.fixture(scope='module')
def two_classes(demo_dataset, tmp_path_factory):
  return _run(demo_dataset, tmp_path_factory, 'two_classes', TWO)


@pytest.fixture(scope='module')
def five_classes(demo_dataset, tmp_path_factory):
  return _run(demo_dataset, tmp_path_factory, 'five_classes', FIVE)


def _outputs(result, component_id, key):
  from pipeline import configs
  from pipeline import mlmd
  store = mlmd.sqlite_store(result.metadata_path)
  run = mlmd.run_by_name(store, result.run_id)
  return mlmd.run_output(store, run, configs.PIPELINE_NAME, component_id, key)


@pytest.mark.parametrize('dataset', ['two_classes', 'five_classes'])
def test_any_class_set_runs_end_to_end_with_correct_reports(dataset, request):
  import tensorflow_data_validation as tfdv
  from tensorflow_data_validation.utils import anomalies_util

  from components.class_balance import spec as balance_spec
  from components.schema_gen import spec as schema_spec
  result, mapping, counts = request.getfixturevalue(dataset)
  k = len(mapping)
  # The schema's class domain came from the mapping: 0..K-1, one tag per class.
  schema_artifact = _outputs(result, 'CuratedSchemaGen', schema_spec.SCHEMA_KEY)
  schema = tfdv.load_schema_text(os.path.join(schema_artifact.uri, schema_spec.SCHEMA_FILE_NAME))
  label = tfdv.get_feature(schema, 'class')
  assert (label.int_domain.min, label.int_domain.max, label.int_domain.is_categorical) == (
      0, k - 1, True)
  assert sorted(label.annotation.tag) == sorted(f'{v}={n}' for n, v in mapping.items())
  assert schema_artifact.custom_properties[schema_spec.CLASS_DOMAIN_PROPERTY].string_value == (
      'generated')
  # ClassBalance: counts of every class, both verdicts, weights for every label.
  with open(result.balance_report.replace('.html', '.json')) as f:
    report = json.load(f)
  assert report['whole_counts'] == {n: counts[n] for n in sorted(mapping, key=mapping.get)}
  assert report['class_names'] == {str(v): n for n, v in mapping.items()}
  assert report['stratification']['stratified'], report['findings']
  assert report['verdict'].startswith('stratified; classes ')
  balance = _outputs(result, 'ClassBalance', balance_spec.ANOMALIES_KEY)
  weights = json.loads(balance.custom_properties[balance_spec.CLASS_WEIGHTS_PROPERTY].string_value)
  assert sorted(weights) == [str(c) for c in range(k)]
  train = next(u['class_counts'] for u in report['units'] if u['unit'] == 'split train')
  total = sum(train.values())
  assert sum(weights[str(mapping[n])] * c for n, c in train.items()) / total == pytest.approx(
      1, abs=1e-5)
  assert not [f for f in report['findings'] if f['severity'] == 'error'], report['findings']
  # ExampleValidator finds every label inside the generated domain.
  validator = _outputs(result, 'ExampleValidator', 'anomalies')
  for split, _ in SPLITS:
    anomalies = anomalies_util.load_anomalies_binary(
        os.path.join(validator.uri, f'Split-{split}', 'SchemaDiff.pb'))
    assert not anomalies.anomaly_info, (split, anomalies.anomaly_info)
  # The page names every class (escaped) and has a row of thumbnails for each.
  with open(result.balance_report, encoding='utf-8') as f:
    page = f.read()
  samples = page.split('<section id="samples">', 1)[1].split('</section>', 1)[0]
  for name in mapping:
    assert name.replace('&', '&amp;') in samples
  assert samples.count('class="cls"') == k
  assert 'Pneumonia & other' not in page  # escaped everywhere
  assert os.path.isdir(result.transform_graph_uri)


def test_a_mapping_that_disagrees_with_a_user_schema_fails_in_seconds(demo_dataset,
                                                                     tmp_path_factory):
  import tensorflow_data_validation as tfdv

  from components.errors import CxrError
  from pipeline import mlmd
  from tests.components.class_balance.conftest import generated_schema
  site = tmp_path_factory.mktemp('site_schema')
  user_schema = str(site / 'schema.pbtxt')  # a site's own schema, stating the demo's 4 classes
  tfdv.write_schema_text(generated_schema({n: v for n, v in FIVE.items() if v < 4}), user_schema)
  root = str(site / 'root')
  started = time.monotonic()
  with pytest.raises(CxrError) as e:
    _run_with(demo_dataset, root, user_schema)
  seconds = time.monotonic() - started
  message = str(e.value)
  mapping_path = os.path.join(demo_dataset.root, 'five_vs_user_schema_mapping.json')
  assert f'class mapping {mapping_path} and schema {user_schema} disagree' in message
  assert "label 4 'Tuberculosis': in the mapping, not in the schema" in message
  assert seconds < 60, seconds  # LocalDagRunner set-up and one small component, no ingestion
  store = mlmd.sqlite_store(os.path.join(root, 'metadata.sqlite'))
  ran = {store.get_execution_types_by_id([x.type_id])[0].name.rsplit('.', 1)[-1]
         for x in store.get_executions()}
  assert 'CuratedSchemaGen' in ran and 'ImageExampleGen' not in ran, ran  # failed before it


def _run_with(demo_dataset, root, schema_path):
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  csv_path, mapping_path, _ = _relabel(demo_dataset, 'five_vs_user_schema', FIVE)
  return run_local(PipelineOptions(root, schema_path=schema_path),
                   DataSource(csv_path=csv_path, class_mapping_path=mapping_path),
                   IngestConfig(FIVE, splits=SPLITS))


def test_with_runtime_parameters_one_mapping_parameter_feeds_both(demo_dataset):
  from components.image_example_gen.config import IngestConfig
  from pipeline import configs
  from pipeline.pipeline import create_pipeline
  built = create_pipeline(configs.PipelineOptions('/tmp/root', runtime_parameters=True),
                          configs.DataSource(csv_path=demo_dataset.csv_path),
                          IngestConfig(FIVE, splits=SPLITS))
  by_id = {c.id: c for c in built.components}
  mapping = by_id['CuratedSchemaGen'].exec_properties['class_mapping']
  assert mapping is by_id['ImageExampleGen'].exec_properties['class_mapping']
  assert mapping.name == configs.RUNTIME_PARAMETERS['class_mapping']
  assert json.loads(mapping.default) == FIVE
