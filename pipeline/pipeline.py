"""``create_pipeline``: the cxr-tfx TFX pipeline as a pure function of its arguments; and
SpanWindow, the node that merges imported earlier spans with this one (the KFP form of the
training window)."""
import json
import os
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tfx import types
from tfx import v1 as tfx
from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_component
from tfx.dsl.components.base import base_executor
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.types import standard_component_specs as keys
from tfx.types.component_spec import ChannelParameter
from tfx.types.component_spec import ComponentSpec

from components import options as options_lib
from components.class_balance.component import ClassBalance
from components.class_balance.config import BalanceConfig
from components.errors import CxrError
from components.image_example_gen import span_resolvers
from components.image_example_gen import spans
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.summary import SUMMARY_FILE
from components.schema_gen.component import CuratedSchemaGen
from components.trainer.config import TrainConfig
from components.transform.component import make_transform
from components.transform.config import TransformConfig
from pipeline import configs
from pipeline import training

RuntimeParameter = data_types.RuntimeParameter


def _span_pattern(source: configs.DataSource) -> bool:
  """A span pattern ({SPAN}, {VERSION} or a date) in the CSV path: ImageExampleGen's rule."""
  return bool(source.csv_path) and spans.has_any_spec(source.csv_path)


def runtime_parameter_types(source: configs.DataSource,
                            options: Optional[configs.PipelineOptions] = None) -> Dict[str, type]:
  """{pipeline parameter name: str, int or float}, as declared: the CSV (or, for a span
  pattern, its folder), the IngestConfig options marked ``runtime`` (their exec-property kind:
  a seed is an int whatever its default), and the imported Examples' URIs."""
  kinds = options_lib.exec_types(IngestConfig)
  first = (configs.SPAN_FOLDER_PARAMETER if _span_pattern(source)
           else configs.CSV_RUNTIME_PARAMETER)
  imported = list(_imported_uris(options)) if options else []
  return {first: str,
          **{name: kinds[field] for field, name in
             options_lib.runtime_parameters(IngestConfig).items()},
          **{name: str for name, _ in imported}}


def runtime_parameter_defaults(source: configs.DataSource, ingest_config: IngestConfig,
                               options: Optional[configs.PipelineOptions] = None
                               ) -> Dict[str, Any]:
  """{pipeline parameter name: default}, in runtime_parameter_types' order: the CSV (for a span
  pattern: the folder it is under), the IngestConfig options marked ``runtime`` in their
  exec-property encoding, and with ``options`` the imported Examples' URIs."""
  encoded = options_lib.to_exec_properties(ingest_config)
  csv_path = source.csv_path
  first = ({configs.SPAN_FOLDER_PARAMETER: spans.split_pattern(csv_path)[0]}
           if _span_pattern(source) else {configs.CSV_RUNTIME_PARAMETER: csv_path})
  return {**first,
          **{name: encoded[field] for field, name in
             options_lib.runtime_parameters(IngestConfig).items()},
          **dict(_imported_uris(options) if options else [])}


def _imported_uris(options: configs.PipelineOptions):
  """(pipeline parameter name, URI) of the imported Examples: the previous span's, then the
  window's, oldest first."""
  if options.previous_examples:
    yield configs.PREVIOUS_EXAMPLES_PARAMETER, options.previous_examples
  for i, uri in enumerate(options.window_examples, 1):
    yield f'{configs.WINDOW_EXAMPLES_PARAMETER}_{i}', uri


def _runtime_parameters(source: configs.DataSource, ingest_config: IngestConfig):
  """{ImageExampleGen argument: a TFX RuntimeParameter defaulting to the given value}; a span
  pattern's csv_path stays a constant (its folder becomes one: create_pipeline)."""
  defaults = runtime_parameter_defaults(source, ingest_config)
  types_ = runtime_parameter_types(source)
  return {arg: RuntimeParameter(name=name, ptype=types_[name], default=defaults[name])
          for arg, name in configs.RUNTIME_PARAMETERS.items() if name in defaults}


