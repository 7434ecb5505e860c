"""The compiled KFP v2 spec, executed task by task as KFP's launcher would
(tests/support/kfp_harness.py).

One module-scoped run of the compiled pipeline's ImageExampleGen and CuratedSchemaGen tasks on
the demo dataset, compared with LocalDagRunner's run of the same data (the session fixture
``balanced_run``: splits train=3,test=1, default seed); then a second run of both (CuratedSchemaGen
from the cache) with one PNG changed behind the unchanged CSV. Every other task of a compiled
spec, training included, runs in test_kfp_weekly.py.
"""
import hashlib
import os
import shutil

import pytest

from tests.support import kfp_harness
from tests.support import warm_processes
from tests.support.testutil import shard_files

TASKS = ['ImageExampleGen', 'CuratedSchemaGen']  # the rest: test_kfp_weekly.py
SPLITS = (('train', 3), ('test', 1))  # as the balanced_run fixture


def _compile(csv_path, mapping_path, out_dir):
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import IMAGE_SCHEMA_FILE
  from pipeline.configs import PipelineOptions
  from pipeline.kubeflow_runner import compile_pipeline
  from tests.support.testutil import load_mapping
  path = compile_pipeline(
      output=os.path.join(out_dir, 'cxr-tfx.yaml'), image='cxr-tfx:harness',
      options=PipelineOptions(os.path.join(out_dir, 'root'), runtime_parameters=True,
                              schema_path=IMAGE_SCHEMA_FILE),
      source=DataSource(csv_path=csv_path),
      ingest_config=IngestConfig(load_mapping(mapping_path), splits=SPLITS))
  return kfp_harness.load_spec(path)


def _sha_by_id(uri):
  from tests.support.testutil import read_examples
  out = {}
  for _, example in read_examples(os.path.join(uri, 'Split-*', '*.gz')):
    feature = example.features.feature
    out[feature['image_id'].bytes_list.value[0].decode()] = (
        feature['image_sha256'].bytes_list.value[0].decode())
  return out


@pytest.fixture(scope='module')
def harness_run(demo_dataset, tmp_path_factory):
  warm_processes.start()  # its imports overlap the compilation
  out = str(tmp_path_factory.mktemp('kfp_harness'))
  spec = _compile(demo_dataset.csv_path, demo_dataset.class_mapping_path, out)
  cache = {}  # KFP's cache across this module's runs
  runs = kfp_harness.run_pipeline(spec, os.path.join(out, 'root'), 'run-1', tasks=TASKS,
                                  cache=cache, parallel=2)
  return spec, runs, cache, out


def test_the_tasks_run_with_the_launchers_executor_input(harness_run):
  spec, runs, _, _ = harness_run
  assert spec['schemaVersion'] == '2.1.0'
  assert set(runs) == set(TASKS)
  assert not any(r.cached for r in runs.values())
  examples = runs['ImageExampleGen'].outputs['examples']
  assert examples['metadata']['split_names'] == '["train", "test"]'
  assert examples['metadata']['payload_format'] == 'FORMAT_TF_EXAMPLE'
  # The in-image schema path was mapped to the repo's schema, as the image has it.
  schema_param = runs['CuratedSchemaGen'].executor_input['inputs']['parameterValues']
  assert schema_param['schema_file'] == kfp_harness.PATH_MAP[kfp_harness.IMAGE_SCHEMA]
  assert os.path.exists(os.path.join(runs['CuratedSchemaGen'].outputs['schema']['uri'],
                                     'schema.pbtxt'))


def test_examples_are_byte_identical_to_local_dag_runners(harness_run, balanced_run):
  _, runs, _, _ = harness_run
  kfp_files = shard_files(runs['ImageExampleGen'].outputs['examples']['uri'])
  local_files = shard_files(balanced_run.examples_uri)
  assert sorted(kfp_files) == sorted(local_files)
  assert [n for n in kfp_files if kfp_files[n] != local_files[n]] == []
  assert len(kfp_files) == 4  # 3 train shards + 1 test shard


