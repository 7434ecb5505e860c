"""The hand-off to Kubeflow and Vertex AI, without a cluster: the weekly spec (a span pattern's
folder, the previous span's and the window's Examples as pipeline parameters) parsed strictly as
kfp's PipelineSpec, read by the real clients -- google-cloud-aiplatform's PipelineJob (built
offline: anonymous credentials, a fake project) and kfp's compiler -- with its declared
parameter types; and `make image`'s tag, the image the spec names. (Running the spec:
test_kfp_weekly.py.)"""
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.support.testutil import REPO

MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
PARAMETERS = {  # name -> declared type, of the weekly spec
    'span_folder': 'STRING', 'class_mapping': 'STRING', 'seed': 'NUMBER_INTEGER',
    'splits': 'STRING', 'split_manifest': 'STRING', 'previous_examples': 'STRING',
    'window_examples_1': 'STRING', 'window_examples_2': 'STRING'}
RUN = {'span_folder': 'gs://bucket/site-b', 'seed': 7,
       'previous_examples': 'gs://bucket/root/run-2/ImageExampleGen/examples'}


def _default_image():
  """What `cxr-tfx compile` uses without --image."""
  from pipeline import cli
  return cli.build_parser().parse_args(
      ['compile', '--output', 'x.yaml', '--pipeline-root', 'gs://b/r']).image


@pytest.fixture(scope='module')
def compiled(tmp_path_factory):
  """{'.yaml': path, '.json': path}: the weekly spec, runtime parameters, the CLI's image."""
  from components.class_balance.config import BalanceConfig
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  out = tmp_path_factory.mktemp('kfp_client')
  options = PipelineOptions('gs://bucket/root', runtime_parameters=True,
                            schema_path=IMAGE_SCHEMA_FILE,
                            previous_examples='gs://bucket/root/run-1/ImageExampleGen/examples',
                            window_examples=['gs://bucket/w1', 'gs://bucket/w2'])
  return {ext: compile_pipeline(
      output=str(out / f'weekly{ext}'), image=_default_image(), options=options,
      source=DataSource(csv_path='gs://bucket/site-a/index-{SPAN}.csv'),
      ingest_config=IngestConfig(MAPPING), balance_config=BalanceConfig(fail_on_drift=True),
      embeddable=True) for ext in ('.yaml', '.json')}


def _parse_strict(spec_dict):
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  return json_format.ParseDict(spec_dict, pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=False)


def test_the_yaml_is_a_strict_pipeline_spec_with_typed_parameters_and_importers(compiled):
  with open(compiled['.yaml']) as f:
    spec = _parse_strict(yaml.safe_load(f))
  assert spec.schema_version == '2.1.0'
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  kinds = pipeline_spec_pb2.ParameterType.ParameterTypeEnum
  params = spec.root.input_definitions.parameters
  assert {name: kinds.Name(p.parameter_type) for name, p in params.items()} == PARAMETERS
  assert params['span_folder'].default_value.string_value == 'gs://bucket/site-a'
  assert params['seed'].default_value.number_value == 0
  tasks = spec.root.dag.tasks
  executors = json_format.MessageToDict(spec.deployment_spec)['executors']
  for task, parameter in (('PreviousExamples', 'previous_examples'),
                          ('WindowExamples1', 'window_examples_1'),
                          ('WindowExamples2', 'window_examples_2')):
    executor = executors[spec.components[tasks[task].component_ref.name].executor_label]
    assert executor['importer']['artifactUri']['runtimeParameter'] == 'artifact_uri'
    assert (tasks[task].inputs.parameters['artifact_uri'].component_input_parameter
            == parameter)
  balance = tasks['ClassBalance'].inputs
  assert balance.artifacts['previous_examples'].task_output_artifact.producer_task == (
      'PreviousExamples')
  assert balance.parameters['fail_on_drift'].runtime_value.constant.number_value == 1
  assert tasks['Transform'].inputs.artifacts['examples'].task_output_artifact.producer_task == (
      'SpanWindow')
  assert tasks['ImageExampleGen'].inputs.parameters['input_base'].component_input_parameter == (
      'span_folder')


