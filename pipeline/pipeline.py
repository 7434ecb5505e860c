"""``create_pipeline``: the cxr-tfx TFX pipeline as a pure function of its arguments."""
from typing import Any, Dict, Optional

from tfx import v1 as tfx
from tfx.types import standard_component_specs as keys

from components import options as options_lib
from components.class_balance.component import ClassBalance
from components.class_balance.config import BalanceConfig
from components.image_example_gen import span_resolvers
from components.image_example_gen import spans
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen.config import IngestConfig
from components.schema_gen.component import CuratedSchemaGen
from components.trainer.config import TrainConfig
from components.transform.component import make_transform
from components.transform.config import TransformConfig
from pipeline import configs
from pipeline import training


def runtime_parameter_defaults(source: configs.DataSource,
                               ingest_config: IngestConfig) -> Dict[str, Any]:
  """{pipeline parameter name: default} for ImageExampleGen's runtime parameters: the CSV,
  then the IngestConfig options marked ``runtime`` in their exec-property encoding."""
  encoded = options_lib.to_exec_properties(ingest_config)
  return {configs.CSV_RUNTIME_PARAMETER: source.csv_path,
          **{name: encoded[field] for field, name in
             options_lib.runtime_parameters(IngestConfig).items()}}


def _runtime_parameters(source: configs.DataSource, ingest_config: IngestConfig):
  """{ImageExampleGen argument: a TFX RuntimeParameter defaulting to the given value}."""
  defaults = runtime_parameter_defaults(source, ingest_config)
  return {arg: tfx.dsl.experimental.RuntimeParameter(
      name=name, ptype=type(defaults[name]), default=defaults[name])
          for arg, name in configs.RUNTIME_PARAMETERS.items()}


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

  Args:
    options: the pipeline's name, root, schema, Beam arguments, caching, runtime parameters
      and span history (configs.PipelineOptions).
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
  # The class mapping decides the classes: the schema's class domain is generated from it, and
  # a schema stating other classes fails at once (CuratedSchemaGen's id sorts before
  # ImageExampleGen's, so LocalDagRunner runs it first).
  schema_gen = CuratedSchemaGen(
      schema_file=options.schema_path,
      class_mapping=inputs.get('class_mapping', ingest_config.class_mapping),
      class_mapping_file=source.class_mapping_path)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs[keys.EXAMPLES_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  resolvers = []
  previous_examples = training_examples = None
  if spanned and options.span_history:
    previous = _span_resolver(example_gen, span_resolvers.PreviousSpansStrategy, {},
                              configs.PREVIOUS_SPANS_RESOLVER)
    previous_examples = previous.outputs[span_resolvers.EXAMPLES_KEY]
    resolvers.append(previous)
    if options.train_spans > 1:
      window = _span_resolver(example_gen, span_resolvers.SpanWindowStrategy,
                              {'num_spans': options.train_spans}, configs.TRAIN_SPANS_RESOLVER)
      training_examples = window.outputs[span_resolvers.EXAMPLES_KEY]
      resolvers.append(window)
  class_balance = ClassBalance(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], examples=example_gen.outputs[keys.EXAMPLES_KEY],
      schema=schema_gen.outputs[keys.SCHEMA_KEY], config=balance_config,
      previous_examples=previous_examples)
  training_examples = training_examples or example_gen.outputs[keys.EXAMPLES_KEY]
  transform = make_transform(training_examples, schema_gen.outputs[keys.SCHEMA_KEY],
                             transform_config, [split.name for split in ingest_config.splits])
  components = [example_gen, schema_gen, statistics_gen, example_validator, class_balance,
                transform] + resolvers
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
