"""KFP v2 compilation: strict proto parse, pinned DAG structure, embedding in a user's pipeline."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.testutil import REPO

GOLDEN = os.path.join(os.path.dirname(__file__), 'golden', 'kfp_dag_structure.json')
IMAGE = 'registry.example.com/cxr-tfx:test'
MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  from components.image_example_gen.config import IngestConfig  # pylint: disable=g-import-not-at-top
  from pipeline.kubeflow_runner import compile_pipeline  # pylint: disable=g-import-not-at-top
  out = tmp_path_factory.mktemp('kfp')
  kwargs = dict(image=IMAGE, pipeline_root='gs://bucket/root',
                csv_path='gs://bucket/data/all_image_mask_pairs.csv',
                ingest_config=IngestConfig(MAPPING), beam_pipeline_args=['--runner=DataflowRunner'])
  return (compile_pipeline(output=str(out / 'cxr-tfx.yaml'), **kwargs),
          compile_pipeline(output=str(out / 'cxr-tfx.json'), **kwargs))


def _parse_strict(spec_dict):
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top
  return json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=False)


def dag_structure(spec):
  """Tasks, their components, edges and executors: what must not change by accident."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  executors = json_format.MessageToDict(spec.deployment_spec)['executors']
  tasks = {}
  for name, task in spec.root.dag.tasks.items():
    component = spec.components[task.component_ref.name]
    container = executors[component.executor_label]['container']
    tasks[name] = dict(
        component=task.component_ref.name,
        depends_on=sorted(task.dependent_tasks),
        inputs=sorted(task.inputs.artifacts),
        parameters=sorted(task.inputs.parameters),
        image=container['image'],
        executor=container['args'][1] if container['args'][0] == '--executor_class_path' else '',
        pre_cache_check=list(container.get('lifecycle', {}).get('preCacheCheck', {}).get(
            'command', [])))
  return dict(pipeline=spec.pipeline_info.name, tasks=tasks)


def test_yaml_is_a_valid_kfp_pipeline_spec_with_the_pinned_structure(compiled):
  with open(compiled[0]) as f:
    spec = _parse_strict(yaml.safe_load(f))
  got = json.loads(json.dumps(dag_structure(spec)))
  if os.environ.get('CXR_UPDATE_GOLDEN'):
    with open(GOLDEN, 'w') as f:
      json.dump(got, f, indent=1, sort_keys=True)
  with open(GOLDEN) as f:
    assert got == json.load(f)
  example_gen = spec.root.dag.tasks['ImageExampleGen']
  params = {k: v.runtime_value.constant_value.string_value
            for k, v in example_gen.inputs.parameters.items()}
  assert json.loads(params['class_mapping']) == MAPPING
  assert params['input_base'] == 'gs://bucket/data'
  assert all(t['image'] == IMAGE for t in got['tasks'].values())
  schema_gen = spec.root.dag.tasks['ImportSchemaGen']
  schema_file = schema_gen.inputs.parameters['schema_file'].runtime_value.constant_value
  assert schema_file.string_value == '/opt/cxr-tfx/schemas/schema.pbtxt'  # in the image
  transform = spec.root.dag.tasks['Transform'].inputs.parameters
  assert (transform['preprocessing_fn'].runtime_value.constant_value.string_value
          == 'components.transform.preprocessing.preprocessing_fn')  # from the image, no wheel
  assert 'module_file' not in transform and 'module_path' not in transform


def test_json_is_a_vertex_pipeline_job_with_the_same_spec(compiled):
  with open(compiled[1]) as f:
    job = json.load(f)
  assert job['runtimeConfig']['gcsOutputDirectory'] == 'gs://bucket/root'
  assert 'ImageExampleGen' in _parse_strict(job['pipelineSpec']).root.dag.tasks


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


def test_dockerfile_lints_clean():
  hadolint = os.path.join(os.path.dirname(sys.executable), 'hadolint')
  done = subprocess.run([hadolint, os.path.join(REPO, 'Dockerfile')], capture_output=True,
                        text=True)
  assert done.returncode == 0, done.stdout + done.stderr
