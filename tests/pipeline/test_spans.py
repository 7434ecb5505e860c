"""New data every week, end to end (create_pipeline under LocalDagRunner, one SQLite ML Metadata
store): three spans of ``index-{SPAN}.csv`` with shifted class mixes (the third drifts past
ClassBalance's default thresholds) and returning patients.

Span and version are recorded on the Examples; the drift baseline is found through ML Metadata
(the previous span's Examples); the third span is flagged; rerunning span 2 unchanged is a cache
hit; a patient from span 1's eval/test split never lands in span 2's train split; Transform
reads the span window (train_spans=2)."""
import json
import os

import pytest

SPLITS = (('train', 2), ('test', 1))


@pytest.fixture(scope='module')
def spans_data(tmp_path_factory):
  from pipeline import demo_data
  return demo_data.generate_spans(str(tmp_path_factory.mktemp('weekly')), rows_per_span=40)


@pytest.fixture(scope='module')
def weekly(spans_data, tmp_path_factory):
  """Span 1, span 2, then the newest (3) with a two-span training window, then span 2 again:
  {name: RunResult}, all in one pipeline root and store."""
  from components.class_balance.config import BalanceConfig
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  from tests.support.testutil import load_mapping
  root = str(tmp_path_factory.mktemp('weekly_root'))
  config = IngestConfig(load_mapping(spans_data.class_mapping_path), splits=SPLITS,
                        group_column='patient_id', mask_size='256x256',
                        group_assignment='stable')

  def run(span=None, train_spans=1, **kwargs):
    return run_local(PipelineOptions(root, train_spans=train_spans),
                     DataSource(csv_path=spans_data.csv_pattern, span=span,
                                class_mapping_path=spans_data.class_mapping_path),
                     config, **kwargs)

  runs = {'span1': run(span=1), 'span2': run(span=2),
          'span3': run(train_spans=2,
                       train_config=TrainConfig(train_steps=2, min_accuracy=0.0))}
  runs['span2_again'] = run(span=2)
  runs['span3_fail'] = _error_of(lambda: run(span=3, balance_config=BalanceConfig(
      fail_on_drift=True)))
  return runs


def _error_of(fn):
  try:
    fn()
  except Exception as e:  # pylint: disable=broad-except
    return e
  return None


def _store(result):
  from pipeline import mlmd
  return mlmd.sqlite_store(result.metadata_path)


def _output(result, component_id, key):
  from pipeline import configs
  from pipeline import mlmd
  store = _store(result)
  return mlmd.run_output(store, mlmd.run_by_name(store, result.run_id), configs.PIPELINE_NAME,
                         component_id, key)


def _group_splits(examples_uri):
  from components.image_example_gen import assignment
  from components.image_example_gen.config import DEFAULT_GROUP_SALT
  from components.image_example_gen.summary import GROUP_SPLITS_FILE
  with open(os.path.join(examples_uri, GROUP_SPLITS_FILE)) as f:
    data = json.load(f)
  # The salt's public token: ClassBalance compares group hashes only under one salt.
  assert data['group_salt_check'] == assignment.salt_check(DEFAULT_GROUP_SALT)
  return data['groups']


def test_spans_are_resolved_and_recorded_on_the_examples(weekly, spans_data):
  for name, span in (('span1', 1), ('span2', 2), ('span3', 3)):
    result = weekly[name]
    examples = _output(result, 'ImageExampleGen', 'examples')
    assert examples.custom_properties['span'].int_value == span
    assert result.span == span
    assert result.summary.csv_path == spans_data.csv_paths[span - 1]
    assert result.summary.rows_in == sum(spans_data.class_counts[span - 1].values())
    assert result.summary.group_assignment == 'stable'


def test_the_third_span_is_flagged_as_drift_and_the_second_is_not(weekly):
  from components.class_balance import spec
  baselines = {}
  for name in ('span1', 'span2', 'span3'):
    props = _output(weekly[name], 'ClassBalance', spec.ANOMALIES_KEY).custom_properties
    baselines[name] = (props[spec.DRIFT_BASELINE_SPAN_PROPERTY].int_value,
                       props[spec.DRIFTED_PROPERTY].int_value)
  # The baseline is the span before, found through ML Metadata; span 1 has none.
  assert baselines == {'span1': (-1, 0), 'span2': (1, 0), 'span3': (2, 1)}
  with open(weekly['span3'].balance_report.replace('.html', '.json')) as f:
    report = json.load(f)
  assert report['drift']['baseline']['span'] == 2
  assert any('drift' in f['kind'].lower() or 'DRIFT' in f['check'] for f in report['findings']
             if f['severity'] == 'error'), report['findings']
  with open(weekly['span3'].balance_report, encoding='utf-8') as f:
    assert 'span 2' in f.read()


