"""The class-domain rule on a local schema file, without TensorFlow or TFX (protobuf only).

For the command line: ``cxr-tfx run`` can refuse a schema that disagrees with the class mapping
in a fraction of a second, before it spends half a minute importing TensorFlow, TFX and Beam.
CuratedSchemaGen applies the same rule again at run time (the only check on KFP, where the schema
lives in the container image), so a file this cannot read is simply left to it.
"""
import os
from typing import Mapping

from google.protobuf import text_format
from tensorflow_metadata.proto.v0 import schema_pb2

from components.schema_gen import class_domain


def check(schema_path: str, mapping: Mapping[str, int], mapping_file: str = '') -> None:
  """Raises ClassDomainError (naming both files and every difference) if the local schema file
  at ``schema_path`` states classes that disagree with ``mapping``; returns otherwise."""
  if '://' in schema_path or not os.path.isfile(schema_path):
    return  # a URI or a missing file: CuratedSchemaGen reads (and names) it
  try:
    with open(schema_path, encoding='utf-8') as f:
      schema = text_format.Parse(f.read(), schema_pb2.Schema())
  except (OSError, UnicodeDecodeError, text_format.ParseError):
    return  # CuratedSchemaGen names the file and the parse error
  class_domain.apply_mapping(schema, mapping, schema_source=f'schema {schema_path}',
                             mapping_source=class_domain.mapping_source(mapping_file))
