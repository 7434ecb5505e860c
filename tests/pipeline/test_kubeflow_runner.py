"""KFP v2 compilation: strict proto parse, pinned DAG structure, caching and resources,
embedding in a user's pipeline. (Executing the compiled spec: test_kfp_harness.py.)"""
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.testutil import REPO

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'kfp_dag_structure.json')
IMAGE = 'registry.example.com/cxr-tfx:test'
MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
BEAM_ARGS_FOR = {'Transform': ['--direct_num_workers=2', '--runner=DirectRunner'],
                 'ImageExampleGen': ['--experiments=shuffle_mode=service']}
RESOURCES = {'Transform': (4, '16G'), 'ExampleValidator': (0.5, '512Mi')}


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  out = tmp_path_factory.mktemp('kfp')
  kwargs = dict(image=IMAGE, source=DataSource(csv_path='gs://bucket/data/all_image_mask_pairs.csv'),
                ingest_config=IngestConfig(MAPPING))
  options = dict(pipeline_root='gs://bucket/root', beam_pipeline_args=['--runner=DataflowRunner'],
                 runtime_parameters=True, schema_path=IMAGE_SCHEMA_FILE)
  return (compile_pipeline(output=str(out / 'cxr-tfx.yaml'), options=PipelineOptions(**options),
                           **kwargs),
          compile_pipeline(output=str(out / 'cxr-tfx.json'), options=PipelineOptions(**options),
                           **kwargs),
          compile_pipeline(output=str(out / 'cxr-dev.yaml'),
                           options=PipelineOptions(pipeline_name='cxr-dev',
                                                   component_beam_args=BEAM_ARGS_FOR, **options),
                           component_resources=RESOURCES, embeddable=True, **kwargs))


def _parse_strict(spec_dict):
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  return json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=False)


def dag_structure(spec):
  """Tasks, their components, edges and executors: what must not change by accident."""
  from google.protobuf import json_format
  executors = json_format.MessageToDict(spec.deployment_spec)['executors']
  tasks = {}
  for name, task in spec.root.dag.tasks.items():
    component = spec.components[task.component_ref.name]
    executor = executors[component.executor_label]
    if 'container' not in executor:  # a resolver: KFP queries ML Metadata, no container
      tasks[name] = dict(component=task.component_ref.name, executor=sorted(executor)[0])
      continue
    container = executor['container']
    tasks[name] = dict(
        component=task.component_ref.name,
        depends_on=sorted(task.dependent_tasks),
        inputs=sorted(task.inputs.artifacts),
        parameters=sorted(task.inputs.parameters),
        image=container['image'],
        executor=container['args'][1] if container['args'][0] == '--executor_class_path' else '',
        pre_cache_check=list(container.get('lifecycle', {}).get('preCacheCheck', {}).get(
            'command', [])),
        cache=task.caching_options.enable_cache,
        resources=container.get('resources', {}))
  return dict(pipeline=spec.pipeline_info.name, tasks=tasks)


def _load(path):
  with open(path) as f:
    return _parse_strict(yaml.safe_load(f))


def test_yaml_is_a_valid_kfp_pipeline_spec_with_the_pinned_structure(compiled):
  spec = _load(compiled[0])
  assert spec.schema_version == '2.1.0'  # the only version open-source KFP's API server takes
  got = json.loads(json.dumps(dag_structure(spec)))
  if os.environ.get('CXR_UPDATE_GOLDEN'):
    with open(GOLDEN, 'w') as f:
      json.dump(got, f, indent=1, sort_keys=True)
  with open(GOLDEN) as f:
    assert got == json.load(f)
  example_gen = spec.root.dag.tasks['ImageExampleGen']
  params = {k: v.runtime_value.constant.string_value
            for k, v in example_gen.inputs.parameters.items()}
  assert params['input_base'] == 'gs://bucket/data'
  # the CSV, class mapping, seed, splits and split manifest are pipeline parameters,
  # defaulting to the values given at compile time
  for name in ('csv_uri', 'class_mapping', 'seed', 'splits', 'split_manifest'):
    assert example_gen.inputs.parameters[name].component_input_parameter == name
  defaults = {k: v.default_value for k, v in spec.root.input_definitions.parameters.items()}
  assert json.loads(defaults['class_mapping'].string_value) == MAPPING
  assert defaults['csv_uri'].string_value == 'gs://bucket/data/all_image_mask_pairs.csv'
  assert (defaults['seed'].number_value, defaults['splits'].string_value) == (
      0, 'train=8,eval=1,test=1')
  # no split manifest given: a str parameter whose default is '' (the run keeps none), optional
  assert defaults['split_manifest'].WhichOneof('kind') == 'string_value'
  assert defaults['split_manifest'].string_value == ''
  params = spec.root.input_definitions.parameters
  assert params['split_manifest'].is_optional
  assert params['split_manifest'].parameter_type == params['csv_uri'].parameter_type  # STRING
  assert all(t['image'] == IMAGE for t in got['tasks'].values())
  schema_gen = spec.root.dag.tasks['CuratedSchemaGen']
  schema_file = schema_gen.inputs.parameters['schema_file'].runtime_value.constant
  assert schema_file.string_value == '/opt/cxr-tfx/schemas/schema.pbtxt'  # in the image
  transform = spec.root.dag.tasks['Transform'].inputs.parameters
  assert (transform['preprocessing_fn'].runtime_value.constant.string_value
          == 'components.transform.preprocessing.preprocessing_fn')  # from the image, no wheel
  assert 'module_file' not in transform and 'module_path' not in transform


