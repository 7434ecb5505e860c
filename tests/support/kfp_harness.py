"""Runs a compiled KFP v2 pipeline spec task by task, as KFP's driver and launcher would.

Test infrastructure, not an orchestrator: no Kubernetes, no Docker, no MLMD, each task in a
local subprocess. Flat DAGs of container tasks only (what TFX compiles). It follows
kubeflow/pipelines' ``backend/src/v2``:

* ``driver/driver.go`` (``provisionOutputs``): each task gets an ExecutorInput with the task's
  parameters (``runtimeValue.constant``, pipeline parameters for ``componentInputParameter``;
  component defaults for the rest, as the launcher's ``addDefaultParams``), its input
  artifacts (``name``, ``uri``, ``metadata`` and the type as recorded, from the producing
  task's outputs), one output artifact per output definition at ``<task root>/<output key>``
  and ``outputFile`` = ``<task root>/output_metadata.json``.
* ``component/launcher_v2.go``: ``{{$}}`` in the command and args becomes the ExecutorInput
  JSON; the command runs; the ExecutorOutput in ``outputFile`` is merged into the output
  artifacts (``mergeRuntimeArtifacts``: its ``uri`` if set, its ``metadata`` keys) and those
  are what downstream tasks get.
* ``cacheutils/cache.go`` (``GenerateCacheKey``): a task with ``cachingOptions.enableCache``
  is looked up by its input artifacts' names, parameter values, output specs (URI wiped),
  image and command, and a hit reuses the earlier outputs without running anything.
  ``lifecycle.preCacheCheck`` is not run (open-source KFP does not run it either) unless
  ``pre_cache_check=True`` (Vertex AI's behaviour: the hook runs with the same ExecutorInput
  and leaves exec properties in ``outputFile``, which TFX's entrypoint reads).

Beyond flat DAGs of container tasks (what TFX compiles) it runs the two other kinds a compiled
spec or a parent pipeline holds:

* importer tasks (``deploymentSpec.executors[...].importer``, ``driver/driver.go``'s importer
  path): no container; the artifact is the ``artifactUri`` (a constant, or the task's
  ``artifact_uri`` parameter) with the importer's ``metadata``, as KFP records it;
* sub-DAGs (a component with a ``dag``: a parent kfp pipeline that loaded the compiled YAML as
  a component): the inner tasks run with the DAG task's parameters as the inner pipeline's
  (over the component's defaults), and its outputs are the ``dag.outputs``
  ``artifactSelectors``' artifacts. Container commands may use the placeholders kfp's
  container components compile to: ``{{$.inputs.artifacts['K'].uri}}`` (and ``.path``),
  ``{{$.inputs.parameters['K']}}``, ``{{$.outputs.parameters['K'].output_file}}``,
  ``{{$.outputs.artifacts['K'].uri}}`` (and ``.path``); output parameters are read back.

Two substitutions make the image's command run here: the interpreter ``python`` becomes this
venv's, and ``path_map`` rewrites paths in parameter values to what the container would see:
the in-image schema to the repo's, or a data URI to a local folder. The cache key is computed
on the compiled values, as KFP's, so mapping a URI to a folder with changed files models "same
URI, new content".

A TFX task's command is ``python -m <entrypoint> ...``, an interpreter that first imports
TensorFlow, Beam and TFX (15-40 s of every task): such commands run in warm processes
(tests/support/warm_processes.py: forks of a server that imported those once; each still its own
process with the task's argv, cwd, environment, log and exit code, importing the project's
modules itself). ``CXR_WARM_PROCESSES=0``: a fresh interpreter per task.
"""
import concurrent.futures
import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from typing import Any, Dict, Iterable, List, Mapping, Optional

import yaml

from tests.support import warm_processes

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IMAGE_SCHEMA = '/opt/cxr-tfx/schemas/schema.pbtxt'  # pipeline.configs.IMAGE_SCHEMA_FILE
PATH_MAP = {IMAGE_SCHEMA: os.path.join(REPO, 'schemas', 'schema.pbtxt')}
_PLACEHOLDER = re.compile(r'\{\{\$[^}]*\}\}')
_FIELD_PLACEHOLDER = re.compile(r"\{\{\$\.(inputs|outputs)\.(artifacts|parameters)\['([^']+)'\]"
                                r"(?:\.(uri|path|output_file))?\}\}")