def test_a_changed_png_under_an_unchanged_csv_gives_new_examples(harness_run, demo_dataset,
                                                                 tmp_path):
  """ImageExampleGen is not cached in the spec, so a rerun re-ingests; its KFP cache key does
  not change (no input artifacts, same parameters), so with caching it would be stale.

  Run 2 uses the same compiled spec; the harness maps the CSV's folder to a copy in which one
  PNG has changed (the storage behind an unchanged URI), the CSV itself byte for byte equal.
  Run 2 also runs ImageExampleGen's preCacheCheck hook first, as Vertex AI does: TFX's generic
  example-gen driver, whose fingerprint covers the CSV alone (so it cannot see the PNG either).
  """
  from PIL import Image

  from tests.support.testutil import read_csv_rows
  spec, first, cache, out = harness_run
  assert spec['root']['dag']['tasks']['ImageExampleGen']['cachingOptions'] == {
      'enableCache': False}
  data = str(tmp_path / 'data')
  shutil.copytree(demo_dataset.root, data)
  image_rel = read_csv_rows(demo_dataset.csv_path)[0]['image_path']
  png = os.path.join(data, image_rel)
  with Image.open(png) as image:
    Image.eval(image, lambda v: 255 - v).save(png, format='PNG')
  with open(png, 'rb') as f:
    new_sha = hashlib.sha256(f.read()).hexdigest()
  second = kfp_harness.run_pipeline(
      spec, os.path.join(out, 'root'), 'run-2', tasks=['ImageExampleGen', 'CuratedSchemaGen'],
      cache=cache, path_map={**kfp_harness.PATH_MAP, demo_dataset.root: data},
      pre_cache_check=True)

  assert second['CuratedSchemaGen'].cached  # the harness's cache serves cacheable tasks
  assert second['CuratedSchemaGen'].outputs == first['CuratedSchemaGen'].outputs
  gen1, gen2 = first['ImageExampleGen'], second['ImageExampleGen']
  assert not gen2.cached
  assert gen1.cache_key == gen2.cache_key  # what KFP would have matched had caching been on
  assert gen2.executor_input['inputs']['parameterValues']['input_base'] == data
  with open(os.path.join(os.path.dirname(gen2.log_path), 'pre_cache_check.log')) as f:
    assert 'Calculated fingerprint: split:index,num_files:1,' in f.read()  # the CSV only
  before = _sha_by_id(gen1.outputs['examples']['uri'])
  after = _sha_by_id(gen2.outputs['examples']['uri'])
  changed = {k for k in before if before[k] != after[k]}
  assert len(changed) == 1 and after[changed.pop()] == new_sha
  assert sorted(before) == sorted(after)


def test_one_compiled_spec_serves_another_dataset_through_pipeline_parameters(
    harness_run, demo_dataset, tmp_path):
  """The CSV URI, class mapping, seed and splits are pipeline parameters with defaults (the
  compile-time values); a run that sets them ingests another dataset with the same spec."""
  import json

  from tests.support.testutil import read_csv_rows
  from tests.support.testutil import write_csv_rows
  spec, first, _, out = harness_run
  params = spec['root']['inputDefinitions']['parameters']
  assert params['csv_uri']['defaultValue'] == demo_dataset.csv_path
  assert params['seed']['defaultValue'] == 0 and params['splits']['defaultValue'] == 'train=3,test=1'
  assert first['ImageExampleGen'].executor_input['inputs']['parameterValues']['seed'] == 0
  rows = [r for r in read_csv_rows(demo_dataset.csv_path) if r['class'] != 'Viral Pneumonia']
  subset = write_csv_rows(os.path.join(demo_dataset.root, 'three-classes.csv'), rows)
  mapping = {'COVID': 0, 'Normal': 1, 'Lung_Opacity': 2}
  run = kfp_harness.run_pipeline(
      spec, os.path.join(out, 'root'), 'run-params', tasks=['ImageExampleGen'],
      parameter_values={'csv_uri': subset, 'class_mapping': json.dumps(mapping), 'seed': 7,
                        'splits': 'train=2,eval=1'})['ImageExampleGen']
  examples = run.outputs['examples']
  assert examples['metadata']['split_names'] == '["train", "eval"]'
  assert sorted(os.listdir(os.path.join(examples['uri'], 'Split-train'))) == [
      'data_tfrecord-00000-of-00002.gz', 'data_tfrecord-00001-of-00002.gz']
  assert len(_sha_by_id(examples['uri'])) == len(rows)
  summary = json.loads(examples['metadata']['cxr_ingest_summary'])
  assert summary['seed'] == 7 and summary['csv_path'] == subset
  assert summary['class_names'] == {'0': 'COVID', '1': 'Normal', '2': 'Lung_Opacity'}


