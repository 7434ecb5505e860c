"""``create_pipeline``: the cxr-tfx TFX pipeline as a pure function of its arguments."""
import dataclasses
from typing import Any, Dict, Mapping, Optional, Sequence

from tfx import v1 as tfx
from ml_metadata.proto import metadata_store_pb2
from tfx.types import standard_component_specs as keys

from components.class_balance.component import ClassBalance
from components.class_balance.config import BalanceConfig
from components.image_example_gen.component import ImageExampleGen
from components.image_example_gen import span_resolvers
from components.image_example_gen import spans
from components.image_example_gen.config import IngestConfig
from components.schema_gen.component import CuratedSchemaGen
from components.transform.component import make_transform
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig
from pipeline import configs


def runtime_parameter_defaults(csv_path: str, ingest_config: IngestConfig) -> Dict[str, Any]:
  """{pipeline parameter name: default} for ImageExampleGen's runtime parameters."""
  from components.image_example_gen import config as config_lib  # pylint: disable=g-import-not-at-top
  values = {'csv_path': csv_path,
            'class_mapping': config_lib.class_mapping_to_json(ingest_config.class_mapping),
            'seed': ingest_config.seed,
            'splits': config_lib.format_splits(ingest_config.splits),
            'split_manifest': ingest_config.split_manifest}
  return {name: values[arg] for arg, name in configs.RUNTIME_PARAMETERS.items()}