def test_json_is_a_vertex_pipeline_job_with_the_same_spec(compiled):
  with open(compiled[1]) as f:
    job = json.load(f)
  assert job['runtimeConfig']['gcsOutputDirectory'] == 'gs://bucket/root'
  assert job['runtimeConfig']['parameterValues']['split_manifest'] == ''
  spec = _parse_strict(job['pipelineSpec'])
  assert spec.schema_version == '2.1.0'
  got = dag_structure(spec)
  with open(GOLDEN) as f:
    golden = json.load(f)
  for name, task in golden['tasks'].items():  # Vertex picks machines from limits: set too
    resources = task.pop('resources')
    resources.update(cpuLimit=resources['cpuRequest'], memoryLimit=resources['memoryRequest'])
    assert got['tasks'][name].pop('resources') == resources
  assert got['tasks'] == golden['tasks']


def test_only_image_example_gen_is_not_cached(compiled):
  """KFP's cache key (input artifacts, parameters, image, command) does not see the images
  the CSV names, so ImageExampleGen must always run; the others take its new artifact."""
  spec = _load(compiled[0])
  caching = {name: task.caching_options.enable_cache for name, task in spec.root.dag.tasks.items()}
  assert caching == {name: name != 'ImageExampleGen' for name in caching}
  with open(compiled[0]) as f:
    tasks = yaml.safe_load(f)['root']['dag']['tasks']
  assert tasks['ImageExampleGen']['cachingOptions'] == {'enableCache': False}  # explicit


def test_name_beam_args_and_resources_per_component(compiled):
  from pipeline.kubeflow_runner import COMPONENT_RESOURCES
  spec = _load(compiled[2])
  assert spec.pipeline_info.name == 'cxr-dev'
  got = dag_structure(spec)['tasks']
  from google.protobuf import json_format
  executors = json_format.MessageToDict(spec.deployment_spec)['executors']
  args = {name: executors[spec.components[name].executor_label]['container']['args']
          for name in got}
  for name, task_args in args.items():
    # the pipeline-wide args first, then the component's own (the last occurrence wins)
    assert '--runner=DataflowRunner' in task_args or name in ('CuratedSchemaGen',
                                                              'ExampleValidator')
    for arg in BEAM_ARGS_FOR.get(name, []):
      assert arg in task_args
    if name in BEAM_ARGS_FOR:
      assert task_args.index(BEAM_ARGS_FOR[name][-1]) > task_args.index('--runner=DataflowRunner')
  assert '--direct_num_workers=2' not in args['StatisticsGen']
  expected = dict(COMPONENT_RESOURCES, Transform=(4, 16), ExampleValidator=(0.5, 0.536871))
  del expected['SpanWindow']  # a task only with window_examples
  assert {name: (t['resources']['cpuRequest'], t['resources']['memoryRequest'])
          for name, t in got.items()} == expected
  assert set(expected) == set(got)


