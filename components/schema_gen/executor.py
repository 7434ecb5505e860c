"""CuratedSchemaGen's executor: reads the schema file and the mapping, applies the rule, writes."""
import os
from typing import Any, Dict, List

from absl import logging
from google.protobuf import text_format
from tfx import types
from tfx.dsl.components.base import base_executor
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from components.errors import CxrError
from components.image_example_gen import config as ingest_config_lib
from components.schema_gen import class_domain
from components.schema_gen import spec


class SchemaFileError(CxrError, ValueError):
  """The schema file cannot be read or parsed; the message names it."""


def read_schema(path: str):
  """-> the Schema proto in the text file ``path`` (SchemaFileError naming it otherwise)."""
  try:
    return io_utils.SchemaReader().read(path)
  except text_format.ParseError as e:
    raise SchemaFileError(f'schema {path} is not a text-format TFDV Schema: {e} '
                          '(option --schema).') from e
  except Exception as e:  # pylint: disable=broad-except  (tf.errors.NotFoundError, OSError, ...)
    if not fileio.exists(path):
      raise SchemaFileError(f'schema {path} does not exist (option --schema).') from e
    raise


def curate(schema_file: str, mapping_json: str, mapping_file: str = ''):
  """-> (schema proto, GENERATED|CHECKED, number of classes); ClassDomainError on a mismatch."""
  source = class_domain.mapping_source(mapping_file)
  mapping = ingest_config_lib.load_class_mapping_text(mapping_json, source=source)
  schema, how = class_domain.apply_mapping(read_schema(schema_file), mapping,
                                           schema_source=f'schema {schema_file}',
                                           mapping_source=source)
  return schema, how, len(mapping)


class Executor(base_executor.BaseExecutor):
  """See ``components.schema_gen.component.CuratedSchemaGen``."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    schema, how, num_classes = curate(exec_properties[spec.SCHEMA_FILE_KEY],
                                      exec_properties[spec.CLASS_MAPPING_KEY],
                                      exec_properties.get(spec.CLASS_MAPPING_FILE_KEY) or '')
    artifact = artifact_utils.get_single_instance(output_dict[spec.SCHEMA_KEY])
    out = os.path.join(artifact.uri, spec.SCHEMA_FILE_NAME)
    io_utils.write_pbtxt_file(out, schema)
    artifact.set_int_custom_property(spec.NUM_CLASSES_PROPERTY, num_classes)
    artifact.set_string_custom_property(spec.CLASS_DOMAIN_PROPERTY, how)
    logging.info('CuratedSchemaGen: %d classes (%s from the mapping) -> %s', num_classes, how, out)
