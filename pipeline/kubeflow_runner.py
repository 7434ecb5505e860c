"""Compiles ``create_pipeline`` for Kubeflow Pipelines v2 with TFX's KubeflowV2DagRunner.

``.yaml`` output is the pipeline-spec IR for open-source KFP (and loads as a component of a
user's own KFP pipeline with ``kfp.components.load_component_from_file``); ``.json`` output is
a Vertex AI PipelineJob. Both are pipeline-spec schema 2.1.0: open-source KFP's API server
accepts no other, and its driver resolves only the 2.1 parameter form (``parameterValues``,
``runtimeValue.constant``). Components are referenced by module path, so their code comes from
the container image (see the Dockerfile): no ``module_file`` wheels are built at compile time.

After TFX has built the spec, ``compile_pipeline`` edits two things TFX does not expose:

* caching: ImageExampleGen's task gets ``cachingOptions.enableCache: false``. KFP's cache key
  is a task's input artifacts, parameters, image and command; ImageExampleGen has no input
  artifacts and constant parameters (the CSV's folder), so a changed image under an unchanged
  CSV would be a cache hit and the pipeline would go on with stale Examples. TFX's own
  fingerprinting driver is wired as ``lifecycle.preCacheCheck``, which open-source KFP does
  not run. Every other task keeps caching: its inputs include ImageExampleGen's new artifact.
* resources: per-task CPU and memory requests (``COMPONENT_RESOURCES``). TFX copies a
  component's ``platform_config`` into the container spec, but not for a FileBasedExampleGen
  (ImageExampleGen), so the requests are set on the spec for every task alike.

``embeddable=True`` also declares the main artifacts as the pipeline's outputs (see
EMBEDDED_OUTPUTS), so a user's kfp pipeline can consume them from the loaded component.
The pipeline parameters are declared with their types (``_set_parameter_defaults``), and
``check_parameter_values`` checks a run's values against them before submission.
tests/support/kfp_harness.py runs a compiled spec task by task the way KFP's launcher does.
"""
import dataclasses
import json
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from components import options as options_lib
from components.class_balance.config import BalanceConfig
from components.image_example_gen.config import IngestConfig
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig
from pipeline import configs

_Error = configs.PipelineConfigError

# Tasks KFP must always run (never served from its cache); see the module docstring.
UNCACHED_COMPONENTS = ('ImageExampleGen',)

# (CPU cores, memory in GB) requested per task. Sized from the bench reference run at 21,165
# images (bench/results/results.md): the Beam components peak at 1.05-1.16 GB RSS on the
# DirectRunner (ImageExampleGen 1,046 MB, StatisticsGen 1,159 MB), so 4 GB leaves room for
# Beam's buffers and larger data; 2 cores let the DirectRunner overlap reading and encoding.
# CuratedSchemaGen and ExampleValidator only read small protos, but every task's process
# imports TensorFlow/TFX/Beam first (871 MB RSS before any work), hence 2 GB rather than 1.
# Override per component with compile_pipeline(component_resources=...).
COMPONENT_RESOURCES: Dict[str, Tuple[float, float]] = {
    'ImageExampleGen': (2, 4),
    'StatisticsGen': (2, 4),
    'ClassBalance': (2, 4),
    'Transform': (2, 4),
    'CuratedSchemaGen': (1, 2),
    'ExampleValidator': (1, 2),
    configs.SPAN_WINDOW: (1, 2),  # with window_examples: copies shard files (I/O only)
}
# The tasks compile_pipeline(..., train=True) adds. The Trainer's template model is tiny (two
# convolutions; tf.data decodes the PNGs on the task's cores); the Evaluator runs the model over
# the evaluation split in Beam; the Pusher copies a directory. Size the Trainer for your model.
TRAIN_COMPONENT_RESOURCES: Dict[str, Tuple[float, float]] = {
    'Trainer': (2, 4),
    'Evaluator': (2, 4),
    'Pusher': (1, 2),
}

# The embeddable form's pipeline outputs: name -> (task, TFX output key, KFP artifact type).
# kfp 2.5 loads a component's outputs only with ``system.*`` schema titles (TFX's own types
# are ``instanceSchema`` YAML: ``KeyError: 'schemaTitle'`` in a parent pipeline), so the DAG
# outputs are re-typed; the artifacts themselves (URI, metadata such as split_names) are TFX's.
EMBEDDED_OUTPUTS: Dict[str, Tuple[str, str, str]] = {
    'examples': ('ImageExampleGen', 'examples', 'system.Dataset'),
    'schema': ('CuratedSchemaGen', 'schema', 'system.Artifact'),
    'statistics': ('StatisticsGen', 'statistics', 'system.Artifact'),
    'schema_anomalies': ('ExampleValidator', 'anomalies', 'system.Artifact'),
    'balance_anomalies': ('ClassBalance', 'anomalies', 'system.Artifact'),
    'transform_graph': ('Transform', 'transform_graph', 'system.Artifact'),
}
# ... and with train=True.
TRAIN_EMBEDDED_OUTPUTS: Dict[str, Tuple[str, str, str]] = {
    'model': ('Trainer', 'model', 'system.Model'),
    'evaluation': ('Evaluator', 'evaluation', 'system.Artifact'),
    'pushed_model': ('Pusher', 'pushed_model', 'system.Artifact'),
}