def test_component_resources_are_checked():
  from pipeline.kubeflow_runner import memory_gb
  from pipeline.kubeflow_runner import resolve_resources
  assert memory_gb(4) == 4 and memory_gb('4G') == 4 and memory_gb('512M') == 0.512
  assert memory_gb('1Gi') == 1.073742
  assert resolve_resources({'StatisticsGen': (3, '6G')})['StatisticsGen'] == (3, 6)
  assert resolve_resources({'Trainer': (4, '8G')})['Trainer'] == (4, 8)  # with --train
  for bad, match in (({'Tuner': (1, 1)}, 'unknown component'),
                     ({'Transform': 4}, r'\(cpu, memory\)'),
                     ({'Transform': (0, 1)}, 'cpu must be'),
                     ({'Transform': (1, '4 GB')}, 'memory'),
                     ({'Transform': (1, 0)}, 'positive')):
    with pytest.raises(ValueError, match=match):
      resolve_resources(bad)


def test_a_users_kfp_pipeline_can_embed_ours_as_a_step(compiled, tmp_path):
  """kfp 2.5: load our IR as a component inside the user's @dsl.pipeline and compile that."""
  code = f'''
from kfp import compiler, components, dsl
cxr = components.load_component_from_file({compiled[0]!r})
@dsl.pipeline(name='users-training-pipeline')
def parent():
  cxr()
compiler.Compiler().compile(parent, {str(tmp_path / 'parent.yaml')!r})
'''
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  with open(tmp_path / 'parent.yaml') as f:
    parent = _parse_strict(yaml.safe_load(f))
  (step,) = parent.root.dag.tasks.values()
  inner = parent.components[step.component_ref.name].dag.tasks
  assert 'ImageExampleGen' in inner


def test_a_users_pipeline_can_consume_our_examples_from_the_embeddable_form(compiled, tmp_path):
  """kfp 2.5: the embeddable YAML's outputs (system.* types) feed a lightweight component."""
  code = f'''
from kfp import compiler, components, dsl
from kfp.dsl import Dataset, Input
cxr = components.load_component_from_file({compiled[2]!r})
@dsl.component(base_image='python:3.10')
def count_shards(examples: Input[Dataset]) -> int:
  import glob, os
  return len(glob.glob(os.path.join(examples.path, 'Split-*', '*.gz')))
@dsl.pipeline(name='users-training-pipeline')
def parent():
  ingest = cxr()
  count_shards(examples=ingest.outputs['examples'])
compiler.Compiler().compile(parent, {str(tmp_path / 'parent.yaml')!r})
'''
  (tmp_path / 'users_pipeline.py').write_text(code)  # kfp reads the component's source
  done = subprocess.run([sys.executable, str(tmp_path / 'users_pipeline.py')],
                        capture_output=True, text=True)
  assert done.returncode == 0, done.stderr[-2000:]
  parent = _load(tmp_path / 'parent.yaml')
  assert parent.schema_version == '2.1.0'
  count = parent.root.dag.tasks['count-shards']
  source = count.inputs.artifacts['examples'].task_output_artifact
  assert source.output_artifact_key == 'examples'
  inner = parent.components[parent.root.dag.tasks[source.producer_task].component_ref.name]
  selector = inner.dag.outputs.artifacts['examples'].artifact_selectors[0]
  assert (selector.producer_subtask, selector.output_artifact_key) == ('ImageExampleGen',
                                                                       'examples')
  assert inner.output_definitions.artifacts['examples'].artifact_type.schema_title == (
      'system.Dataset')


@pytest.fixture(scope='module')
def compiled_train(tmp_path_factory):
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  return compile_pipeline(
      output=str(tmp_path_factory.mktemp('kfp_train') / 'cxr-tfx-train.yaml'), image=IMAGE,
      options=PipelineOptions('gs://bucket/root', runtime_parameters=True,
                              schema_path=IMAGE_SCHEMA_FILE),
      source=DataSource(csv_path='gs://bucket/data/all_image_mask_pairs.csv'),
      ingest_config=IngestConfig(MAPPING),
      train_config=TrainConfig(train_steps=50, min_accuracy=0.4),
      component_resources={'Trainer': (4, '8G')}, embeddable=True)


