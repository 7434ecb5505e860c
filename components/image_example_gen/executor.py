"""ImageExampleGen's executor: validates exec properties, then calls ``ingest.run_ingest``."""
import os
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf
from tfx import types
from tfx.components.example_gen import base_example_gen_executor
from tfx.components.example_gen import write_split
from tfx.components.util import examples_utils
from tfx.proto import example_gen_pb2
from tfx.proto import range_config_pb2
from tfx.types import artifact_utils
from tfx.utils import proto_utils

from components import options
from components.image_example_gen import config as config_lib
from components.image_example_gen import index
from components.image_example_gen import ingest
from components.image_example_gen import span_resolvers
from components.image_example_gen import spans
from components.image_example_gen import spec
from components.image_example_gen import summary as summary_lib


def config_from_exec_properties(
    exec_properties: Dict[str, Any]) -> Tuple[index.Source, config_lib.IngestConfig]:
  """-> (the input, validated IngestConfig). Raises ConfigError naming the bad property.

  The input is ``image_dir`` when set; else the CSV ``csv_uri`` (a KFP parameter when compiled
  with runtime parameters), else the one file matching input_base/input_config. The splits are
  ``splits``, else output_config. An empty class mapping means an image folder's class folders."""
  image_dir = exec_properties.get(spec.IMAGE_DIR_KEY) or ''
  source = index.Source(image_dir=image_dir) if image_dir else index.Source(
      csv_path=exec_properties.get(spec.CSV_URI_KEY) or _matched_csv(exec_properties))
  given = {}
  if not exec_properties.get(spec.SPLITS_KEY):
    output_config = example_gen_pb2.Output()
    proto_utils.json_to_proto(exec_properties[spec.OUTPUT_CONFIG_KEY], output_config)
    if not output_config.split_config.splits:
      raise config_lib.ConfigError('output_config.split_config must name the output splits.')
    given['splits'] = tuple(config_lib.SplitSpec(s.name, s.hash_buckets)
                            for s in output_config.split_config.splits)
  config = options.from_exec_properties(config_lib.IngestConfig, exec_properties, **given)
  # An execution recorded before group_assignment existed was balanced (its csv_uri is '' for
  # a span pattern, so for_input keeps that).
  return source, config.for_input(exec_properties.get(spec.CSV_URI_KEY) or '')


def unresolved_span(exec_properties: Dict[str, Any]) -> Optional[spans.Resolved]:
  """The span a pattern resolves to when no driver resolved it (KFP runs no component
  driver: the input_config still holds {SPAN}): TFX's rules via ``spans.resolve``; None when
  the pattern has no spec left."""
  pattern = _input_pattern(exec_properties)
  if not spans.has_any_spec(pattern):
    return None
  span = None
  if exec_properties.get(spec.RANGE_CONFIG_KEY):
    range_config = range_config_pb2.RangeConfig()
    proto_utils.json_to_proto(exec_properties[spec.RANGE_CONFIG_KEY], range_config)
    if range_config.HasField('static_range'):
      span = range_config.static_range.start_span_number
  return spans.resolve(pattern, span)


def _input_pattern(exec_properties: Dict[str, Any]) -> str:
  input_config = example_gen_pb2.Input()
  proto_utils.json_to_proto(exec_properties[spec.INPUT_CONFIG_KEY], input_config)
  if len(input_config.splits) != 1:
    raise config_lib.ConfigError(
        f'input_config must have exactly one split (the CSV index), got {len(input_config.splits)}.')
  return os.path.join(exec_properties[spec.INPUT_BASE_KEY], input_config.splits[0].pattern)


def _matched_csv(exec_properties: Dict[str, Any]) -> str:
  resolved = unresolved_span(exec_properties)
  if resolved is not None:
    return resolved.path
  pattern = _input_pattern(exec_properties)
  matches = tf.io.gfile.glob(pattern)
  if len(matches) != 1:
    raise config_lib.ConfigError(
        f'the input pattern {pattern!r} must match exactly one CSV index, matched {matches}.')
  return matches[0]


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """Plans from the CSV (or an image folder's listing), then one Beam job checks, renders
  (DICOM), hashes and writes every file once; see ``components.image_example_gen.ingest``."""

  def GetInputSourceToExamplePTransform(self):
    raise NotImplementedError(
        'ImageExampleGen plans shards from the whole index and writes them itself (Do); '
        'it does not use the per-record ExampleGen path.')

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]],
         exec_properties: Dict[str, Any]) -> None:
    self._log_startup(input_dict, output_dict, exec_properties)
    source, ingest_config = config_from_exec_properties(exec_properties)
    examples = artifact_utils.get_single_instance(output_dict[spec.EXAMPLES_KEY])
    if not examples.has_custom_property(span_resolvers.SPAN_PROPERTY):
      resolved = unresolved_span(exec_properties)  # no driver ran (KFP): record it here
      examples.set_int_custom_property(span_resolvers.SPAN_PROPERTY,
                                       resolved.span if resolved else 0)
      if resolved and resolved.version is not None:
        examples.set_int_custom_property(span_resolvers.VERSION_PROPERTY, resolved.version)
    summary = ingest.run_ingest(
        source, ingest_config, examples.uri, self._make_beam_pipeline,
        previous_manifest=exec_properties.get(spec.PREVIOUS_SPLIT_MANIFEST_KEY) or '',
        span=span_resolvers.span_of(examples))

    examples.split_names = artifact_utils.encode_split_names(
        [s.name for s in ingest_config.splits])
    examples_utils.set_payload_format(examples, example_gen_pb2.FORMAT_TF_EXAMPLE)
    examples_utils.set_file_format(
        examples, write_split.to_file_format_str(example_gen_pb2.FORMAT_TFRECORDS_GZIP))
    examples.set_string_custom_property(spec.SUMMARY_PROPERTY, summary.to_json())
    examples.set_int_custom_property(spec.ROWS_IN_PROPERTY, summary.rows_in)
    examples.set_int_custom_property(spec.EXAMPLES_WRITTEN_PROPERTY, summary.examples_written)
    examples.set_int_custom_property(spec.ROWS_QUARANTINED_PROPERTY, summary.rows_quarantined)
    examples.set_int_custom_property(spec.SEED_PROPERTY, summary.seed)
    examples.set_string_custom_property(
        spec.SPLIT_MANIFEST_PROPERTY, os.path.join(examples.uri, summary_lib.SPLIT_MANIFEST_FILE))
    examples.set_int_custom_property(spec.SPLIT_MANIFEST_IMAGES_PROPERTY,
                                     summary.membership['manifest_images'])
    examples.set_string_custom_property(spec.SPLIT_MANIFEST_DIGEST_PROPERTY,
                                        summary.membership['manifest_digest'])