Memory = Union[int, float, str]  # GB as a number, or '4G', '512M', '4Gi', '512Mi'
_MEMORY = re.compile(r'^\s*([0-9]*\.?[0-9]+)\s*(G|M|Gi|Mi)?\s*$')


def memory_gb(value: Memory) -> float:
  """GB for a number (already GB) or a string such as '4G', '512M', '4Gi', '512Mi'."""
  if isinstance(value, (int, float)) and not isinstance(value, bool):
    number, unit = float(value), 'G'
  else:
    match = _MEMORY.match(str(value))
    if not match:
      raise _Error(f'memory {value!r}: give GB as a number or a string like "4G", '
                       '"512M", "4Gi", "512Mi".')
    number, unit = float(match.group(1)), match.group(2) or 'G'
  gb = number * {'G': 1, 'M': 1e-3, 'Gi': 1.073741824, 'Mi': 1.048576e-3}[unit]
  if gb <= 0:
    raise _Error(f'memory {value!r} must be positive.')
  return round(gb, 6)


def resolve_resources(
    component_resources: Optional[Mapping[str, Tuple[float, Memory]]] = None
) -> Dict[str, Tuple[float, float]]:
  """COMPONENT_RESOURCES and TRAIN_COMPONENT_RESOURCES with the given overrides; checks ids and
  values (requests for tasks a pipeline does not have are never used)."""
  result = dict(COMPONENT_RESOURCES, **TRAIN_COMPONENT_RESOURCES)
  for component_id, value in (component_resources or {}).items():
    if component_id not in result:
      raise _Error(f'component_resources: unknown component {component_id!r}; one of '
                       f'{", ".join(result)}.')
    try:
      cpu, memory = value
    except (TypeError, ValueError):
      raise _Error(f'component_resources[{component_id!r}] must be (cpu, memory), '
                       f'got {value!r}.') from None
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or cpu <= 0:
      raise _Error(f'component_resources[{component_id!r}]: cpu must be a positive '
                       f'number, got {cpu!r}.')
    result[component_id] = (float(cpu), memory_gb(memory))
  return result


def _edit_spec(spec: Dict[str, Any], resources: Mapping[str, Tuple[float, float]],
               vertex: bool) -> None:
  """Caching off for UNCACHED_COMPONENTS, resource requests on every task (in place)."""
  executors = spec['deploymentSpec']['executors']
  for task_name, task in spec['root']['dag']['tasks'].items():
    if task_name in UNCACHED_COMPONENTS:
      task['cachingOptions'] = {'enableCache': False}
    component = spec['components'][task['componentRef']['name']]
    container = executors[component['executorLabel']].get('container')
    if container is None or task_name not in resources:
      continue
    cpu, memory = resources[task_name]
    container['resources'] = {'cpuRequest': cpu, 'memoryRequest': memory}
    if vertex:  # Vertex AI picks the machine from the limits; open-source KFP keeps them unset
      container['resources'].update(cpuLimit=cpu, memoryLimit=memory)


# Pipeline parameter types (pipeline spec 2.1 ``parameterType``) of the Python types declared.
KFP_PARAMETER_TYPES = {str: 'STRING', int: 'NUMBER_INTEGER', float: 'NUMBER_DOUBLE'}


def _set_parameter_defaults(job: Dict[str, Any], defaults: Mapping[str, Any],
                            types: Mapping[str, type]) -> None:
  """The pipeline parameters' declared types and their defaults, which TFX 1.16 drops when
  writing schema 2.1: in the root's inputDefinitions (KFP: a run may omit them; kfp and
  ``check_parameter_values`` check values against the types) and the PipelineJob's
  runtimeConfig (Vertex), in place."""
  params = job['pipelineSpec']['root'].setdefault('inputDefinitions', {}).setdefault(
      'parameters', {})
  for name, value in defaults.items():
    declared = params.setdefault(name, {})
    declared.update(parameterType=KFP_PARAMETER_TYPES[types[name]], defaultValue=value,
                    isOptional=True)
  job.setdefault('runtimeConfig', {})['parameterValues'] = dict(defaults)


