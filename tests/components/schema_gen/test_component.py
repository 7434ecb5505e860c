"""CuratedSchemaGen's executor on real files, and the component's exec properties (runtime
parameters included)."""
import json
import os

import pytest

from tests.components.schema_gen.test_class_domain import FIVE
from tests.components.schema_gen.test_class_domain import FOUR_CLASS_SCHEMA
from tests.components.schema_gen.test_class_domain import template
from tests.components.schema_gen.test_class_domain import TWO


@pytest.fixture
def base_schema(tmp_path):
  from google.protobuf import text_format
  path = tmp_path / 'base.pbtxt'
  path.write_text(text_format.MessageToString(template()))
  return str(path)


def _do(schema_file, mapping, out_dir, mapping_file=''):
  from tfx.types import standard_artifacts

  from components.schema_gen import executor
  from components.schema_gen import spec
  artifact = standard_artifacts.Schema()
  artifact.uri = str(out_dir)
  executor.Executor().Do({}, {spec.SCHEMA_KEY: [artifact]}, {
      spec.SCHEMA_FILE_KEY: schema_file, spec.CLASS_MAPPING_KEY: json.dumps(mapping),
      spec.CLASS_MAPPING_FILE_KEY: mapping_file})
  return artifact


def test_executor_writes_a_schema_tfdv_reads(base_schema, tmp_path):
  import tensorflow_data_validation as tfdv

  from components.schema_gen import class_domain
  from components.schema_gen import spec
  artifact = _do(base_schema, TWO, tmp_path / 'out')
  schema = tfdv.load_schema_text(os.path.join(artifact.uri, spec.SCHEMA_FILE_NAME))
  assert class_domain.class_names_from_schema(schema) == {0: 'normal', 1: 'pneumonia'}
  assert tfdv.get_feature(schema, 'class').int_domain.is_categorical
  assert artifact.get_int_custom_property(spec.NUM_CLASSES_PROPERTY) == 2
  assert artifact.get_string_custom_property(spec.CLASS_DOMAIN_PROPERTY) == 'generated'


def test_executor_refuses_a_disagreeing_schema_naming_both_files(tmp_path):
  from components.errors import CxrError
  user = tmp_path / 'site_schema.pbtxt'
  user.write_text(FOUR_CLASS_SCHEMA)
  with pytest.raises(CxrError) as e:
    _do(str(user), FIVE, tmp_path / 'out', mapping_file='/data/class_mapping.json')
  message = str(e.value)
  assert f'class mapping /data/class_mapping.json and schema {user} disagree' in message
  assert "label 4 'Tuberculosis': in the mapping, not in the schema" in message
  assert not (tmp_path / 'out').exists()  # nothing written


def test_executor_names_a_missing_or_broken_schema_file(tmp_path):
  from components.errors import CxrError
  with pytest.raises(CxrError, match=r'schema .*nowhere.pbtxt does not exist \(option --schema\)'):
    _do(str(tmp_path / 'nowhere.pbtxt'), TWO, tmp_path / 'out')
  broken = tmp_path / 'broken.pbtxt'
  broken.write_text('feature { name: ')
  with pytest.raises(CxrError, match='is not a text-format TFDV Schema'):
    _do(str(broken), TWO, tmp_path / 'out')
  with pytest.raises(CxrError, match='labels must be exactly 0..1'):
    _do(str(broken), {'a': 0, 'b': 2}, tmp_path / 'out')  # the mapping is checked first


def test_component_takes_the_mapping_as_a_value_or_a_runtime_parameter():
  from tfx.orchestration import data_types

  from components.image_example_gen import config as ingest_config
  from components.schema_gen import spec
  from components.schema_gen.component import CuratedSchemaGen
  fixed = CuratedSchemaGen(schema_file='/s.pbtxt', class_mapping={'b': 1, 'a': 0})
  assert fixed.exec_properties[spec.CLASS_MAPPING_KEY] == ingest_config.class_mapping_to_json(
      {'a': 0, 'b': 1})  # canonical: the same text (and cache key) as ImageExampleGen's
  assert fixed.id == 'CuratedSchemaGen' and fixed.id < 'ImageExampleGen'  # runs first
  param = data_types.RuntimeParameter(name='class_mapping', ptype=str,
                                      default=json.dumps(TWO))
  parametrized = CuratedSchemaGen(schema_file='/s.pbtxt', class_mapping=param)
  assert parametrized.exec_properties[spec.CLASS_MAPPING_KEY] is param
  bad = data_types.RuntimeParameter(name='class_mapping', ptype=str, default='{"a": 1}')
  with pytest.raises(ingest_config.ConfigError, match='labels must be exactly 0..0'):
    CuratedSchemaGen(schema_file='/s.pbtxt', class_mapping=bad)  # its default is validated
