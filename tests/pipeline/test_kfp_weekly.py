"""New data every week on Kubeflow, run as KFP's launcher would (tests/support/kfp_harness.py):
drift, the training window and training, through one compiled spec and three spans.

One spec is compiled as docs/kubeflow.md compiles the weekly pipeline: the span pattern's folder
is a pipeline parameter (``span_folder``), the previous span's Examples (ClassBalance's drift
baseline) and the two earlier spans' (the training window) are imported from the pipeline
parameters ``previous_examples``, ``window_examples_1`` and ``_2``, and it trains (2 steps),
evaluates against the latest blessed model (none yet) and pushes only what is blessed.
Its compiled defaults name gs:// folders; each run gives local ones. Weeks 1 and 2 run its
ImageExampleGen task as their CSVs arrive in the folder. Week 3 runs the whole spec as a step of
a user's parent KFP pipeline (compiled by kfp 2.5) whose next step counts the Examples' shards.
Then the same spec compiled with --fail-on-drift reruns only ClassBalance (the rest from the
harness's cache) and stops on the drift of span 3 (demo_data: its class mix shifts to COVID).
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.support import kfp_harness
from tests.support import warm_processes

SPLITS = (('train', 2), ('test', 1))
COMPILED_FOLDER = 'gs://bucket/weekly'  # the compiled defaults; every run gives local folders
INNER = 'cxr-tfx'  # the parent pipeline's task that runs the compiled spec
COUNT_SHARDS = '''
import glob, os, sys
with open(sys.argv[2], 'w') as f:
  f.write(str(len(glob.glob(os.path.join(sys.argv[1], 'Split-*', '*.gz')))))
'''
PARENT = '''
from kfp import compiler, components, dsl
cxr = components.load_component_from_file({spec!r})

@dsl.container_component
def count_shards(examples: dsl.Input[dsl.Dataset], shards: dsl.OutputPath(str)):
  return dsl.ContainerSpec(image='python:3.10', command=['python', '-c', {code!r}],
                           args=[examples.uri, shards])

@dsl.pipeline(name='users-weekly-pipeline')
def parent(span_folder: str, two_weeks_ago: str, last_week: str):
  week = cxr(span_folder=span_folder, previous_examples=last_week,
             window_examples_1=two_weeks_ago, window_examples_2=last_week)
  count_shards(examples=week.outputs['examples'])

compiler.Compiler().compile(parent, {out!r})
'''


def _compile(out_dir, mapping_path, fail_on_drift):
  from components.class_balance.config import BalanceConfig
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  from tests.support.testutil import load_mapping
  name = 'strict.yaml' if fail_on_drift else 'weekly.yaml'
  return compile_pipeline(
      output=os.path.join(out_dir, name), image='cxr-tfx:harness',
      options=PipelineOptions(os.path.join(out_dir, 'root'), runtime_parameters=True,
                              schema_path=IMAGE_SCHEMA_FILE,
                              previous_examples=f'{COMPILED_FOLDER}/previous',
                              window_examples=[f'{COMPILED_FOLDER}/window-1',
                                               f'{COMPILED_FOLDER}/window-2']),
      source=DataSource(csv_path=COMPILED_FOLDER + '/index-{SPAN}.csv'),
      ingest_config=IngestConfig(load_mapping(mapping_path), splits=SPLITS,
                                 group_column='patient_id', mask_size='256x256'),
      balance_config=BalanceConfig(fail_on_drift=fail_on_drift),
      train_config=TrainConfig(train_steps=2, eval_steps=1, min_accuracy=0.0),
      embeddable=True)


def _parent(spec_path, out_dir):
  """The user's pipeline with the compiled spec as its step, compiled by kfp."""
  out = os.path.join(out_dir, 'parent.yaml')
  code = PARENT.format(spec=spec_path, code=COUNT_SHARDS, out=out)
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                        check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  return kfp_harness.load_spec(out)


