"""The class domain comes from the class mapping: generated over a schema that states none,
checked against one that does (pure: protobuf only)."""
import os

from google.protobuf import text_format
import pytest
from tensorflow_metadata.proto.v0 import schema_pb2

from components.schema_gen import class_domain
from tests.support.testutil import REPO

DEMO = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
FIVE = dict(DEMO, Tuberculosis=4)
TWO = {'normal': 0, 'pneumonia': 1}
FOUR_CLASS_SCHEMA = """
feature { name: "image" type: BYTES }
feature {
  name: "class" type: INT
  int_domain { name: "class" min: 0 max: 3 is_categorical: true }
  annotation { tag: "0=COVID" tag: "1=Normal" tag: "2=Viral Pneumonia" tag: "3=Lung_Opacity"
               tag: "pii=none" comment: "label from class_mapping.json" }
}
"""


def _schema(text: str) -> schema_pb2.Schema:
  return text_format.Parse(text, schema_pb2.Schema())


def template() -> schema_pb2.Schema:
  """The curated schema with its class list removed (what schemas/schema.pbtxt becomes)."""
  with open(os.path.join(REPO, 'schemas', 'schema.pbtxt')) as f:
    schema = _schema(f.read())
  label = class_domain.class_feature(schema)
  label.int_domain.ClearField('min')
  label.int_domain.ClearField('max')
  kept = [t for t in label.annotation.tag if '=' not in t]
  del label.annotation.tag[:]
  label.annotation.tag.extend(kept)
  return schema


def _label(schema):
  return class_domain.class_feature(schema)


@pytest.mark.parametrize('mapping', [TWO, DEMO, FIVE, {f'c{i}': i for i in range(12)}])
def test_a_schema_without_a_class_list_gets_the_mappings(mapping):
  out, how = class_domain.apply_mapping(template(), mapping)
  assert how == class_domain.GENERATED
  label = _label(out)
  assert (label.int_domain.min, label.int_domain.max) == (0, len(mapping) - 1)
  assert label.int_domain.is_categorical
  assert class_domain.class_names_from_schema(out) == {v: k for k, v in mapping.items()}
  assert list(label.annotation.tag) == [f'{v}={k}' for k, v in sorted(mapping.items(),
                                                                     key=lambda kv: kv[1])]
  others = [f for f in out.feature if f.name != 'class']
  assert others == [f for f in template().feature if f.name != 'class']  # untouched


def test_a_schema_stating_the_same_classes_is_checked_and_keeps_its_other_tags():
  out, how = class_domain.apply_mapping(_schema(FOUR_CLASS_SCHEMA), DEMO)
  assert how == class_domain.CHECKED
  label = _label(out)
  assert list(label.annotation.tag)[-1] == 'pii=none'
  assert list(label.annotation.comment) == ['label from class_mapping.json']
  assert class_domain.class_names_from_schema(out) == {v: k for k, v in DEMO.items()}


def test_min_and_max_without_tags_are_checked_and_the_names_filled_in():
  schema = _schema('feature { name: "class" type: INT int_domain { min: 0 max: 1 } }')
  out, how = class_domain.apply_mapping(schema, TWO)
  assert how == class_domain.CHECKED
  assert class_domain.class_names_from_schema(out) == {0: 'normal', 1: 'pneumonia'}
  with pytest.raises(class_domain.ClassDomainError, match=r'int_domain.max: 1 in the schema, 4'):
    class_domain.apply_mapping(schema, FIVE)


def test_a_fifth_class_against_a_four_class_schema_names_both_files_and_the_class():
  with pytest.raises(class_domain.ClassDomainError) as e:
    class_domain.apply_mapping(_schema(FOUR_CLASS_SCHEMA), FIVE,
                               schema_source='schema /data/site-b/schema.pbtxt',
                               mapping_source='class mapping /data/site-b/class_mapping.json')
  message = str(e.value)
  assert message.startswith('class mapping /data/site-b/class_mapping.json and schema '
                            '/data/site-b/schema.pbtxt disagree on the classes')
  assert "label 4 'Tuberculosis': in the mapping, not in the schema" in message
  assert 'int_domain.max: 3 in the schema, 4 (K-1 for 5 classes) from the mapping' in message
  assert 'delete the class list from the schema' in message


def test_renamed_and_dropped_classes_are_each_named():
  site = {'COVID': 0, 'Normal': 1, 'Pneumonia': 2}  # renamed 2, dropped 3
  with pytest.raises(class_domain.ClassDomainError) as e:
    class_domain.apply_mapping(_schema(FOUR_CLASS_SCHEMA), site)
  message = str(e.value)
  assert "label 2: 'Pneumonia' in the mapping, 'Viral Pneumonia' in the schema" in message
  assert "label 3 'Lung_Opacity': in the schema, not in the mapping" in message
  assert "label 0" not in message and "label 1" not in message  # agreeing labels not listed


def test_partial_or_duplicate_tags_disagree():
  partial = _schema('feature { name: "class" type: INT annotation { tag: "0=normal" } }')
  with pytest.raises(class_domain.ClassDomainError, match="label 1 'pneumonia': in the mapping"):
    class_domain.apply_mapping(partial, TWO)
  twice = _schema('feature { name: "class" type: INT annotation { tag: "0=normal" '
                  'tag: "0=normal" tag: "1=pneumonia" } }')
  with pytest.raises(class_domain.ClassDomainError, match='label 0: tagged more than once'):
    class_domain.apply_mapping(twice, TWO)


def test_a_non_categorical_or_missing_class_feature_is_refused():
  with pytest.raises(class_domain.ClassDomainError, match='is_categorical: false'):
    class_domain.apply_mapping(
        _schema('feature { name: "class" type: INT int_domain { is_categorical: false } }'), TWO)
  with pytest.raises(class_domain.ClassDomainError, match="needs an INT feature 'class'"):
    class_domain.apply_mapping(_schema('feature { name: "class" type: BYTES }'), TWO)
  with pytest.raises(class_domain.ClassDomainError, match="needs an INT feature 'class'"):
    class_domain.apply_mapping(_schema('feature { name: "image" type: BYTES }'), TWO)


def test_class_names_need_a_domain():
  with pytest.raises(class_domain.ClassDomainError, match='CuratedSchemaGen'):
    class_domain.class_names_from_schema(template())


def test_the_cli_precheck_applies_the_rule_to_a_local_file_without_tensorflow(tmp_path):
  import subprocess
  import sys

  from components.schema_gen import precheck
  user = tmp_path / 'schema.pbtxt'
  user.write_text(FOUR_CLASS_SCHEMA)
  with pytest.raises(class_domain.ClassDomainError) as e:
    precheck.check(str(user), FIVE, '/data/class_mapping.json')
  assert str(e.value).startswith(f'class mapping /data/class_mapping.json and schema {user} '
                                 'disagree on the classes')
  precheck.check(str(user), DEMO)  # agrees: returns
  precheck.check(str(tmp_path / 'missing.pbtxt'), FIVE)  # left to CuratedSchemaGen
  precheck.check('gs://bucket/schema.pbtxt', FIVE)
  broken = tmp_path / 'broken.pbtxt'
  broken.write_text('feature {')
  precheck.check(str(broken), FIVE)
  imported = subprocess.run(
      [sys.executable, '-c', 'import sys; import components.schema_gen.precheck; '
       'print(sorted(m for m in sys.modules if m.split(".")[0] in '
       '("tensorflow", "tfx", "apache_beam")))'],
      capture_output=True, text=True, cwd=REPO, check=True)
  assert imported.stdout.strip() == '[]'  # cheap enough to run before the heavy imports
