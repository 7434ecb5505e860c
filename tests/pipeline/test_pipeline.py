"""create_pipeline: per-component Beam args (merged by TFX after the global ones), pipeline name.

Builds and compiles pipeline objects only (no run, no file read): TFX's own merge
(tfx/orchestration/pipeline.py, add_beam_pipeline_args_to_component) and IR compiler
(tfx/dsl/compiler/compiler.py, the LocalDagRunner's) are what is checked.
"""
import json

import pytest

from pipeline import configs

MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
GLOBAL = ['--direct_running_mode=in_memory', '--direct_num_workers=1']
FOR_EXAMPLE_GEN = ['--direct_running_mode=multi_processing', '--direct_num_workers=2']


def _create(ingest_config=None, train=False, train_config=None, **pipeline_options):
  """create_pipeline on a CSV, with PipelineOptions(**pipeline_options) and, with ``train``,
  ``train_config`` (default TrainConfig())."""
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.pipeline import create_pipeline
  options = configs.PipelineOptions(
      **{'pipeline_root': '/tmp/cxr-tfx-unused-root', **pipeline_options})
  return create_pipeline(options, configs.DataSource(csv_path='/data/all_image_mask_pairs.csv'),
                         ingest_config or IngestConfig(MAPPING),
                         train_config=(train_config or TrainConfig()) if train else None)


def _beam_args_by_id(pipeline):
  """{component id: final beam_pipeline_args of its executor spec} for the Beam components."""
  from tfx.dsl.components.base import executor_spec
  return {c.id: list(c.executor_spec.beam_pipeline_args) for c in pipeline.components
          if isinstance(c.executor_spec, executor_spec.BeamExecutorSpec)}


def _compiled_beam_args_by_id(pipeline):
  """The same, from the IR the LocalDagRunner runs (compiled deployment config)."""
  from tfx.dsl.compiler import compiler
  from tfx.proto.orchestration import executable_spec_pb2
  from tfx.proto.orchestration import pipeline_pb2
  ir = compiler.Compiler().compile(pipeline)
  deployment = pipeline_pb2.IntermediateDeploymentConfig()
  ir.deployment_config.Unpack(deployment)
  result = {}
  for node_id, packed in deployment.executor_specs.items():
    spec = executable_spec_pb2.BeamExecutableSpec()
    if packed.Unpack(spec):  # False for the non-Beam executors
      result[node_id] = [p.value.string_value for p in spec.beam_pipeline_args_placeholders]
  return result


def _direct_options(args):
  """What Beam makes of an arg list (argparse: the last occurrence of a flag wins)."""
  from apache_beam.options.pipeline_options import DirectOptions
  from apache_beam.options.pipeline_options import PipelineOptions
  options = PipelineOptions(args).view_as(DirectOptions)
  return options.direct_running_mode, options.direct_num_workers


@pytest.fixture(scope='module')
def per_component():
  return _create(beam_pipeline_args=GLOBAL,
                 component_beam_args={configs.IMAGE_EXAMPLE_GEN: FOR_EXAMPLE_GEN})


def test_beam_component_ids_are_the_pipelines_beam_components():
  from tfx.dsl.components.base import base_beam_component
  pipeline = _create()
  ids = [c.id for c in pipeline.components]
  assert sorted(ids) == sorted([configs.IMAGE_EXAMPLE_GEN, configs.SCHEMA_GEN,
                                configs.STATISTICS_GEN, configs.EXAMPLE_VALIDATOR,
                                configs.CLASS_BALANCE, configs.TRANSFORM])
  beam = {c.id for c in pipeline.components
          if isinstance(c, base_beam_component.BaseBeamComponent)}
  assert beam == set(configs.BEAM_COMPONENT_IDS)


def test_component_args_come_after_the_global_ones(per_component):
  got = _beam_args_by_id(per_component)
  assert got[configs.IMAGE_EXAMPLE_GEN] == GLOBAL + FOR_EXAMPLE_GEN
  for other in set(configs.BEAM_COMPONENT_IDS) - {configs.IMAGE_EXAMPLE_GEN}:
    assert got[other] == GLOBAL, other


