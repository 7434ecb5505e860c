"""CuratedSchemaGen: ImportSchemaGen, with the class feature's domain from the class mapping."""
import hashlib
from typing import Mapping, Union

from tfx import types
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.types import standard_artifacts

from components.image_example_gen import config as ingest_config_lib
from components.schema_gen import executor
from components.schema_gen import spec

RuntimeParameter = data_types.RuntimeParameter


class CuratedSchemaGen(base_component.BaseComponent):
  """The curated schema file -> a Schema artifact whose ``class`` domain is the class mapping's.

  Like TFX's ImportSchemaGen (the file is read at run time and written into the artifact), but
  the ``class`` feature's ``int_domain`` (min 0, max K-1, is_categorical) and its
  ``"<label>=<name>"`` tags come from ``class_mapping``: a schema that states no class list gets
  the mapping's, and one that states a list must agree with the mapping or the component fails
  in seconds, naming both files and the differing classes (rule: ``class_domain.py``). It has no
  inputs, so it runs before ImageExampleGen under LocalDagRunner (TFX orders a layer by node id).

  Output ``schema``: ``schema.pbtxt``; custom properties ``cxr_num_classes`` and
  ``cxr_class_domain`` ('generated' or 'checked').

  Caching: the schema file's content hash is an exec property (taken when the pipeline is
  built), so editing the schema in place is never a cache hit.
  """

  SPEC_CLASS = spec.CuratedSchemaGenSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)

  def __init__(self, schema_file: str,
               class_mapping: Union[Mapping[str, int], str, RuntimeParameter],
               class_mapping_file: str = ''):
    """Args:
      schema_file: the base schema (text TFDV Schema), as the executor will see it (in the
        container image for KFP).
      class_mapping: class name -> label 0..K-1, as a dict or JSON text, or a
        ``RuntimeParameter`` (str, JSON) -- pass ImageExampleGen's, so one pipeline parameter
        sets both. Its default (or the value) is validated now.
      class_mapping_file: where the mapping came from, only to name it in error messages.
    """
    default = class_mapping.default if isinstance(class_mapping, RuntimeParameter) else class_mapping
    if isinstance(default, str):
      default = ingest_config_lib.load_class_mapping_text(default)
    ingest_config_lib.validate_class_mapping(default)
    super().__init__(spec=spec.CuratedSchemaGenSpec(**{
        spec.SCHEMA_FILE_KEY: schema_file,
        spec.CLASS_MAPPING_KEY: (class_mapping if isinstance(class_mapping, RuntimeParameter)
                                 else ingest_config_lib.class_mapping_to_json(default)),
        spec.CLASS_MAPPING_FILE_KEY: class_mapping_file,
        spec.SCHEMA_SHA256_KEY: _content_digest(schema_file),
        spec.SCHEMA_KEY: types.Channel(type=standard_artifacts.Schema),
    }))


def _content_digest(path: str) -> str:
  """sha256 of a local file's bytes, '' when it cannot be read here (a container path for KFP,
  or missing: the executor then says so)."""
  try:
    with open(path, 'rb') as f:
      return hashlib.sha256(f.read()).hexdigest()
  except OSError:
    return ''