def test_vertex_pipeline_job_reads_the_parameters_as_declared(compiled):
  """google-cloud-aiplatform builds the PipelineJob offline; it passes values on as given
  (schema 2.1), so they go through check_parameter_values first."""
  from google.auth.credentials import AnonymousCredentials
  from google.cloud import aiplatform

  from pipeline.kubeflow_runner import check_parameter_values
  for template in (compiled['.json'], compiled['.yaml']):
    job = aiplatform.PipelineJob(
        display_name='cxr-tfx', template_path=template,
        parameter_values=check_parameter_values(template, RUN), project='fake-project',
        location='us-central1', credentials=AnonymousCredentials(),
        pipeline_root=None if template.endswith('.json') else 'gs://bucket/root')
    resource = job.to_dict()  # the PipelineJob resource it would submit
    declared = resource['pipelineSpec']['root']['inputDefinitions']['parameters']
    assert {name: p['parameterType'] for name, p in declared.items()} == PARAMETERS
    runtime = resource['runtimeConfig']
    # the .json carries the pipeline root (runtimeConfig); the .yaml takes pipeline_root=...
    assert runtime['gcsOutputDirectory'] == 'gs://bucket/root'
    values = runtime['parameterValues']
    assert values['seed'] == 7 and values['span_folder'] == RUN['span_folder']
    assert values['previous_examples'] == RUN['previous_examples']
    if template.endswith('.yaml'):  # Vertex AI takes the others' defaults from the spec
      assert set(values) == set(RUN)
      continue
    assert set(values) == set(PARAMETERS)  # the given values over the compiled defaults
    assert values['window_examples_2'] == 'gs://bucket/w2'
    assert json.loads(values['class_mapping']) == MAPPING


@pytest.mark.parametrize('values, words', [
    ({'seed': 'abc'}, "parameter 'seed': 'abc' is not an integer"),
    ({'seed': 1.5}, "parameter 'seed': 1.5 is not an integer"),
    ({'seed': True}, "parameter 'seed': True is not an integer"),
    ({'csv_uri': 'gs://b/i.csv'}, "parameter 'csv_uri' is not a parameter of this pipeline"),
    ({'previous_examples': ' '}, "parameter 'previous_examples' is empty"),
    ({'splits': 'train'}, "parameters 'splits': bad split 'train'"),
])
def test_wrong_parameter_values_are_refused_before_submission(compiled, values, words):
  from components.errors import ConfigError
  from pipeline.kubeflow_runner import check_parameter_values
  with pytest.raises(ConfigError, match=words.replace('(', r'\(').replace('.', r'\.')):
    check_parameter_values(compiled['.json'], values)


def test_a_parent_pipeline_passing_a_non_integer_seed_does_not_compile(compiled, tmp_path):
  """kfp reads the declared types when the YAML is loaded as a component: a parent pipeline
  passing seed='abc' fails when it is compiled, not on the cluster."""
  code = f'''
from kfp import compiler, components, dsl
cxr = components.load_component_from_file({compiled['.yaml']!r})
@dsl.pipeline(name='users-pipeline')
def parent(seed: {{seed_type}}):
  cxr(seed=seed)
compiler.Compiler().compile(parent, {str(tmp_path / 'parent.yaml')!r})
'''
  ok = subprocess.run([sys.executable, '-c', code.format(seed_type='int')],
                      capture_output=True, text=True)
  assert ok.returncode == 0, ok.stderr[-2000:]
  bad = subprocess.run([sys.executable, '-c', code.format(seed_type='str')],
                       capture_output=True, text=True)
  assert bad.returncode != 0
  assert ("Incompatible argument passed to the input 'seed'" in bad.stderr
          and "input type 'NUMBER_INTEGER'" in bad.stderr), bad.stderr[-2000:]


def _make_image(tmp_path, engine):
  """`make image` with only ``engine`` (or no container engine) on PATH, a stand-in that
  records its arguments: no engine is installed here. -> (process, recorded args)."""
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  record = tmp_path / 'args'
  if engine:
    (bin_dir / engine).write_text(f'#!/bin/sh\necho "$@" > {record}\n')
    (bin_dir / engine).chmod(0o755)
  done = subprocess.run(['make', '--no-print-directory', 'image'], cwd=REPO, text=True,
                        capture_output=True, env=dict(os.environ, PATH=f'{bin_dir}:/usr/bin:/bin'))
  return done, record.read_text().split() if record.exists() else None


@pytest.mark.parametrize('engine', ['docker', 'podman'])
def test_make_image_builds_the_tag_compile_uses(compiled, tmp_path, engine):
  from pipeline import configs
  done, args = _make_image(tmp_path, engine)
  assert done.returncode == 0, done.stderr
  tag = args[args.index('-t') + 1]
  assert args[0] == 'build' and args[-1] == '.'  # the repository's Dockerfile
  assert tag == configs.DEFAULT_IMAGE == _default_image() == f'cxr-tfx:{configs.package_version()}'
  with open(compiled['.json']) as f:
    executors = json.load(f)['pipelineSpec']['deploymentSpec']['executors']
  images = {e['container']['image'] for e in executors.values() if 'container' in e}
  assert images == {tag}


def test_make_image_without_an_engine_says_so(tmp_path):
  done, args = _make_image(tmp_path, None)
  assert done.returncode != 0 and args is None
  assert 'make image needs docker or podman on PATH, and neither is installed' in done.stderr