@pytest.fixture(scope='module')
def weekly(tmp_path_factory):
  from pipeline import demo_data
  warm_processes.start()  # its imports overlap the data and the compilation
  out = str(tmp_path_factory.mktemp('kfp_weekly'))
  data = demo_data.generate_spans(os.path.join(out, 'weekly'), rows_per_span=40)
  folder = data.root
  later = os.path.join(out, 'later')  # the CSVs of weeks 2 and 3, not delivered yet
  os.makedirs(later)
  for path in data.csv_paths[1:]:
    shutil.move(path, later)
  spec_path = _compile(out, data.class_mapping_path, fail_on_drift=False)
  spec = kfp_harness.load_spec(spec_path)
  root = os.path.join(out, 'root')
  runs = {}
  for week in (1, 2):
    if week == 2:
      shutil.move(os.path.join(later, os.path.basename(data.csv_paths[1])), folder)
    runs[week] = kfp_harness.run_pipeline(
        spec, root, f'week-{week}', tasks=['ImageExampleGen'],
        parameter_values={'span_folder': folder})['ImageExampleGen']
  shutil.move(os.path.join(later, os.path.basename(data.csv_paths[2])), folder)
  two_weeks_ago, last_week = (runs[w].outputs['examples']['uri'] for w in (1, 2))
  # ImageExampleGen cached on request (its spec says never): only the --fail-on-drift rerun
  # below reads it back, with the folder unchanged. Weeks 1 and 2 must not be in this cache:
  # the same parameters over a folder that grew would be a (stale) hit.
  cache = {}
  use_cache = {'ImageExampleGen': True}
  parent = _parent(spec_path, out)
  runs[3] = kfp_harness.run_pipeline(
      parent, root, 'week-3', cache=cache, use_cache=use_cache, parallel=2,
      parameter_values={'span_folder': folder, 'two_weeks_ago': two_weeks_ago,
                        'last_week': last_week})
  strict = kfp_harness.load_spec(_compile(out, data.class_mapping_path, fail_on_drift=True))
  try:
    kfp_harness.run_pipeline(strict, root, 'week-3-strict', tasks=['ClassBalance'],
                             cache=cache, use_cache=use_cache,
                             parameter_values={'span_folder': folder,
                                               'previous_examples': last_week})
    runs['strict'] = None
  except kfp_harness.TaskFailed as e:
    runs['strict'] = e
  return dict(data=data, spec=spec, root=root, runs=runs, last_week=last_week,
              window=[two_weeks_ago, last_week], cache=cache)


def _span(examples):
  """The span ImageExampleGen recorded (TFX's KFP layer names a custom property that shares a
  declared property's name 'custom:span'; numbers are floats in artifact metadata)."""
  return int(examples['metadata'].get('custom:span', examples['metadata'].get('span')))


def _week3(weekly):
  return weekly['runs'][3][INNER].inner


def test_one_spec_takes_each_weeks_newest_span_from_the_span_folder_parameter(weekly):
  spec, data = weekly['spec'], weekly['data']
  params = spec['root']['inputDefinitions']['parameters']
  assert params['span_folder'] == {'defaultValue': COMPILED_FOLDER, 'isOptional': True,
                                   'parameterType': 'STRING'}
  assert 'csv_uri' not in params  # the pattern below the folder is compiled
  gen = spec['root']['dag']['tasks']['ImageExampleGen']['inputs']['parameters']
  assert gen['input_base'] == {'componentInputParameter': 'span_folder'}
  weeks = {1: weekly['runs'][1].outputs['examples'], 2: weekly['runs'][2].outputs['examples'],
           3: _week3(weekly)['ImageExampleGen'].outputs['examples']}
  assert {week: _span(examples) for week, examples in weeks.items()} == {1: 1, 2: 2, 3: 3}
  for week, examples in weeks.items():
    summary = json.loads(examples['metadata']['cxr_ingest_summary'])
    assert summary['csv_path'] == data.csv_paths[week - 1]


def test_every_compiled_task_runs_with_the_launchers_executor_input(weekly):
  inner = _week3(weekly)
  assert set(inner) == set(weekly['spec']['root']['dag']['tasks'])
  assert not any(r.cached for r in inner.values())
  examples = inner['ImageExampleGen'].outputs['examples']
  assert examples['metadata']['split_names'] == '["train", "test"]'
  # Downstream tasks got the upstream URIs and metadata through the executor output file.
  (given,) = inner['StatisticsGen'].executor_input['inputs']['artifacts']['examples'][
      'artifacts']
  assert given['uri'] == examples['uri'] and given['metadata'] == examples['metadata']
  stats = inner['StatisticsGen'].outputs['statistics']['uri']
  assert os.path.exists(os.path.join(stats, 'Split-train', 'FeatureStats.pb'))
  graph = inner['Transform'].outputs['transform_graph']['uri']
  assert os.path.exists(os.path.join(graph, 'transform_fn', 'saved_model.pb'))
  assert os.path.exists(os.path.join(inner['ExampleValidator'].outputs['anomalies']['uri'],
                                     'Split-test', 'SchemaDiff.pb'))
  assert 'cxr_balanced' in inner['ClassBalance'].outputs['anomalies']['metadata']
  schema_param = inner['CuratedSchemaGen'].executor_input['inputs']['parameterValues']
  assert schema_param['schema_file'] == kfp_harness.PATH_MAP[kfp_harness.IMAGE_SCHEMA]