def _runtime_parameters(csv_path: str, ingest_config: IngestConfig):
  """ImageExampleGen's arguments as TFX RuntimeParameters, defaulting to the given values."""
  defaults = runtime_parameter_defaults(csv_path, ingest_config)
  return {arg: tfx.dsl.experimental.RuntimeParameter(
      name=name, ptype=type(defaults[name]), default=defaults[name])
          for arg, name in configs.RUNTIME_PARAMETERS.items()}


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    csv_path: Optional[str],
    ingest_config: IngestConfig,
    schema_path: str,
    balance_config: Optional[BalanceConfig] = None,
    transform_config: Optional[TransformConfig] = None,
    metadata_connection_config: Optional[metadata_store_pb2.ConnectionConfig] = None,
    beam_pipeline_args: Sequence[str] = (),
    enable_cache: bool = True,
    fingerprint_content: bool = False,
    component_beam_args: Optional[Mapping[str, Sequence[str]]] = None,
    runtime_parameters: bool = False,
    class_mapping_path: str = '',
    train: bool = False,
    train_config: Optional[TrainConfig] = None,
    serving_model_dir: Optional[str] = None,
    image_dir: Optional[str] = None,
    span: Optional[int] = None,
    span_history: bool = True,
    train_spans: int = 1,
) -> tfx.dsl.Pipeline:
  """Builds the pipeline; runs nothing and touches no file.

  CuratedSchemaGen (the curated schema; its class domain from the class mapping) and
  ImageExampleGen -> StatisticsGen (with that schema) ->
  ExampleValidator (schema checks per split) and ClassBalance (balance per split and shard,
  leakage, image statistics); Transform (the decode graph, for training and serving). With
  ``train``: Trainer (``components.trainer``: a two-head Keras model trained through the
  Transform graph, weighted by ClassBalance's class weights when it publishes them) ->
  Evaluator (accuracy overall and per class; blesses at ``train_config.min_accuracy``) ->
  Pusher (a blessed model to ``serving_model_dir``).

  Args:
    pipeline_name: also the KFP pipeline name: [a-z0-9][a-z0-9-]{0,127} (ValueError otherwise).
    pipeline_root: where artifacts are written (local path, gs://, s3://, hdfs://).
    csv_path: the CSV index, absolute (or a URI); None with ``image_dir``.
    image_dir: instead of ``csv_path``: an image folder (DIR/<class>/<images>, masks in
      DIR/<class>/masks/), absolute (or a URI). Not with ``runtime_parameters``.
    ingest_config: class mapping, splits and shard counts, seed, bad-record policy.
    schema_path: the curated schema.pbtxt, as the executors will see it (in the container
      image for KFP).
    balance_config: ClassBalance thresholds and fail_on_imbalance (default: BalanceConfig()).
    transform_config: output image size and channels, materialisation (default:
      TransformConfig(): 256x256x1, graph only).
    metadata_connection_config: ML Metadata store; None lets the orchestrator provide one (KFP).
    beam_pipeline_args: passed to every Beam-based component (runner, workers, ...).
    component_beam_args: {component id: Beam args} for single components, keys from
      configs.BEAM_COMPONENT_IDS (ValueError naming them otherwise). Set with TFX's
      ``with_beam_pipeline_args``; TFX puts the pipeline-level ``beam_pipeline_args`` in front
      of them, so for a flag given in both the component's value comes last and wins (Beam
      parses its options with argparse: the last occurrence counts).
    enable_cache: reuse outputs of unchanged executions. "Unchanged" covers the CSV and every
      image/mask it references (path, size, mtime; plus content with fingerprint_content).
    fingerprint_content: hash every referenced file's bytes for the cache fingerprint.
    runtime_parameters: make the CSV URI, class mapping (JSON), seed and splits pipeline
      parameters (names in configs.RUNTIME_PARAMETERS; TFX RuntimeParameters, which the KFP v2
      compiler turns into pipeline parameters) whose defaults are the values given here, so
      one compiled spec serves many datasets. ImageExampleGen and CuratedSchemaGen share the
      class mapping parameter.
    class_mapping_path: where ingest_config.class_mapping was read from, only to name it in
      CuratedSchemaGen's error when the schema states other classes ('' if unknown).
    train: add Trainer, Evaluator and Pusher. The splits need 'train' and 'eval' or 'test'
      (configs.training_splits); with ``runtime_parameters`` the compile-time splits count.
    train_config: steps, hyperparameters and the blessing threshold (default TrainConfig()).
    serving_model_dir: where the Pusher writes blessed models (``<dir>/<version>/``); default
      ``<pipeline_root>/serving_model`` (configs.SERVING_MODEL_DIR).
    span: with a span pattern (``csv_path`` holding ``{SPAN}``): ingest this span instead of
      the newest.
    span_history: with a span pattern, resolve earlier spans through ML Metadata (resolver
      nodes, ``span_resolvers``): ClassBalance compares this span with the previous one (drift)
      and checks that no patient changed split; Transform and the Trainer read the last
      ``train_spans`` spans. Local runners only: the KFP v2 compiler supports no custom
      resolver (``compile`` sets it False).
    train_spans: Transform and the Trainer read this span and the newest artifacts of the
      ``train_spans - 1`` spans before it (needs a span pattern when > 1). The Evaluator always
      evaluates on this span.
  """
  configs.validate_pipeline_name(pipeline_name)
  component_beam_args = configs.validate_component_beam_args(component_beam_args or {}, train)
  ingest_args = {f.name: getattr(ingest_config, f.name) for f in dataclasses.fields(ingest_config)}
  ingest_args['csv_path'] = csv_path
  ingest_args['image_dir'] = image_dir
  ingest_args['span'] = span
  spanned = bool(csv_path) and spans.has_span_spec(csv_path)
  if train_spans != 1 and not (spanned and span_history):
    raise configs.PipelineConfigError(
        f'train_spans={train_spans} needs a span pattern in the CSV path (e.g. '
        'data/index-{SPAN}.csv) and a local runner (option --train-spans).')
  if runtime_parameters and image_dir:
    raise ValueError('runtime_parameters need a CSV (csv_path), not an image folder.')
  if not ingest_config.class_mapping:
    raise ValueError('create_pipeline needs the class mapping (for an image folder, the runner '
                     'lists its class folders: folders.list_image_dir(dir).default_class_mapping()'
                     ').')
  if runtime_parameters:
    ingest_args.update(_runtime_parameters(csv_path, ingest_config))
  example_gen = ImageExampleGen(fingerprint_content=fingerprint_content, **ingest_args)
  # The class mapping decides the classes: the schema's class domain is generated from it, and
  # a schema stating other classes fails at once (CuratedSchemaGen's id sorts before
  # ImageExampleGen's, so LocalDagRunner runs it first).
  schema_gen = CuratedSchemaGen(schema_file=schema_path,
                                class_mapping=ingest_args['class_mapping'],
                                class_mapping_file=class_mapping_path)
  statistics_gen = tfx.components.StatisticsGen(
      examples=example_gen.outputs[keys.EXAMPLES_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], schema=schema_gen.outputs[keys.SCHEMA_KEY])
  resolvers = []
  previous_examples = training_examples = None
  if spanned and span_history:
    previous = _span_resolver(example_gen, span_resolvers.PreviousSpansStrategy, {},
                              configs.PREVIOUS_SPANS_RESOLVER)
    previous_examples = previous.outputs[span_resolvers.EXAMPLES_KEY]
    resolvers.append(previous)
    if train_spans > 1:
      window = _span_resolver(example_gen, span_resolvers.SpanWindowStrategy,
                              {'num_spans': train_spans}, configs.TRAIN_SPANS_RESOLVER)
      training_examples = window.outputs[span_resolvers.EXAMPLES_KEY]
      resolvers.append(window)
  class_balance = ClassBalance(
      statistics=statistics_gen.outputs[keys.STATISTICS_KEY], examples=example_gen.outputs[keys.EXAMPLES_KEY],
      schema=schema_gen.outputs[keys.SCHEMA_KEY], config=balance_config,
      previous_examples=previous_examples)
  training_examples = training_examples or example_gen.outputs[keys.EXAMPLES_KEY]
  transform = make_transform(training_examples, schema_gen.outputs[keys.SCHEMA_KEY],
                             transform_config)
  components = [example_gen, schema_gen, statistics_gen, example_validator, class_balance,
                transform] + resolvers
  if train:
    components += _training_components(
        pipeline_root, example_gen, schema_gen, class_balance, transform,
        [split.name for split in ingest_config.splits], train_config or TrainConfig(),
        serving_model_dir, training_examples)
  by_id = {c.id: c for c in components}
  for component_id, args in component_beam_args.items():
    # Before tfx.dsl.Pipeline(...): it prepends the pipeline-level args to these
    # (tfx/orchestration/pipeline.py, add_beam_pipeline_args_to_component).
    by_id[component_id].with_beam_pipeline_args(list(args))
  return tfx.dsl.Pipeline(
      pipeline_name=pipeline_name,
      pipeline_root=pipeline_root,
      components=components,
      enable_cache=enable_cache,
      metadata_connection_config=metadata_connection_config,
      beam_pipeline_args=list(beam_pipeline_args))