def test_a_split_manifest_as_a_runtime_parameter_keeps_the_membership(harness_run, demo_dataset):
  """On Kubeflow no driver finds earlier runs: the manifest is the ``split_manifest`` pipeline
  parameter. Given the first run's, a run with another seed over the rows in another order
  keeps every image's split."""
  import json

  from tests.support.testutil import shuffled_copy
  spec, first, _, out = harness_run
  params = spec['root']['inputDefinitions']['parameters']
  assert params['split_manifest']['defaultValue'] == ''
  first_uri = first['ImageExampleGen'].outputs['examples']['uri']
  run = kfp_harness.run_pipeline(
      spec, os.path.join(out, 'root'), 'run-manifest', tasks=['ImageExampleGen'],
      parameter_values={'csv_uri': shuffled_copy(demo_dataset.csv_path, 'kfp-shuffled.csv'),
                        'seed': 11,
                        'split_manifest': os.path.join(first_uri, 'split_manifest.json')}
  )['ImageExampleGen']
  uri = run.outputs['examples']['uri']
  assert _split_by_sha(uri) == _split_by_sha(first_uri)
  summary = json.loads(run.outputs['examples']['metadata']['cxr_ingest_summary'])
  assert summary['seed'] == 11
  assert (summary['membership']['source'], summary['membership']['new']) == ('option', 0)


def _split_by_sha(uri):
  from tests.support.testutil import read_examples
  out = {}
  for split in sorted(d for d in os.listdir(uri) if d.startswith('Split-')):
    for _, example in read_examples(os.path.join(uri, split, '*.gz')):
      out[example.features.feature['image_sha256'].bytes_list.value[0].decode()] = split
  return out


# --- the harness itself, on a two-task spec whose commands are tiny Python scripts (fast) ---

_PRODUCER = '''
import json, os, sys
executor_input = json.loads(sys.argv[1])
out = executor_input['outputs']['artifacts']['data']['artifacts'][0]
os.makedirs(out['uri'], exist_ok=True)
with open(os.path.join(out['uri'], 'value.txt'), 'w') as f:
  f.write(str(int(executor_input['inputs']['parameterValues']['n'])))
with open(executor_input['outputs']['outputFile'], 'w') as f:
  json.dump({'artifacts': {'data': {'artifacts': [{'metadata': {'split_names': '["a"]'}}]}}}, f)
'''
_CONSUMER = '''
import json, os, sys
executor_input = json.loads(sys.argv[1])
data = executor_input['inputs']['artifacts']['data']['artifacts'][0]
assert data['metadata']['split_names'] == '["a"]', data
with open(os.path.join(data['uri'], 'value.txt')) as f:
  assert f.read() == '3'
'''


def _toy_spec(producer_cache):
  typed = {'artifactType': {'schemaTitle': 'system.Dataset', 'schemaVersion': '0.0.1'}}
  container = lambda code: {'container': {  # pylint: disable=g-long-lambda
      'image': 'toy', 'command': ['python', '-c', code], 'args': ['{{$}}']}}
  return {
      'pipelineInfo': {'name': 'toy'},
      'root': {
          'inputDefinitions': {'parameters': {'n': {'parameterType': 'NUMBER_INTEGER',
                                                    'defaultValue': 1}}},
          'dag': {'tasks': {
              'consume': {'componentRef': {'name': 'consume'}, 'dependentTasks': ['produce'],
                          'cachingOptions': {'enableCache': True},
                          'inputs': {'artifacts': {'data': {'taskOutputArtifact': {
                              'producerTask': 'produce', 'outputArtifactKey': 'data'}}}}},
              'produce': {'componentRef': {'name': 'produce'},
                          'cachingOptions': {'enableCache': producer_cache},
                          'inputs': {'parameters': {'n': {'componentInputParameter': 'n'}}}},
          }}},
      'components': {
          'produce': {'executorLabel': 'produce_exec',
                      'inputDefinitions': {'parameters': {
                          'n': {'parameterType': 'NUMBER_INTEGER'}}},
                      'outputDefinitions': {'artifacts': {'data': typed}}},
          'consume': {'executorLabel': 'consume_exec',
                      'inputDefinitions': {'artifacts': {'data': typed}}},
      },
      'deploymentSpec': {'executors': {'produce_exec': container(_PRODUCER),
                                       'consume_exec': container(_CONSUMER)}},
  }


def test_harness_passes_uris_metadata_and_parameters_and_caches_like_kfp(tmp_path):
  spec, cache = _toy_spec(producer_cache=False), {}
  first = kfp_harness.run_pipeline(spec, str(tmp_path), 'r1', cache=cache,
                                   parameter_values={'n': 3})
  assert list(first) == ['produce', 'consume'] and not first['consume'].cached
  assert first['produce'].outputs['data']['metadata'] == {'split_names': '["a"]'}
  assert first['produce'].outputs['data']['uri'] == str(tmp_path / 'toy' / 'r1' / 'produce' /
                                                         'data')
  # produce is not cached, so it runs again: a new artifact, so consume's key changes too
  second = kfp_harness.run_pipeline(spec, str(tmp_path), 'r2', cache=cache,
                                    parameter_values={'n': 3})
  assert not second['produce'].cached and not second['consume'].cached
  assert second['produce'].cache_key == first['produce'].cache_key
  assert second['consume'].cache_key != first['consume'].cache_key
  # with caching on for produce (as TFX compiles it), run 3 would reuse run 1's artifacts
  spec, cache = _toy_spec(producer_cache=True), {}
  kfp_harness.run_pipeline(spec, str(tmp_path), 'r3', cache=cache, parameter_values={'n': 3})
  fourth = kfp_harness.run_pipeline(spec, str(tmp_path), 'r4', cache=cache,
                                    parameter_values={'n': 3})
  assert fourth['produce'].cached and fourth['consume'].cached
  with pytest.raises(kfp_harness.TaskFailed, match='consume exited 1'):
    kfp_harness.run_pipeline(spec, str(tmp_path), 'r5', cache=cache)  # n=1: the check fails