def load_spec(template: str) -> Dict[str, Any]:
  """The PipelineSpec of a compiled ``.yaml`` (KFP) or ``.json`` (Vertex PipelineJob)."""
  with open(template, encoding='utf-8') as f:
    if template.endswith('.json'):
      doc = json.load(f)
    else:
      import yaml  # only here: the CLI imports this module for --help
      doc = yaml.safe_load(f)
  return doc.get('pipelineSpec', doc)


_TYPE_TEXT = {'STRING': 'a string', 'NUMBER_INTEGER': 'an integer',
              'NUMBER_DOUBLE': 'a number', 'BOOLEAN': 'true or false'}
# Parameters that name data a task reads: a run cannot leave them empty.
_URI_PARAMETERS = re.compile(
    rf'^({configs.CSV_RUNTIME_PARAMETER}|{configs.SPAN_FOLDER_PARAMETER}|'
    rf'{configs.PREVIOUS_EXAMPLES_PARAMETER}|{configs.WINDOW_EXAMPLES_PARAMETER}_\d+)$')


def check_parameter_values(template: Union[str, Mapping[str, Any]],
                           values: Mapping[str, Any]) -> Dict[str, Any]:
  """A run's pipeline parameter values, checked against the compiled spec before they are
  submitted; returns them. ``kfp.Client().create_run_from_pipeline_package`` and
  ``aiplatform.PipelineJob`` pass values on unchecked (a seed 'abc' would fail on the cluster,
  after the run started): here an unknown name, a value of another type than the declared
  ``parameterType`` (an int for NUMBER_INTEGER, not a bool or 1.5), an empty URI, or an
  ImageExampleGen option the options refuse (splits 'train', a class mapping that is not
  JSON {"name": label}) raises ConfigError naming the parameter. ``template``: the compiled
  file, or its PipelineSpec as a dict."""
  spec = load_spec(template) if isinstance(template, str) else template
  spec = spec.get('pipelineSpec', spec)
  declared = spec['root'].get('inputDefinitions', {}).get('parameters', {})
  for name, value in values.items():
    if name not in declared:
      raise _Error(f'parameter {name!r} is not a parameter of this pipeline; its parameters: '
                   f'{", ".join(sorted(declared)) or "none"}.')
    kind = declared[name].get('parameterType', '')
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = {'STRING': isinstance(value, str),
          'NUMBER_INTEGER': number and isinstance(value, int),
          'NUMBER_DOUBLE': number, 'BOOLEAN': isinstance(value, bool)}.get(kind, True)
    if not ok:
      raise _Error(f'parameter {name!r}: {value!r} is not {_TYPE_TEXT[kind]} (the compiled '
                   f'spec declares it {kind}).')
    if _URI_PARAMETERS.match(name) and not value.strip():
      raise _Error(f'parameter {name!r} is empty: give the URI the task reads.')
  runtime = options_lib.runtime_parameters(IngestConfig)
  merged = {name: d['defaultValue'] for name, d in declared.items() if 'defaultValue' in d}
  merged.update(values)
  encoded = {field: merged[name] for field, name in runtime.items() if name in merged}
  if options_lib.key(IngestConfig, 'class_mapping') in encoded:  # as the executor reads them
    try:
      options_lib.from_exec_properties(IngestConfig, encoded)
    except ValueError as e:
      names = ', '.join(repr(runtime[f]) for f in encoded if runtime[f] in values)
      raise _Error(f'parameters {names or "(defaults)"}: {e}') from e
  return dict(values)


def _expose_outputs(spec: Dict[str, Any], train: bool = False) -> None:
  """Adds EMBEDDED_OUTPUTS (and with ``train`` TRAIN_EMBEDDED_OUTPUTS) as the root DAG's
  outputs (in place)."""
  outputs = dict(EMBEDDED_OUTPUTS, **(TRAIN_EMBEDDED_OUTPUTS if train else {}))
  root = spec['root']
  root.setdefault('outputDefinitions', {})['artifacts'] = {
      name: {'artifactType': {'schemaTitle': kfp_type, 'schemaVersion': '0.0.1'}}
      for name, (_, _, kfp_type) in outputs.items()}
  root['dag'].setdefault('outputs', {})['artifacts'] = {
      name: {'artifactSelectors': [{'producerSubtask': task, 'outputArtifactKey': key}]}
      for name, (task, key, _) in outputs.items()}