def create_pipeline(options: configs.PipelineOptions, source: configs.DataSource,
                    ingest_config: IngestConfig,
                    balance_config: Optional[BalanceConfig] = None,
                    transform_config: Optional[TransformConfig] = None,
                    train_config: Optional[TrainConfig] = None) -> tfx.dsl.Pipeline:
  """Builds the pipeline; runs nothing and touches no file.

  CuratedSchemaGen (the curated schema; its class domain from the class mapping) and
  ImageExampleGen -> StatisticsGen (with that schema) ->
  ExampleValidator (schema checks per split) and ClassBalance (balance per split and shard,
  leakage, image statistics); Transform (the decode graph, for training and serving). With a
  ``train_config``: Trainer (``components.trainer``: a two-head Keras model trained through the
  Transform graph, weighted by ClassBalance's class weights when it publishes them) ->
  Evaluator (accuracy overall and per class; blesses at ``train_config.min_accuracy``) ->
  Pusher (a blessed model to ``options.serving_dir``).

  Earlier spans (a span pattern only): ClassBalance's drift baseline and Transform's and the
  Trainer's window come from resolver nodes that search ML Metadata (``options.span_history``,
  ``train_spans``; local runners), or from Importer nodes given their URIs
  (``options.previous_examples``, ``window_examples``; the window merged by SpanWindow): the
  form KFP compiles, where each URI may be a pipeline parameter.

  Args:
    options: the pipeline's name, root, schema, Beam arguments, caching, runtime parameters,
      span history and imported spans (configs.PipelineOptions).
    source: the CSV (or span pattern) or image folder ImageExampleGen reads
      (configs.DataSource).
    ingest_config: ImageExampleGen's options, with the class mapping (for an image folder the
      runner lists its class folders: folders.list_image_dir(dir).default_class_mapping()).
    balance_config: ClassBalance's thresholds (default BalanceConfig()).
    transform_config: output image size and channels, materialisation (default
      TransformConfig(): 256x256x1, graph only).
    train_config: add Trainer, Evaluator and Pusher with these hyperparameters and blessing
      threshold; None: no training. The splits need 'train' and 'eval' or 'test'
      (configs.training_splits); with runtime parameters the compile-time splits count.
  """
  train = train_config is not None
  component_beam_args = configs.validate_component_beam_args(options.component_beam_args,
                                                             train)
  csv_path = source.csv_path
  spanned = bool(csv_path) and spans.has_span_spec(csv_path)
  if options.train_spans != 1 and not (spanned and options.span_history):
    raise configs.PipelineConfigError(
        f'train_spans={options.train_spans} needs a span pattern in the CSV path (e.g. '
        'data/index-{SPAN}.csv) and a local runner (option --train-spans).')
  imported = options.previous_examples or options.window_examples
  if imported and not _span_pattern(source):
    raise configs.PipelineConfigError(
        'previous_examples and window_examples are earlier spans: they need a span pattern in '
        'the CSV path, e.g. gs://bucket/index-{SPAN}.csv (options --csv, --previous-examples, '
        '--window-examples).')
  if options.runtime_parameters and source.image_dir:
    raise configs.PipelineConfigError('runtime parameters need a CSV (csv_path), not an image '
                                      'folder (option --no-runtime-parameters).')
  if not ingest_config.class_mapping:
    raise configs.PipelineConfigError(
        'create_pipeline needs the class mapping (for an image folder, the runner lists its '
        'class folders: folders.list_image_dir(dir).default_class_mapping()).')
  inputs: Dict[str, Any] = {'csv_path': csv_path or None, 'image_dir': source.image_dir or None}
  if options.runtime_parameters:
    inputs.update(_runtime_parameters(source, ingest_config))
  example_gen = ImageExampleGen(config=ingest_config, span=source.span, **inputs)
  if options.runtime_parameters and _span_pattern(source):
    # ImageExampleGen resolves a span pattern from input_base/input_config (TFX's driver, or its
    # executor where no driver runs, as on KFP). input_base, the pattern's folder, is a
    # RuntimeParameter as every FileBasedExampleGen's may be; the pattern below it is compiled.
    folder = spans.split_pattern(csv_path)[0]
    example_gen.exec_properties[keys.INPUT_BASE_KEY] = RuntimeParameter(
        name=configs.SPAN_FOLDER_PARAMETER, ptype=str, default=folder)
  examples = example_gen.outputs[keys.EXAMPLES_KEY]
  # The class mapping decides the classes: the schema's class domain is generated from it, and
  # a schema stating other classes fails at once (CuratedSchemaGen's id sorts before
  # ImageExampleGen's, so LocalDagRunner runs it first).
  schema_gen = CuratedSchemaGen(
      schema_file=options.schema_path,
      class_mapping=inputs.get('class_mapping', ingest_config.class_mapping),
      class_mapping_file=source.class_mapping_path)
  schema = schema_gen.outputs[keys.SCHEMA_KEY]
  statistics_gen = tfx.components.StatisticsGen(examples=examples, schema=schema)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], schema=schema)
  span_nodes = []  # resolvers, or importers and SpanWindow
  previous_examples = training_examples = None
  uris = dict(_imported_uris(options))
  if options.previous_examples:
    previous = _importer(configs.PREVIOUS_EXAMPLES_IMPORTER, options,
                         configs.PREVIOUS_EXAMPLES_PARAMETER, uris)
    previous_examples = previous.outputs[IMPORTED_KEY]
    span_nodes.append(previous)
  elif spanned and options.span_history:
    previous = _span_resolver(example_gen, span_resolvers.PreviousSpansStrategy, {},
                              configs.PREVIOUS_SPANS_RESOLVER)
    previous_examples = previous.outputs[span_resolvers.EXAMPLES_KEY]
    span_nodes.append(previous)
  if options.window_examples:
    earlier = [_importer(f'{configs.WINDOW_EXAMPLES_IMPORTER}{i}', options,
                         f'{configs.WINDOW_EXAMPLES_PARAMETER}_{i}', uris)
               for i in range(1, len(options.window_examples) + 1)]
    window = SpanWindow(examples, [e.outputs[IMPORTED_KEY] for e in earlier]).with_id(
        configs.SPAN_WINDOW)
    training_examples = window.outputs[WINDOW_KEY]
    span_nodes += earlier + [window]
  elif spanned and options.span_history and options.train_spans > 1:
    window = _span_resolver(example_gen, span_resolvers.SpanWindowStrategy,
                            {'num_spans': options.train_spans}, configs.TRAIN_SPANS_RESOLVER)
    training_examples = window.outputs[span_resolvers.EXAMPLES_KEY]
    span_nodes.append(window)
  class_balance = ClassBalance(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], examples=examples,
      schema=schema, config=balance_config, previous_examples=previous_examples)
  training_examples = training_examples or examples
  transform = make_transform(training_examples, schema, transform_config,
                             [split.name for split in ingest_config.splits])
  components = [example_gen, schema_gen, statistics_gen, example_validator, class_balance,
                transform] + span_nodes
  if train_config is not None:
    components += training.training_components(
        example_gen, schema_gen, class_balance, transform,
        [split.name for split in ingest_config.splits], train_config,
        options.serving_dir, training_examples)
  by_id = {c.id: c for c in components}
  for component_id, args in component_beam_args.items():
    # Before tfx.dsl.Pipeline(...): it prepends the pipeline-level args to these
    # (tfx/orchestration/pipeline.py, add_beam_pipeline_args_to_component).
    by_id[component_id].with_beam_pipeline_args(list(args))
  return tfx.dsl.Pipeline(
      pipeline_name=options.pipeline_name,
      pipeline_root=options.pipeline_root,
      components=components,
      enable_cache=options.enable_cache,
      metadata_connection_config=options.metadata_connection_config,
      beam_pipeline_args=list(options.beam_pipeline_args))