def test_harness_runs_importers_and_sub_dags_with_kfp_placeholders(tmp_path):
  """A parent pipeline's task whose component is a DAG (a loaded pipeline): its importer task
  gives the URI of a pipeline parameter with the importer's metadata, a container task reads it
  through kfp's placeholders and writes an output parameter; the DAG's output is the selected
  inner artifact."""
  data = tmp_path / 'data'
  data.mkdir()
  (data / 'value.txt').write_text('hello')
  typed = {'artifactType': {'schemaTitle': 'system.Dataset', 'schemaVersion': '0.0.1'}}
  read = ('import os, sys\n'
          "text = open(os.path.join(sys.argv[1], 'value.txt')).read()\n"
          "open(sys.argv[2], 'w').write(text + sys.argv[3])\n")
  spec = {
      'pipelineInfo': {'name': 'parent'},
      'root': {
          'inputDefinitions': {'parameters': {'folder': {'parameterType': 'STRING'}}},
          'dag': {'tasks': {'outer': {
              'componentRef': {'name': 'inner'}, 'taskInfo': {'name': 'outer'},
              'inputs': {'parameters': {'uri': {'componentInputParameter': 'folder'}}}}}}},
      'components': {
          'inner': {
              'inputDefinitions': {'parameters': {
                  'uri': {'parameterType': 'STRING'},
                  'suffix': {'parameterType': 'STRING', 'defaultValue': '!'}}},
              'outputDefinitions': {'artifacts': {'data': typed}},
              'dag': {
                  'tasks': {
                      'import': {'componentRef': {'name': 'imp'}, 'inputs': {'parameters': {
                          'artifact_uri': {'componentInputParameter': 'uri'}}}},
                      'read': {'componentRef': {'name': 'read'}, 'dependentTasks': ['import'],
                               'inputs': {
                                   'artifacts': {'data': {'taskOutputArtifact': {
                                       'producerTask': 'import',
                                       'outputArtifactKey': 'result'}}},
                                   'parameters': {'suffix': {
                                       'componentInputParameter': 'suffix'}}}}},
                  'outputs': {'artifacts': {'data': {'artifactSelectors': [
                      {'producerSubtask': 'import', 'outputArtifactKey': 'result'}]}}}}},
          'imp': {'executorLabel': 'imp_exec',
                  'inputDefinitions': {'parameters': {
                      'artifact_uri': {'parameterType': 'STRING'}}},
                  'outputDefinitions': {'artifacts': {'result': typed}}},
          'read': {'executorLabel': 'read_exec',
                   'inputDefinitions': {'artifacts': {'data': typed},
                                        'parameters': {'suffix': {'parameterType': 'STRING'}}},
                   'outputDefinitions': {'parameters': {'text': {'parameterType': 'STRING'}}}},
      },
      'deploymentSpec': {'executors': {
          'imp_exec': {'importer': {'artifactUri': {'runtimeParameter': 'artifact_uri'},
                                    'typeSchema': {'schemaTitle': 'system.Dataset'},
                                    'metadata': {'span': 2}}},
          'read_exec': {'container': {
              'image': 'toy', 'command': ['python', '-c', read],
              'args': ["{{$.inputs.artifacts['data'].uri}}",
                       "{{$.outputs.parameters['text'].output_file}}",
                       "{{$.inputs.parameters['suffix']}}"]}},
      }},
  }
  runs = kfp_harness.run_pipeline(spec, str(tmp_path / 'root'), 'r1',
                                  parameter_values={'folder': str(data)})
  outer = runs['outer']
  assert set(outer.inner) == {'import', 'read'}
  imported = outer.inner['import'].outputs['result']
  assert (imported['uri'], imported['metadata']) == (str(data), {'span': 2})
  assert outer.outputs['data'] == imported
  assert outer.inner['read'].parameters == {'text': 'hello!'}