def _span_resolver(example_gen, strategy_class, config, resolver_id):
  """A Resolver from this run's Examples to other spans' (span_resolvers.py: through ML
  Metadata, ImageExampleGen's node context)."""
  return tfx.dsl.Resolver(
      strategy_class=strategy_class, config=config,
      **{span_resolvers.EXAMPLES_KEY: example_gen.outputs[keys.EXAMPLES_KEY]},
  ).with_id(resolver_id)


def _training_components(pipeline_root, example_gen, schema_gen, class_balance,
                         transform, split_names, train_config, serving_model_dir,
                         training_examples):
  """Trainer (on ``training_examples``: this span, or the span window) -> Evaluator (on this
  span) -> Pusher."""
  from components.class_balance import spec as balance_spec  # pylint: disable=g-import-not-at-top
  from components.trainer.component import Trainer  # pylint: disable=g-import-not-at-top
  from components.trainer.evaluation import eval_config  # pylint: disable=g-import-not-at-top

  validation_split, evaluation_split = configs.training_splits(split_names)
  examples = example_gen.outputs[keys.EXAMPLES_KEY]
  schema = schema_gen.outputs[keys.SCHEMA_KEY]
  trainer = Trainer(
      examples=training_examples, transform_graph=transform.outputs[configs.TRANSFORM_GRAPH_KEY],
      schema=schema, config=train_config,
      class_balance=(class_balance.outputs[balance_spec.ANOMALIES_KEY]
                     if train_config.use_balance_weights else None),
      train_splits=['train'], eval_splits=[validation_split]).with_id(configs.TRAINER)
  evaluator = tfx.components.Evaluator(
      examples=examples, model=trainer.outputs[keys.MODEL_KEY], schema=schema,
      eval_config=eval_config(train_config.min_accuracy),
      example_splits=[evaluation_split]).with_id(configs.EVALUATOR)
  serving_model_dir = serving_model_dir or '/'.join(
      [pipeline_root.rstrip('/'), configs.SERVING_MODEL_DIR])
  pusher = tfx.components.Pusher(
      model=trainer.outputs[keys.MODEL_KEY], model_blessing=evaluator.outputs[keys.BLESSING_KEY],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)),
  ).with_id(configs.PUSHER)
  return [trainer, evaluator, pusher]