def test_compiled_ir_keeps_that_order_and_the_component_value_wins(per_component):
  got = _compiled_beam_args_by_id(per_component)
  assert set(got) == set(configs.BEAM_COMPONENT_IDS)
  assert got[configs.IMAGE_EXAMPLE_GEN] == GLOBAL + FOR_EXAMPLE_GEN
  assert _direct_options(got[configs.IMAGE_EXAMPLE_GEN]) == ('multi_processing', 2)
  for other in set(configs.BEAM_COMPONENT_IDS) - {configs.IMAGE_EXAMPLE_GEN}:
    assert got[other] == GLOBAL, other
    assert _direct_options(got[other]) == ('in_memory', 1), other


def test_component_args_without_global_ones():
  got = _beam_args_by_id(_create(component_beam_args={
      configs.TRANSFORM: ['--direct_num_workers=3'], configs.STATISTICS_GEN: []}))
  assert got == {configs.IMAGE_EXAMPLE_GEN: [], configs.STATISTICS_GEN: [],
                 configs.CLASS_BALANCE: [], configs.TRANSFORM: ['--direct_num_workers=3']}


def test_components_do_not_share_beam_args_across_pipelines(per_component):
  """with_beam_pipeline_args changes the component's own (copied) spec, not its class's."""
  assert _beam_args_by_id(_create()) == {i: [] for i in configs.BEAM_COMPONENT_IDS}
  assert _beam_args_by_id(per_component)[configs.IMAGE_EXAMPLE_GEN] == GLOBAL + FOR_EXAMPLE_GEN


@pytest.mark.parametrize('bad', ['statisticsgen', 'CuratedSchemaGen', 'ExampleValidator', 'Trainer',
                                 'Evaluator'])
def test_an_unknown_component_id_is_a_clear_error(bad):
  with pytest.raises(ValueError) as e:
    _create(component_beam_args={bad: ['--direct_num_workers=2']})
  message = str(e.value)
  assert repr(bad) in message
  for valid in configs.BEAM_COMPONENT_IDS:
    assert valid in message
  if bad == 'statisticsgen':
    assert "did you mean 'StatisticsGen'" in message


def test_a_single_string_instead_of_a_list_is_an_error():
  with pytest.raises(ValueError, match='must be a list of strings'):
    _create(component_beam_args={configs.TRANSFORM: '--direct_num_workers=2'})


def test_pipeline_name_is_used_and_validated():
  assert _create(pipeline_name='cxr-tfx-dev-2').pipeline_info.pipeline_name == 'cxr-tfx-dev-2'
  for bad in ('', 'Cxr', 'cxr_tfx', '-cxr', 'a' * 129):
    with pytest.raises(ValueError, match=r'\[a-z0-9\]\[a-z0-9-\]\{0,127\}'):
      _create(pipeline_name=bad)


def test_verify_and_max_file_bytes_reach_image_example_gen():
  from components.image_example_gen.config import IngestConfig
  pipeline = _create(ingest_config=IngestConfig(MAPPING, verify='header', max_file_bytes=1000))
  example_gen = next(c for c in pipeline.components if c.id == configs.IMAGE_EXAMPLE_GEN)
  assert example_gen.exec_properties['verify'] == 'header'
  assert example_gen.exec_properties['max_file_bytes'] == 1000


@pytest.fixture(scope='module')
def with_training():
  from components.trainer.config import TrainConfig
  return _create(train=True, train_config=TrainConfig(train_steps=7, min_accuracy=0.3),
                 component_beam_args={configs.EVALUATOR: ['--direct_num_workers=2']})


def test_train_adds_trainer_evaluator_and_pusher_after_the_default_pipeline(with_training):
  from pipeline import training
  ids = [c.id for c in with_training.components]
  tail = [configs.TRAINER, configs.EVALUATOR, configs.PUSHER]
  assert ids[-3:] == tail and training.BASELINE_RESOLVER in ids  # the evaluator's baseline
  assert sorted(set(ids) - set(tail) - {training.BASELINE_RESOLVER}) == sorted(
      c.id for c in _create().components)  # default unchanged


def test_the_trainer_runs_the_package_run_fn_with_class_balance_as_input(with_training):
  import json
  by_id = {c.id: c for c in with_training.components}
  trainer = by_id[configs.TRAINER]
  props = trainer.exec_properties
  assert props['run_fn'] == 'components.trainer.task.run_fn' and not props.get('module_file')
  assert json.loads(props['train_args'])['num_steps'] == 7
  assert json.loads(props['train_args'])['splits'] == ['train']
  assert json.loads(props['eval_args'])['splits'] == ['eval']
  assert json.loads(props['custom_config'])['batch_size'] == 8
  inputs = {key: channel.producer_component_id for key, channel in trainer.inputs.items()}
  assert inputs == {'examples': configs.IMAGE_EXAMPLE_GEN, 'transform_graph': configs.TRANSFORM,
                    'schema': configs.SCHEMA_GEN, 'class_balance': configs.CLASS_BALANCE}
  assert trainer.executor_spec.executor_class.__module__ == 'components.trainer.executor'


