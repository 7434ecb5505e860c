"""CuratedSchemaGen's component spec: every exec-property and output key, in one place."""
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec
from tfx.types.component_spec import ExecutionParameter

from components.image_example_gen import spec as example_gen_spec

SCHEMA_FILE_KEY = standard_component_specs.SCHEMA_FILE_KEY  # str: the curated base schema
# str: canonical JSON {"class name": label}; the same key (and, with runtime parameters, the
# same pipeline parameter) as ImageExampleGen's, so both read one mapping.
CLASS_MAPPING_KEY = example_gen_spec.CLASS_MAPPING_KEY
# str: where the mapping came from (a file path), only to name it in error messages; '' unknown.
CLASS_MAPPING_FILE_KEY = 'class_mapping_file'
SCHEMA_KEY = standard_component_specs.SCHEMA_KEY  # Schema (output)
# str: sha256 of the schema file's bytes when the pipeline was built ('' when the file is not
# readable there, e.g. a path inside a container image). Not read by the executor: it puts the
# schema's content into TFX's cache key, which otherwise sees only the path.
SCHEMA_SHA256_KEY = 'schema_sha256'

SCHEMA_FILE_NAME = 'schema.pbtxt'  # in the output artifact, as SchemaGen/ImportSchemaGen name it

# Custom properties set on the output Schema artifact.
NUM_CLASSES_PROPERTY = 'cxr_num_classes'  # int: K
CLASS_DOMAIN_PROPERTY = 'cxr_class_domain'  # 'generated' | 'checked' (see class_domain.py)


class CuratedSchemaGenSpec(ComponentSpec):
  """A schema file + the class mapping -> a Schema artifact whose class domain is the mapping's."""

  PARAMETERS = {
      SCHEMA_FILE_KEY: ExecutionParameter(type=str),
      CLASS_MAPPING_KEY: ExecutionParameter(type=str),
      CLASS_MAPPING_FILE_KEY: ExecutionParameter(type=str),
      SCHEMA_SHA256_KEY: ExecutionParameter(type=str, optional=True),
  }
  INPUTS = {}
  OUTPUTS = {
      SCHEMA_KEY: ChannelParameter(type=standard_artifacts.Schema),
  }