def test_fail_on_drift_stops_the_run_after_writing_the_report(weekly):
  from components.class_balance.report import DriftError
  error = weekly['span3_fail']
  assert isinstance(error, DriftError), error
  assert 'span 2' in str(error) and 'balance_report.html' in str(error)
  path = str(error).split('balance_report.html')[0].split()[-1] + 'balance_report.html'
  assert os.path.exists(path), path


def test_an_unchanged_rerun_of_span_2_is_a_cache_hit(weekly):
  from pipeline import configs
  again = dict((c, cached) for c, _, cached in weekly['span2_again'].components
               if c != configs.PREVIOUS_SPANS_RESOLVER)  # a resolver resolves, every run
  assert again['ImageExampleGen'], again
  assert all(again.values()), again  # its earlier spans are the same: ClassBalance too
  assert weekly['span2_again'].examples_uri == weekly['span2'].examples_uri


def test_a_patient_keeps_the_split_they_had_in_an_earlier_span(weekly):
  one = _group_splits(weekly['span1'].examples_uri)
  two = _group_splits(weekly['span2'].examples_uri)
  returning = set(one) & set(two)
  assert returning, 'the spans share patients (follow-up images)'
  held_out = {g for g, split in one.items() if split != 'train'}
  assert held_out & returning, 'some returning patients were held out in span 1'
  assert not held_out & {g for g, split in two.items() if split == 'train'}
  assert all(one[g] == two[g] for g in returning)
  from components.class_balance import spec
  props = _output(weekly['span2'], 'ClassBalance', spec.ANOMALIES_KEY).custom_properties
  assert props[spec.SPAN_LEAKAGE_PROPERTY].int_value == 0


def _input_spans(result, component_id):
  """The spans of the Examples a component of this run read, from its INPUT events."""
  from pipeline import configs
  from pipeline import mlmd
  store = _store(result)
  execution = mlmd.run_execution(store, mlmd.run_by_name(store, result.run_id),
                                 configs.PIPELINE_NAME, component_id)
  inputs = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
            if e.type == e.INPUT and e.path.steps[0].key == 'examples']
  return sorted(a.custom_properties['span'].int_value for a in store.get_artifacts_by_id(inputs))


def test_transform_and_the_trainer_read_the_span_window_the_evaluator_this_span(weekly):
  result = weekly['span3']
  assert _input_spans(result, 'Transform') == [2, 3]
  assert _input_spans(result, 'Trainer') == [2, 3]
  assert _input_spans(result, 'Evaluator') == [3]
  assert result.training is not None and result.training.model_uri


def test_on_kubeflow_the_task_resolves_the_span_itself(spans_data, tmp_path):
  """KFP runs no component driver: the compiled ImageExampleGen task (run as KFP's launcher
  would, tests/support/kfp_harness.py) resolves the newest span, or the compiled --span, itself and
  records it on the artifact."""
  from components.image_example_gen.config import IngestConfig
  from pipeline import configs
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  from tests.support import kfp_harness
  from tests.support.testutil import load_mapping
  config = IngestConfig(load_mapping(spans_data.class_mapping_path), splits=SPLITS,
                        group_column='patient_id', mask_size='256x256',
                        group_assignment='stable')
  got = {}
  for span in (None, 1):
    out = str(tmp_path / f'kfp-{span}')
    spec = kfp_harness.load_spec(compile_pipeline(
        output=os.path.join(out, 'cxr-tfx.yaml'), image='cxr-tfx:harness',
        options=PipelineOptions(os.path.join(out, 'root'),
                                schema_path=configs.IMAGE_SCHEMA_FILE),
        source=DataSource(csv_path=spans_data.csv_pattern, span=span), ingest_config=config))
    assert 'PreviousSpans' not in spec['root']['dag']['tasks']  # no custom resolver on KFP
    gen = kfp_harness.run_pipeline(spec, os.path.join(out, 'root'), 'run-1',
                                   tasks=['ImageExampleGen'])['ImageExampleGen']
    examples = gen.outputs['examples']
    with open(os.path.join(examples['uri'], 'ingest_summary.json')) as f:
      # TFX's KFP v2 layer names a custom property that shares a declared property's name
      # (Examples' span) 'custom:span' in the artifact metadata; numbers are floats there.
      recorded = examples['metadata'].get('custom:span', examples['metadata'].get('span'))
      got[span] = (int(recorded), json.load(f)['csv_path'])
  assert got == {None: (3, spans_data.csv_paths[2]), 1: (1, spans_data.csv_paths[0])}