def compile_pipeline(output: str, image: str, options: configs.PipelineOptions,
                     source: configs.DataSource, ingest_config: IngestConfig,
                     balance_config: Optional[BalanceConfig] = None,
                     transform_config: Optional[TransformConfig] = None,
                     train_config: Optional[TrainConfig] = None,
                     component_resources: Optional[Mapping[str, Tuple[float, Memory]]] = None,
                     embeddable: bool = False) -> str:
  """Writes the compiled pipeline to ``output`` and returns its path.

  Args:
    output: ``*.yaml`` for open-source KFP (pipeline spec), ``*.json`` for Vertex AI
      (PipelineJob); both schema 2.1.0.
    image: the container image every task runs (see the Dockerfile).
    options: as create_pipeline's, with paths as the tasks see them (pipeline_root: gs://,
      s3://, minio://...; schema_path in the image, configs.IMAGE_SCHEMA_FILE). With
      ``runtime_parameters`` the CSV URI, class mapping (JSON), seed, splits and split
      manifest become pipeline parameters (configs.RUNTIME_PARAMETERS) whose defaults are the
      values given (a str default may be '': e.g. no split manifest), so one compiled spec
      serves many datasets; without, they are compiled in as constants. For a span pattern
      the parameter is the folder the pattern is under (configs.SPAN_FOLDER_PARAMETER)
      instead of the CSV. ``span_history`` is ignored and ``train_spans`` refused (the KFP
      v2 compiler supports no custom resolver): give the previous span's Examples
      (``previous_examples``: ClassBalance's drift baseline) and the training window's
      (``window_examples``) by URI; they are imported, and with runtime parameters are
      pipeline parameters too (``previous_examples``, ``window_examples_1`` ...).
    source: the CSV as the tasks see it, or an image folder (a URI or an absolute path,
      listed by ImageExampleGen when it runs; needs no runtime parameters and
      ``ingest_config.class_mapping``). A span pattern (its folder a runtime parameter, or not)
      takes ``source.span``, else the newest span when the task runs (ImageExampleGen's
      executor resolves it: KFP runs no component driver).
    train_config: add Trainer, Evaluator and Pusher. The Trainer's code is referenced by module
      path (``components.trainer.task.run_fn``, executor
      ``components.trainer.executor.Executor``), so it comes from the container image: no
      wheel. ``options.serving_model_dir`` (as the tasks see it) defaults to
      ``<pipeline_root>/serving_model``.
    component_resources: {component id: (cpu cores, memory)} overriding COMPONENT_RESOURCES
      (and TRAIN_COMPONENT_RESOURCES); memory in GB or as '4G', '512M', '4Gi', '512Mi'.
    embeddable: also declare EMBEDDED_OUTPUTS (Examples, Schema, statistics, anomalies,
      TransformGraph) as the pipeline's outputs, typed ``system.Dataset``/``system.Artifact``,
      so that a user's kfp pipeline that loads the YAML as a component can pass them on.
    Other arguments: as create_pipeline.
  """
  # Heavy imports here: importing this module stays cheap (the CLI imports it for --help).
  from tfx import v1 as tfx
  from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

  from pipeline.pipeline import create_pipeline
  from pipeline.pipeline import runtime_parameter_defaults
  from pipeline.pipeline import runtime_parameter_types

  resources = resolve_resources(component_resources)
  if source.image_dir and options.runtime_parameters:
    raise _Error('image_dir cannot be compiled with runtime parameters (they stand for a CSV '
                 'index): pass runtime_parameters=False (option --no-runtime-parameters).')
  output = os.path.abspath(output)
  if not output.endswith(('.yaml', '.yml', '.json')):
    raise _Error(f'output {output!r}: .yaml for KFP or .json for Vertex AI.')
  options = dataclasses.replace(options, span_history=False,
                                metadata_connection_config=None)  # KFP provides the store
  pipeline = create_pipeline(options, source, ingest_config, balance_config, transform_config,
                             train_config)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=image, use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(output), output_filename=os.path.basename(output))
  job = runner.run(pipeline, write_out=False)
  _edit_spec(job['pipelineSpec'], resources, vertex=output.endswith('.json'))
  if options.runtime_parameters:
    _set_parameter_defaults(job, runtime_parameter_defaults(source, ingest_config, options),
                            runtime_parameter_types(source, options))
  if embeddable:
    _expose_outputs(job['pipelineSpec'], train_config is not None)
  os.makedirs(os.path.dirname(output), exist_ok=True)
  # TFX's own writer (YAML with its comment header, or the PipelineJob JSON), after the edits.
  kubeflow_v2_dag_runner._write_pipeline_spec_to_file(  # pylint: disable=protected-access
      job, f'This is converted from TFX pipeline from {job["pipelineSpec"]["sdkVersion"]}.',
      output)
  return output