def test_the_evaluator_blesses_on_test_by_class_and_the_pusher_writes_under_the_root(
    with_training):
  import json
  by_id = {c.id: c for c in with_training.components}
  evaluator = by_id[configs.EVALUATOR].exec_properties
  assert json.loads(evaluator['example_splits']) == ['test']
  eval_config = json.loads(evaluator['eval_config'])
  assert eval_config['model_specs'][0]['signature_name'] == 'from_examples'
  assert {'feature_keys': ['class']} in eval_config['slicing_specs']
  accuracy = eval_config['metrics_specs'][0]['metrics'][1]
  assert accuracy['class_name'] == 'SparseCategoricalAccuracy'
  (threshold,) = accuracy['per_slice_thresholds']
  assert threshold['slicing_specs'] == [{}]  # the overall slice only
  assert threshold['threshold']['value_threshold']['lower_bound'] == 0.3
  pusher = json.loads(by_id[configs.PUSHER].exec_properties['push_destination'])
  assert pusher['filesystem']['base_directory'] == '/tmp/cxr-tfx-unused-root/serving_model'
  assert _beam_args_by_id(with_training)[configs.EVALUATOR] == ['--direct_num_workers=2']


def test_without_class_weights_the_trainer_does_not_wait_for_class_balance():
  from components.trainer.config import TrainConfig
  trainer = next(c for c in _create(train=True, train_config=TrainConfig(
      use_balance_weights=False)).components if c.id == configs.TRAINER)
  assert 'class_balance' not in trainer.inputs


def test_training_needs_train_and_eval_or_test_splits_and_evaluator_args_need_train():
  from components.image_example_gen.config import IngestConfig
  with pytest.raises(ValueError, match='"train" split and an "eval" or "test" split.*--splits'):
    _create(train=True, ingest_config=IngestConfig(MAPPING, splits=(('a', 3), ('b', 1))))
  only_test = _create(train=True, ingest_config=IngestConfig(MAPPING, splits=(('train', 3),
                                                                              ('test', 1))))
  import json
  by_id = {c.id: c for c in only_test.components}
  assert json.loads(by_id[configs.TRAINER].exec_properties['eval_args'])['splits'] == ['test']
  assert json.loads(by_id[configs.EVALUATOR].exec_properties['example_splits']) == ['test']
  with pytest.raises(ValueError, match="'Evaluator' runs only with --train"):
    _create(component_beam_args={configs.EVALUATOR: ['--direct_num_workers=2']})


def test_a_pipeline_root_with_glob_characters_is_refused():
  """Issue #29: a root 'out[2]' ran until Beam globbed its own staging path and found nothing
  (a traceback); TFX and Beam read artifacts by glob patterns, so the root is refused first."""
  for root in ('/tmp/out[2]', '/tmp/a*b', 'runs/?'):
    with pytest.raises(configs.PipelineConfigError, match=r'--pipeline-root'):
      configs.PipelineOptions(root)
  assert configs.PipelineOptions('/tmp/out-2 (copy)').pipeline_root == '/tmp/out-2 (copy)'


def test_transform_analyses_the_first_split_when_there_is_no_train_split():
  """Issue #29: --splits all=1 (or s0=1,...,s9=1) ended in Transform: 'Split does not exist
  ... train'. Without a 'train' split Transform analyses the first; with one, TFX's default."""
  from components.image_example_gen.config import IngestConfig
  by_id = {c.id: c for c in _create(ingest_config=IngestConfig(
      MAPPING, splits=[(f's{i}', 1) for i in range(10)])).components}
  splits_config = json.loads(by_id[configs.TRANSFORM].exec_properties['splits_config'])
  assert splits_config == {'analyze': ['s0'], 'transform': [f's{i}' for i in range(10)]}
  default = {c.id: c for c in _create().components}[configs.TRANSFORM]
  assert default.exec_properties.get('splits_config') is None