@dataclasses.dataclass
class TaskRun:
  name: str
  outputs: Dict[str, Dict[str, Any]]  # output key -> RuntimeArtifact (JSON form)
  cache_key: str
  cached: bool  # served from the cache, nothing ran
  seconds: float
  executor_input: Dict[str, Any]
  log_path: str = ''
  parameters: Dict[str, Any] = dataclasses.field(default_factory=dict)  # output parameters
  inner: Dict[str, 'TaskRun'] = dataclasses.field(default_factory=dict)  # a sub-DAG's tasks


class TaskFailed(RuntimeError):
  pass


def load_spec(path: str) -> Dict[str, Any]:
  """The PipelineSpec from a compiled ``.yaml`` (KFP) or ``.json`` (Vertex PipelineJob)."""
  with open(path, encoding='utf-8') as f:
    doc = json.load(f) if path.endswith('.json') else yaml.safe_load(f)
  return doc.get('pipelineSpec', doc)


def topological_order(spec: Mapping[str, Any], dag: Optional[Mapping[str, Any]] = None
                      ) -> List[str]:
  """The tasks of ``dag`` (default: the root's) in dependency order, ties by name."""
  tasks = (dag or spec['root']['dag'])['tasks']
  order, done = [], set()
  while len(order) < len(tasks):
    ready = sorted(n for n, t in tasks.items()
                   if n not in done and set(t.get('dependentTasks', [])) <= done)
    if not ready:
      raise ValueError(f'cycle among {sorted(set(tasks) - done)}')
    order.extend(ready)
    done.update(ready)
  return order


def _map_paths(value: Any, path_map: Mapping[str, str]) -> Any:
  if isinstance(value, str):
    for old, new in path_map.items():
      value = value.replace(old, new)
  return value


def _parameters(task, component, pipeline_values) -> Dict[str, Any]:
  values = {}
  for name, spec in task.get('inputs', {}).get('parameters', {}).items():
    if 'componentInputParameter' in spec:  # a pipeline parameter (TFX RuntimeParameter)
      values[name] = pipeline_values[spec['componentInputParameter']]
    elif 'constant' in spec.get('runtimeValue', {}):
      values[name] = spec['runtimeValue']['constant']
    else:
      raise NotImplementedError(f'parameter {name}: only runtimeValue.constant (spec 2.1) and '
                                f'componentInputParameter are supported here, got {spec}')
  for name, spec in component.get('inputDefinitions', {}).get('parameters', {}).items():
    if name not in values and 'defaultValue' in spec:  # the launcher's addDefaultParams
      values[name] = spec['defaultValue']
  return values