def test_train_compiles_trainer_evaluator_and_pusher_from_the_image(compiled_train, compiled):
  """The Trainer's code is referenced by module path (from the container image): no wheel, no
  module_file; the default pipeline's tasks are unchanged."""
  from pipeline.kubeflow_runner import TRAIN_COMPONENT_RESOURCES
  spec = _load(compiled_train)
  got = dag_structure(spec)['tasks']
  default = dag_structure(_load(compiled[0]))['tasks']
  baseline = ('latest_blessed_model_resolver-model-blessing-resolver',
              'latest_blessed_model_resolver-model-resolver')
  assert set(got) == set(default) | {'Trainer', 'Evaluator', 'Pusher', *baseline}
  assert [got[b]['executor'] for b in baseline] == ['resolver', 'resolver']
  for name, task in default.items():
    assert got[name] == task, name
  assert got['Trainer']['executor'] == 'components.trainer.executor.Executor'
  assert got['Trainer']['inputs'] == ['class_balance', 'examples', 'schema', 'transform_graph']
  assert got['Evaluator']['depends_on'] == ['CuratedSchemaGen', 'ImageExampleGen', 'Trainer',
                                            baseline[1]]
  assert got['Pusher']['depends_on'] == ['Evaluator', 'Trainer']
  assert got['Trainer']['resources'] == {'cpuRequest': 4.0, 'memoryRequest': 8.0}
  assert (got['Evaluator']['resources']['cpuRequest'],
          got['Evaluator']['resources']['memoryRequest']) == TRAIN_COMPONENT_RESOURCES['Evaluator']
  trainer = spec.root.dag.tasks['Trainer'].inputs.parameters
  constant = lambda p: p.runtime_value.constant.string_value
  assert constant(trainer['run_fn']) == 'components.trainer.task.run_fn'
  assert 'module_file' not in trainer and 'module_path' not in trainer
  assert json.loads(constant(trainer['train_args'])) == {'num_steps': 50, 'splits': ['train']}
  evaluator = spec.root.dag.tasks['Evaluator'].inputs.parameters
  assert '"lower_bound": 0.4' in constant(evaluator['eval_config'])
  pusher = json.loads(constant(spec.root.dag.tasks['Pusher'].inputs.parameters[
      'push_destination']))
  assert pusher['filesystem']['base_directory'] == 'gs://bucket/root/serving_model'
  outputs = spec.root.output_definitions.artifacts
  assert outputs['model'].artifact_type.schema_title == 'system.Model'
  assert 'pushed_model' in outputs and 'examples' in outputs


def test_dockerfile_lints_clean():
  hadolint = os.path.join(os.path.dirname(sys.executable), 'hadolint')
  done = subprocess.run([hadolint, os.path.join(REPO, 'Dockerfile')], capture_output=True,
                        text=True)
  assert done.returncode == 0, done.stdout + done.stderr


def test_an_image_folder_compiles_in_as_constants(tmp_path):
  """compile --image-dir: ImageExampleGen lists the folder when it runs; the folder, the class
  mapping and the split manifest are constants (the pipeline parameters stand for a CSV)."""
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineConfigError
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  config = IngestConfig(MAPPING, split_manifest='gs://bucket/root/split_manifest.json')
  folder = DataSource(image_dir='gs://bucket/xrays')
  kwargs = dict(image=IMAGE, ingest_config=config)
  with pytest.raises(PipelineConfigError, match='--no-runtime-parameters'):
    compile_pipeline(output=str(tmp_path / 'p.yaml'), source=folder,
                     options=PipelineOptions('gs://bucket/root', runtime_parameters=True),
                     **kwargs)
  with pytest.raises(PipelineConfigError, match='one of them'):
    compile_pipeline(output=str(tmp_path / 'p.yaml'), source=DataSource(),
                     options=PipelineOptions('gs://bucket/root'), **kwargs)
  assert not os.path.exists(tmp_path / 'p.yaml')
  spec = _load(compile_pipeline(output=str(tmp_path / 'p.yaml'), source=folder,
                                options=PipelineOptions('gs://bucket/root',
                                                        schema_path=IMAGE_SCHEMA_FILE),
                                **kwargs))
  assert not spec.root.input_definitions.parameters  # no pipeline parameters
  example_gen = spec.root.dag.tasks['ImageExampleGen']
  constants = {k: v.runtime_value.constant.string_value
               for k, v in example_gen.inputs.parameters.items()}
  assert constants['image_dir'] == constants['input_base'] == 'gs://bucket/xrays'
  assert constants['csv_uri'] == ''
  assert json.loads(constants['class_mapping']) == MAPPING
  assert constants['split_manifest'] == 'gs://bucket/root/split_manifest.json'
  assert example_gen.caching_options.enable_cache is False  # the folder's images may change
  assert set(spec.root.dag.tasks) == {'ImageExampleGen', 'CuratedSchemaGen', 'StatisticsGen',
                                      'ExampleValidator', 'ClassBalance', 'Transform'}