def _span_resolver(example_gen, strategy_class, config, resolver_id):
  """A Resolver from this run's Examples to other spans' (span_resolvers.py: through ML
  Metadata, ImageExampleGen's node context)."""
  return tfx.dsl.Resolver(
      strategy_class=strategy_class, config=config,
      **{span_resolvers.EXAMPLES_KEY: example_gen.outputs[keys.EXAMPLES_KEY]},
  ).with_id(resolver_id)


IMPORTED_KEY = 'result'  # an Importer's output key (tfx.dsl.Importer's default)


def _importer(node_id: str, options: configs.PipelineOptions, parameter: str,
              uris: Dict[str, str]) -> tfx.dsl.Importer:
  """An Examples artifact by URI; with runtime parameters the URI is the pipeline parameter
  ``parameter`` (the given URI its default)."""
  uri: Any = uris[parameter]
  if options.runtime_parameters:
    uri = RuntimeParameter(name=parameter, ptype=str, default=uri)
  return tfx.dsl.Importer(source_uri=uri, artifact_type=standard_artifacts.Examples,
                          output_key=IMPORTED_KEY).with_id(node_id)


# --- SpanWindow: this span's Examples and earlier spans', as one Examples artifact ---------------
#
# Why a node of its own: Transform and the Trainer read one input channel, and on KFP a channel
# comes from one task output holding one artifact (TFX 1.16's KFP v2 compiler refuses a union of
# channels: "Only single Channel is supported"), so the imported window is merged into one
# artifact. The shard files are copied (tf.io.gfile: a server-side copy on GCS), unchanged.