def pipeline_parameters(spec: Mapping[str, Any],
                        values: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
  """The pipeline's parameters: ``values`` (a run's parameterValues) over the defaults."""
  result = {name: definition['defaultValue'] for name, definition in
            spec['root'].get('inputDefinitions', {}).get('parameters', {}).items()
            if 'defaultValue' in definition}
  result.update(values or {})
  return result


def _as_protobuf_values(value: Any) -> Any:
  """Parameter values as KFP holds them (google.protobuf.Value: every number a double), so a
  default written 0 by one compiler and 0.0 by another is the same value."""
  if isinstance(value, dict):
    return {k: _as_protobuf_values(v) for k, v in value.items()}
  if isinstance(value, list):
    return [_as_protobuf_values(v) for v in value]
  return float(value) if isinstance(value, int) and not isinstance(value, bool) else value


def cache_key(executor_input: Mapping[str, Any], container: Mapping[str, Any]) -> str:
  """GenerateCacheKey's ingredients, hashed: what KFP compares to find a cached execution."""
  inputs, outputs = executor_input['inputs'], executor_input['outputs']
  ingredients = dict(
      input_artifact_names={k: [a['name'] for a in v['artifacts']]
                            for k, v in inputs.get('artifacts', {}).items()},
      input_parameter_values=_as_protobuf_values(inputs.get('parameterValues', {})),
      output_artifacts={k: {x: a.get(x) for x in ('name', 'type', 'metadata')}
                        for k, v in outputs.get('artifacts', {}).items()
                        for a in v['artifacts'][:1]},
      output_parameters=sorted(outputs.get('parameters', {})),
      image=container['image'], cmd_args=container.get('command', []) + container.get('args', []))
  return hashlib.sha256(json.dumps(ingredients, sort_keys=True).encode()).hexdigest()


def _check_executor_input(executor_input: Mapping[str, Any]) -> str:
  """Parses strictly as kfp's ExecutorInput proto and returns its JSON, as the driver would."""
  from google.protobuf import json_format
  from kfp.pipeline_spec import pipeline_spec_pb2
  message = json_format.ParseDict(executor_input, pipeline_spec_pb2.ExecutorInput())
  return json_format.MessageToJson(message, indent=None)


def _merge(artifact: Dict[str, Any], produced: Mapping[str, Any]) -> Dict[str, Any]:
  """launcher_v2.go mergeRuntimeArtifacts: the executor's uri if set, its metadata keys."""
  merged = json.loads(json.dumps(artifact))
  if produced.get('uri'):
    merged['uri'] = produced['uri']
  merged.setdefault('metadata', {}).update(produced.get('metadata', {}))
  return merged


def _fill(arg: str, executor_input: Mapping[str, Any], executor_input_json: str) -> str:
  """The launcher's placeholder substitution for one command or args element."""
  def field(m):
    side, kind, key, attr = m.groups()
    if kind == 'parameters' and side == 'inputs':
      value = executor_input['inputs']['parameterValues'][key]
      return value if isinstance(value, str) else json.dumps(value)
    if kind == 'parameters':
      return executor_input['outputs']['parameters'][key]['outputFile']
    return executor_input[side]['artifacts'][key]['artifacts'][0]['uri']  # .uri, .path: local
  return _FIELD_PLACEHOLDER.sub(field, arg.replace('{{$}}', executor_input_json))


def _run(name: str, container: Mapping[str, Any], executor_input: Mapping[str, Any],
         executor_input_json: str, log_path: str, python: str, timeout: float) -> None:
  """The container's command + args, placeholders filled in, with this venv's interpreter."""
  argv = []
  for arg in list(container.get('command', [])) + list(container.get('args', [])):
    arg = _fill(arg, executor_input, executor_input_json)
    if _PLACEHOLDER.search(arg):
      raise NotImplementedError(f'{name}: placeholder {_PLACEHOLDER.search(arg).group()}')
    argv.append(arg)
  if argv and argv[0] in ('python', 'python3'):
    argv[0] = python
  env = dict(os.environ, PYTHONPATH=warm_processes.pythonpath())
  if warm_processes.ENABLED and python == sys.executable and argv[1:2] == ['-m']:
    returncode = warm_processes.run_python_m(argv, env, log_path, timeout, cwd=REPO)
  else:
    with open(log_path, 'w', encoding='utf-8') as log:
      returncode = subprocess.run(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False).returncode
  if returncode != 0:
    with open(log_path, encoding='utf-8', errors='replace') as f:
      raise TaskFailed(f'{name} exited {returncode}; log {log_path}:\n{f.read()[-4000:]}')


def _input_artifacts(task, upstream: Mapping[str, TaskRun], name: str) -> Dict[str, Any]:
  artifacts = {}
  for key, source in task.get('inputs', {}).get('artifacts', {}).items():
    if 'taskOutputArtifact' not in source:
      raise NotImplementedError(f'{name}: input artifact {key}: only taskOutputArtifact')
    producer = source['taskOutputArtifact']
    artifact = upstream[producer['producerTask']].outputs[producer['outputArtifactKey']]
    artifacts[key] = {'artifacts': [] if artifact is None else [artifact]}
  return artifacts


def _import(name: str, importer: Mapping[str, Any], component: Mapping[str, Any],
            parameters: Mapping[str, Any], task_root: str,
            path_map: Mapping[str, str]) -> TaskRun:
  """An importer task: the artifact at ``artifactUri`` (a constant, or the runtime parameter
  the task passes), typed by the component's output, with the importer's metadata."""
  source = importer['artifactUri']
  uri = (source['constant'] if 'constant' in source
         else parameters[source['runtimeParameter']])
  (key, definition), = component['outputDefinitions']['artifacts'].items()
  # KFP (reimport false) records one artifact per URI: named by it, downstream cache keys hold.
  artifact = dict(name=f'imported:{uri}', uri=_map_paths(uri, path_map),
                  type=definition['artifactType'], metadata=dict(importer.get('metadata', {})))
  return TaskRun(name, {key: artifact}, '', False, 0.0,
                 {'inputs': {'parameterValues': dict(parameters)}})


def _resolve(name: str, component: Mapping[str, Any], parameters: Mapping[str, Any]) -> TaskRun:
  """A resolver task (e.g. the latest blessed model) as on a fresh cluster: KFP queries its ML
  Metadata, which holds nothing yet, so every output is an empty artifact list."""
  outputs = {key: None for key in component.get('outputDefinitions', {}).get('artifacts', {})}
  return TaskRun(name, outputs, '', False, 0.0, {'inputs': {'parameterValues': dict(parameters)}})


def run_task(spec: Mapping[str, Any], name: str, upstream: Mapping[str, TaskRun],
             task_root: str, *, path_map: Mapping[str, str] = PATH_MAP,
             cache: Optional[Dict[str, Dict[str, Any]]] = None, use_cache: Optional[bool] = None,
             parameter_values: Optional[Mapping[str, Any]] = None, pre_cache_check: bool = False,
             python: str = sys.executable, timeout: float = 900,
             dag: Optional[Mapping[str, Any]] = None, parallel: int = 1,
             inner_use_cache: Optional[Mapping[str, bool]] = None) -> TaskRun:
  """Runs one task of ``dag`` (default the root's; or serves it from ``cache``);
  ``use_cache`` overrides its cachingOptions; ``parameter_values`` are the DAG's parameters
  (for the root: the run's, over their defaults); ``pre_cache_check`` runs the
  ``lifecycle.preCacheCheck`` hook first, as Vertex AI does. A sub-DAG's tasks run with the
  same settings, ``parallel`` at a time, ``inner_use_cache`` = {task: bool} overriding theirs."""
  dag = dag or spec['root']
  task = dag['dag']['tasks'][name]
  component = spec['components'][task['componentRef']['name']]
  if dag is spec['root']:
    parameter_values = pipeline_parameters(spec, parameter_values)
  parameters = _parameters(task, component, parameter_values or {})
  if 'dag' in component:
    inner = _run_dag(spec, component, parameters, task_root, None, path_map=path_map,
                     cache=cache, use_cache=inner_use_cache, parallel=parallel,
                     pre_cache_check=pre_cache_check, python=python)
    outputs = {key: inner[sel['artifactSelectors'][0]['producerSubtask']].outputs[
        sel['artifactSelectors'][0]['outputArtifactKey']]
               for key, sel in component['dag'].get('outputs', {}).get('artifacts', {}).items()}
    return TaskRun(name, outputs, '', False, sum(r.seconds for r in inner.values()),
                   {'inputs': {'parameterValues': parameters}}, inner=inner)
  executor = spec['deploymentSpec']['executors'][component['executorLabel']]
  if 'importer' in executor:
    return _import(name, executor['importer'], component, parameters, task_root, path_map)
  if 'resolver' in executor:
    return _resolve(name, component, parameters)
  if 'container' not in executor:
    raise NotImplementedError(f'{name}: only container, importer and resolver executors are '
                              'supported')
  container = executor['container']

  artifacts = _input_artifacts(task, upstream, name)
  outputs = {}
  for key, definition in component.get('outputDefinitions', {}).get('artifacts', {}).items():
    outputs[key] = {'artifacts': [dict(
        name=key, uri=os.path.join(task_root, key), type=definition['artifactType'],
        metadata=definition.get('metadata', {}))]}
  out_params = {k: {'outputFile': os.path.join(task_root, 'outputs', k)}
                for k in component.get('outputDefinitions', {}).get('parameters', {})}
  executor_input = dict(
      inputs=dict(parameterValues={k: _map_paths(v, path_map) for k, v in parameters.items()},
                  artifacts=artifacts),
      outputs=dict(artifacts=outputs, parameters=out_params,
                   outputFile=os.path.join(task_root, 'output_metadata.json')))
  executor_input_json = _check_executor_input(executor_input)
  # KFP keys the cache on the parameters as compiled; path_map is only the container's view.
  cache_id = cache_key(dict(executor_input, inputs=dict(executor_input['inputs'],
                                                        parameterValues=parameters)), container)

  enabled = task.get('cachingOptions', {}).get('enableCache', False)
  if use_cache is not None:
    enabled = use_cache
  if cache is not None and enabled and cache_id in cache:
    return TaskRun(name, cache[cache_id], cache_id, True, 0.0, executor_input)

  os.makedirs(task_root, exist_ok=True)
  os.makedirs(os.path.join(task_root, 'outputs'), exist_ok=True)
  start = time.monotonic()
  hook = container.get('lifecycle', {}).get('preCacheCheck')
  if pre_cache_check and hook:  # Vertex runs it; it writes exec properties to outputFile
    _run(name, hook, executor_input, executor_input_json,
         os.path.join(task_root, 'pre_cache_check.log'), python, timeout)
  log_path = os.path.join(task_root, 'log.txt')
  _run(name, container, executor_input, executor_input_json, log_path, python, timeout)
  seconds = time.monotonic() - start

  produced = {}
  output_file = executor_input['outputs']['outputFile']
  if os.path.exists(output_file):
    with open(output_file, encoding='utf-8') as f:
      produced = json.load(f).get('artifacts', {})
  result = {}
  for key, listed in outputs.items():
    artifact = listed['artifacts'][0]
    got = produced.get(key, {}).get('artifacts', [])
    artifact = _merge(artifact, got[0]) if got else artifact
    artifact['name'] = f'{task_root}#{key}'  # unique per execution, as an MLMD artifact id
    result[key] = artifact
  if cache is not None and enabled:
    cache[cache_id] = result
  values = {}
  for key, spec_ in out_params.items():
    if os.path.exists(spec_['outputFile']):
      with open(spec_['outputFile'], encoding='utf-8') as f:
        values[key] = f.read()
  return TaskRun(name, result, cache_id, False, seconds, executor_input, log_path, values)


def _run_dag(spec, dag, parameter_values, dag_root, tasks, *, path_map, cache, use_cache,
             parallel, pre_cache_check, python) -> Dict[str, TaskRun]:
  all_tasks = dag['dag']['tasks']
  wanted = set(tasks) if tasks is not None else set(all_tasks)
  stack = list(wanted)
  while stack:  # add what the wanted tasks depend on
    for dep in all_tasks[stack.pop()].get('dependentTasks', []):
      if dep not in wanted:
        wanted.add(dep)
        stack.append(dep)
  order = [n for n in topological_order(spec, dag['dag']) if n in wanted]
  runs: Dict[str, TaskRun] = {}

  def one(name):
    return run_task(spec, name, dict(runs), os.path.join(dag_root, name), path_map=path_map,
                    cache=cache, use_cache=(use_cache or {}).get(name),
                    parameter_values=parameter_values, pre_cache_check=pre_cache_check,
                    python=python, dag=dag, parallel=parallel, inner_use_cache=use_cache)

  with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
    while len(runs) < len(order):
      ready = [n for n in order if n not in runs
               and set(all_tasks[n].get('dependentTasks', [])) <= set(runs)]
      for name, result in zip(ready, pool.map(one, ready)):  # a failure raises here
        runs[name] = result
  return runs


def run_pipeline(spec: Mapping[str, Any], root: str, run_id: str, *,
                 tasks: Optional[Iterable[str]] = None, path_map: Mapping[str, str] = PATH_MAP,
                 cache: Optional[Dict[str, Dict[str, Any]]] = None,
                 use_cache: Optional[Mapping[str, bool]] = None, parallel: int = 1,
                 parameter_values: Optional[Mapping[str, Any]] = None,
                 pre_cache_check: bool = False,
                 python: str = sys.executable) -> Dict[str, TaskRun]:
  """Runs the spec's tasks (all, or ``tasks`` and what they need) in dependency order.

  Task roots are ``<root>/<pipeline name>/<run_id>/<task>`` (a sub-DAG's tasks under its
  task's). ``cache`` (a dict the caller keeps across runs) enables KFP-style caching for the
  tasks whose spec enables it; ``use_cache`` = {task: bool} overrides the spec per task (a
  sub-DAG's tasks too, by name). Tasks whose upstream tasks are done run ``parallel`` at a time, as KFP runs
  independent tasks side by side. ``parameter_values``: the run's pipeline parameters (root
  inputDefinitions; defaults otherwise). ``pre_cache_check``: run ``lifecycle.preCacheCheck``
  hooks (Vertex AI), not open-source KFP's behaviour. Returns {task: TaskRun}.
  """
  return _run_dag(spec, spec['root'], pipeline_parameters(spec, parameter_values),
                  os.path.join(root, spec['pipelineInfo']['name'], run_id), tasks,
                  path_map=path_map, cache=cache, use_cache=use_cache, parallel=parallel,
                  pre_cache_check=pre_cache_check, python=python)