def test_drift_is_measured_against_the_imported_previous_span(weekly):
  inner = _week3(weekly)
  imported = inner['PreviousExamples'].outputs['result']
  assert imported['uri'] == weekly['last_week']
  balance = inner['ClassBalance']
  given = balance.executor_input['inputs']['artifacts']['previous_examples']['artifacts']
  assert [a['uri'] for a in given] == [weekly['last_week']]
  anomalies = balance.outputs['anomalies']
  assert anomalies['metadata']['cxr_drifted'] == 1  # span 3's class mix moved to COVID
  with open(os.path.join(anomalies['uri'], 'balance_report.json')) as f:
    drift = json.load(f)['drift']
  assert drift['baseline']['uri'] == weekly['last_week']
  assert drift['current_span'] == 3 and drift['class_mix']['drifted']


def test_fail_on_drift_stops_the_run_on_kubeflow(weekly):
  error = weekly['runs']['strict']
  assert isinstance(error, kfp_harness.TaskFailed), error
  assert str(error).startswith('ClassBalance exited 1')
  assert 'drift check failed: span 3 vs span' in str(error)
  assert "class 'COVID'" in str(error)
  # only ClassBalance ran: ImageExampleGen (cached on request), CuratedSchemaGen and
  # StatisticsGen came from the cache, keyed as KFP keys them
  ran = os.listdir(os.path.join(weekly['root'], 'cxr-tfx', 'week-3-strict'))
  assert ran == ['ClassBalance']


def test_transform_and_the_trainer_read_the_window_the_evaluator_this_span(weekly):
  inner = _week3(weekly)
  window = inner['SpanWindow'].outputs['window']
  this_week = inner['ImageExampleGen'].outputs['examples']['uri']
  assert json.loads(window['metadata']['cxr_window']) == weekly['window'] + [this_week]
  for split, shards in SPLITS:  # spans 1 (w0-), 2 (w1-) and this week's, 3 (w2-)
    files = sorted(os.listdir(os.path.join(window['uri'], f'Split-{split}')))
    assert [f[:3] for f in files] == ['w0-'] * shards + ['w1-'] * shards + ['w2-'] * shards
  for task in ('Transform', 'Trainer'):
    (read,) = inner[task].executor_input['inputs']['artifacts']['examples']['artifacts']
    assert read['uri'] == window['uri'], task
  (evaluated,) = inner['Evaluator'].executor_input['inputs']['artifacts']['examples'][
      'artifacts']
  assert evaluated['uri'] == this_week


def test_the_training_tail_pushes_under_the_pipeline_root_only_what_is_blessed(weekly):
  """Trainer -> Evaluator (its baseline resolver finds no blessed model on a fresh cluster) ->
  Pusher. Two training steps make no model worth pushing (docs/training.md: the blessing), so
  the Pusher runs and pushes nothing; when it pushes, it is under the pipeline root."""
  inner = _week3(weekly)
  assert set(inner) >= {'Trainer', 'Evaluator', 'Pusher'}
  blessed = inner['Evaluator'].outputs['blessing']['metadata']['blessed']
  pushed = inner['Pusher'].outputs['pushed_model']['metadata']
  assert pushed['pushed'] == blessed
  serving = os.path.join(weekly['root'], 'serving_model')
  if blessed:
    (version,) = os.listdir(serving)
    assert pushed['pushed_destination'] == os.path.join(serving, version)
    assert os.path.exists(os.path.join(serving, version, 'saved_model.pb'))
  else:
    assert not os.path.exists(serving) or not os.listdir(serving)


def test_a_parent_pipeline_runs_the_spec_as_a_step_and_consumes_its_examples(weekly):
  parent = weekly['runs'][3]
  assert set(parent) == {INNER, 'count-shards'}
  inner = parent[INNER].inner
  assert set(weekly['spec']['root']['dag']['tasks']) == set(inner)
  examples = parent[INNER].outputs['examples']
  assert examples == inner['ImageExampleGen'].outputs['examples']  # the DAG output's selector
  shards = sum(n for _, n in SPLITS)
  assert parent['count-shards'].parameters == {'shards': str(shards)}