EARLIER_KEY = 'earlier_{}'  # SpanWindow's inputs earlier_1 .. earlier_N, oldest first
WINDOW_KEY = 'window'  # its output: Examples
WINDOW_PROPERTY = 'cxr_window'  # custom property: JSON [URI of each merged Examples, in order]


class SpanWindowSpec(ComponentSpec):
  PARAMETERS: Dict[str, Any] = {}
  INPUTS = {keys.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
            **{EARLIER_KEY.format(i): ChannelParameter(type=standard_artifacts.Examples,
                                                       optional=True)
               for i in range(1, configs.MAX_WINDOW_EXAMPLES + 1)}}
  OUTPUTS = {WINDOW_KEY: ChannelParameter(type=standard_artifacts.Examples)}


def merge_window(uris: List[str], split_names: List[str], output_uri: str) -> Dict[str, int]:
  """Copies ``Split-<name>/*`` of every Examples folder in ``uris`` into ``output_uri``, the
  i-th folder's files prefixed ``w<i>-``, and the last folder's (this span's)
  ``ingest_summary.json``, where the Trainer finds the class names; -> {split: files copied}.
  A folder missing a split is refused, naming it (the window must have this span's splits)."""
  copied = {}
  tf.io.gfile.makedirs(output_uri)
  summary = os.path.join(uris[-1], SUMMARY_FILE)
  if tf.io.gfile.exists(summary):
    tf.io.gfile.copy(summary, os.path.join(output_uri, SUMMARY_FILE), overwrite=True)
  for split in split_names:
    target = os.path.join(output_uri, f'Split-{split}')
    tf.io.gfile.makedirs(target)
    copied[split] = 0
    for i, uri in enumerate(uris):
      files = sorted(tf.io.gfile.glob(os.path.join(uri, f'Split-{split}', '*')))
      if not files:
        raise CxrError(
            f'the training window\'s Examples {uri} have no Split-{split} files: every span in '
            f'the window needs this span\'s splits {split_names} (parameters '
            f'{configs.WINDOW_EXAMPLES_PARAMETER}_N, option --window-examples).')
      for path in files:
        tf.io.gfile.copy(path, os.path.join(target, f'w{i}-{os.path.basename(path)}'),
                         overwrite=True)
        copied[split] += 1
  return copied


class SpanWindowExecutor(base_executor.BaseExecutor):
  """See ``SpanWindow``."""

  def Do(self, input_dict: Dict[str, List[types.Artifact]],
         output_dict: Dict[str, List[types.Artifact]], exec_properties: Dict[str, Any]) -> None:
    del exec_properties  # none
    current = artifact_utils.get_single_instance(input_dict[keys.EXAMPLES_KEY])
    earlier = [artifact_utils.get_single_instance(input_dict[EARLIER_KEY.format(i)])
               for i in range(1, configs.MAX_WINDOW_EXAMPLES + 1)
               if input_dict.get(EARLIER_KEY.format(i))]
    window = artifact_utils.get_single_instance(output_dict[WINDOW_KEY])
    uris = [a.uri for a in earlier] + [current.uri]
    merge_window(uris, artifact_utils.decode_split_names(current.split_names), window.uri)
    window.split_names = current.split_names
    examples_utils.set_payload_format(window, examples_utils.get_payload_format(current))
    examples_utils.set_file_format(window, examples_utils.get_file_format(current))
    window.set_int_custom_property(span_resolvers.SPAN_PROPERTY,
                                   span_resolvers.span_of(current))
    window.set_string_custom_property(WINDOW_PROPERTY, json.dumps(uris))


class SpanWindow(base_component.BaseComponent):
  """Earlier spans' Examples (imported by URI) and this span's -> one Examples artifact with
  every split's shard files of all of them (the i-th input's prefixed ``w<i>-``); its splits,
  payload and file format, span and ingest_summary.json are this span's. The training window
  in the form KFP runs."""

  SPEC_CLASS = SpanWindowSpec
  EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(SpanWindowExecutor)

  def __init__(self, examples: types.BaseChannel, earlier: List[types.BaseChannel]):
    if not 1 <= len(earlier) <= configs.MAX_WINDOW_EXAMPLES:
      raise configs.PipelineConfigError(
          f'SpanWindow takes 1 to {configs.MAX_WINDOW_EXAMPLES} earlier spans, got '
          f'{len(earlier)} (option --window-examples).')
    super().__init__(spec=SpanWindowSpec(**{
        keys.EXAMPLES_KEY: examples,
        **{EARLIER_KEY.format(i): c for i, c in enumerate(earlier, 1)},
        WINDOW_KEY: types.Channel(type=standard_artifacts.Examples)}))
