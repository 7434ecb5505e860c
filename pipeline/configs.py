"""Pipeline constants and the pipeline-level option objects (pure: importing this costs
nothing)."""
import dataclasses
import difflib
from importlib import metadata as importlib_metadata
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

from components import options
from components.errors import ConfigError
from components.image_example_gen.config import DEFAULT_SEED  # noqa: F401
from components.image_example_gen.config import DEFAULT_SPLITS  # noqa: F401
from components.image_example_gen.config import IngestConfig  # noqa: F401

PipelineConfigError = ConfigError  # a pipeline-level option (name, per-component arguments, ...)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(REPO_ROOT, 'schemas')  # the curated schema, read by CuratedSchemaGen
SCHEMA_FILE = os.path.join(SCHEMA_DIR, 'schema.pbtxt')
IMAGE_SCHEMA_FILE = '/opt/cxr-tfx/schemas/schema.pbtxt'  # the same file in the Dockerfile's image
REPORTS_DIR = 'reports'  # `cxr-tfx report` writes under <pipeline_root>/reports by default

PIPELINE_NAME = 'cxr-tfx'  # KFP needs [a-z0-9][a-z0-9-]{0,127}
_PIPELINE_NAME_RE = re.compile(r'[a-z0-9][a-z0-9-]{0,127}')
DEFAULT_PIPELINE_ROOT = 'tfx_pipeline_output'
METADATA_FILE = 'metadata.sqlite'  # default store: <pipeline_root>/metadata.sqlite
DEMO_DATA_DIR = 'demo_data'  # `cxr-tfx run` without --csv generates data here, under the root
DEMO_SCALE = 0.02  # 423 images: a demo that runs in about a minute
DEMO_MISSING_MASKS = 0.1  # some rows without masks, as in real indexes
CLASS_MAPPING_FILE = 'class_mapping.json'  # looked for next to the CSV when not given
# With train=True the Pusher copies a blessed model to <serving dir>/<version>/ (a SavedModel,
# <version> = Unix time of the push: TF Serving's model base path layout); default serving dir
# <pipeline_root>/serving_model. (Not <...>/serving_model/<pipeline name>: a folder
# <root>/<a>/<b>/<digits> looks like an execution's output to cleanup.remove_unpublished_outputs,
# which would delete pushed models.)
SERVING_MODEL_DIR = 'serving_model'
# The container image KFP's tasks run (the Dockerfile): `make image` tags it IMAGE_NAME:<the
# package version>, and `cxr-tfx compile --image` defaults to that tag.
IMAGE_NAME = 'cxr-tfx'


def package_version() -> str:
  """cxr-tfx's version as installed (setup.py's ``version``); '0.0.0' when not installed."""
  try:
    return importlib_metadata.version('cxr-tfx')
  except importlib_metadata.PackageNotFoundError:
    return '0.0.0'


DEFAULT_IMAGE = f'{IMAGE_NAME}:{package_version()}'

# TFX component ids (TFX uses the class name when no id is given) of the pipeline's components.
IMAGE_EXAMPLE_GEN = 'ImageExampleGen'
SCHEMA_GEN = 'CuratedSchemaGen'
STATISTICS_GEN = 'StatisticsGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
CLASS_BALANCE = 'ClassBalance'
TRANSFORM = 'Transform'
# Resolver nodes of a span pattern (PipelineOptions(span_history=True)): earlier spans for
# ClassBalance's drift and cross-span checks; the span window Transform and the Trainer read.
PREVIOUS_SPANS_RESOLVER = 'PreviousSpans'
TRAIN_SPANS_RESOLVER = 'TrainSpans'
# The same inputs given by URI (PipelineOptions.previous_examples, window_examples), the form KFP
# compiles: Importer nodes instead of the resolvers, and SpanWindow (pipeline.py), which merges
# the window into one Examples artifact for Transform and the Trainer. With runtime parameters
# each URI is a pipeline parameter.
PREVIOUS_EXAMPLES_IMPORTER = 'PreviousExamples'
WINDOW_EXAMPLES_IMPORTER = 'WindowExamples'  # + 1..N, oldest first
SPAN_WINDOW = 'SpanWindow'
PREVIOUS_EXAMPLES_PARAMETER = 'previous_examples'
WINDOW_EXAMPLES_PARAMETER = 'window_examples'  # + _1.._N, oldest first
MAX_WINDOW_EXAMPLES = 12  # earlier spans in an imported window (SpanWindow's inputs)
# With runtime parameters and a span pattern in the CSV path: the folder the pattern's files are
# under (TFX's input_base) is a pipeline parameter; the pattern below it stays compiled, and the
# ImageExampleGen task resolves the span when it runs.
SPAN_FOLDER_PARAMETER = 'span_folder'
# Added by create_pipeline(..., train=TrainConfig(...)).
TRAINER = 'Trainer'
EVALUATOR = 'Evaluator'
PUSHER = 'Pusher'
TRAIN_COMPONENT_IDS = (TRAINER, EVALUATOR, PUSHER)
# Those that run a Beam pipeline (BaseBeamComponent): the keys of create_pipeline's
# component_beam_args and of `--beam-arg-for COMPONENT=ARG`. CuratedSchemaGen and (in TFX 1.16)
# ExampleValidator are plain components: they run no Beam pipeline and take no Beam args.
BEAM_COMPONENT_IDS = (IMAGE_EXAMPLE_GEN, STATISTICS_GEN, CLASS_BALANCE, TRANSFORM)
TRAIN_BEAM_COMPONENT_IDS = (EVALUATOR,)  # Beam components of the train=True pipeline only
TRANSFORM_GRAPH_KEY = 'transform_graph'  # Transform's output key (TFX standard spec)
# ImageExampleGen argument -> KFP pipeline parameter name, with PipelineOptions(
# runtime_parameters=True) (compile): one compiled spec serves many datasets. The CSV, then the
# IngestConfig fields marked runtime=NAME (components/options.py).
CSV_RUNTIME_PARAMETER = 'csv_uri'
RUNTIME_PARAMETERS = {'csv_path': CSV_RUNTIME_PARAMETER,
                      **options.runtime_parameters(IngestConfig)}
# `cxr-tfx lineage --latest` choices -> (producing component, its output key) in the latest run.
LINEAGE_TYPES = {
    'examples': (IMAGE_EXAMPLE_GEN, 'examples'),
    'statistics': (STATISTICS_GEN, 'statistics'),
    'schema': (SCHEMA_GEN, 'schema'),
    'anomalies': (EXAMPLE_VALIDATOR, 'anomalies'),
    'balance': (CLASS_BALANCE, 'anomalies'),
    'transform_graph': (TRANSFORM, TRANSFORM_GRAPH_KEY),
    'model': (TRAINER, 'model'),  # runs with train=True only
    'pushed_model': (PUSHER, 'pushed_model'),
}


def validate_pipeline_name(name: str) -> str:
  """Returns ``name`` if KFP accepts it as a pipeline name, else raises ValueError."""
  if not isinstance(name, str) or not _PIPELINE_NAME_RE.fullmatch(name):
    raise PipelineConfigError(f'pipeline name {name!r} must be 1-128 characters of lower-case letters, '
                     'digits and "-", starting with a letter or digit (KFP pipeline names '
                     '[a-z0-9][a-z0-9-]{0,127}; option --pipeline-name).')
  return name


def beam_component_ids(train: bool = False) -> Tuple[str, ...]:
  """Ids of the Beam components of the pipeline (with train=True: also the Evaluator)."""
  return BEAM_COMPONENT_IDS + (TRAIN_BEAM_COMPONENT_IDS if train else ())


def unknown_beam_component_message(component_id: str, train: bool = False) -> str:
  """The error for a component id that is not one of beam_component_ids(train)."""
  valid = beam_component_ids(train)
  near = difflib.get_close_matches(component_id, valid, n=1)
  hint = f' (did you mean {near[0]!r}?)' if near else ''
  if component_id in TRAIN_BEAM_COMPONENT_IDS:
    not_beam = ' runs only with --train'
  elif component_id in (SCHEMA_GEN, EXAMPLE_VALIDATOR, TRAINER, PUSHER):
    not_beam = ' is not a Beam component'
  else:
    not_beam = ' is not a component of this pipeline'
  return (f'{component_id!r}{not_beam}{hint}; per-component Beam args take one of: '
          f'{", ".join(valid)}.')


def validate_component_beam_args(
    component_beam_args: Mapping[str, Sequence[str]],
    train: bool = False) -> Dict[str, Tuple[str, ...]]:
  """Checks the keys against beam_component_ids(train) and the values are lists of strings.

  Returns {component id: tuple of args}; raises ValueError naming the valid ids.
  """
  result = {}
  for component_id, args in (component_beam_args or {}).items():
    if component_id not in beam_component_ids(train):
      raise PipelineConfigError(
          f'component_beam_args: {unknown_beam_component_message(component_id, train)}')
    if isinstance(args, (str, bytes)) or not all(isinstance(a, str) for a in args):
      raise PipelineConfigError(f'component_beam_args[{component_id!r}] must be a list of strings such '
                       f'as ["--direct_num_workers=2"], got {args!r}.')
    result[component_id] = tuple(args)
  return result


def training_splits(split_names: Sequence[str]) -> Tuple[str, str]:
  """(split the Trainer validates on, split the Evaluator evaluates on) for train=True.

  The Trainer trains on 'train' and validates on 'eval' (else 'test'); the Evaluator blesses on
  'test' (else 'eval'). PipelineConfigError when 'train' or both others are missing.
  """
  names = list(split_names)
  if 'train' not in names or not {'eval', 'test'} & set(names):
    raise PipelineConfigError(
        f'training needs a "train" split and an "eval" or "test" split, got {names} '
        '(option --splits, e.g. train=8,eval=1,test=1).')
  return ('eval' if 'eval' in names else 'test'), ('test' if 'test' in names else 'eval')


@dataclasses.dataclass(frozen=True)
class DataSource:
  """What ImageExampleGen reads: a CSV index (or a span pattern) or an image folder.

  Attributes:
    csv_path: the CSV index, absolute or a URI; a span pattern such as
      ``data/index-{SPAN}.csv`` ingests the newest span, or ``span``. '' with ``image_dir``.
    image_dir: instead: an image folder DIR/<class>/<images> (masks in DIR/<class>/masks/),
      absolute or a URI. '' with ``csv_path``.
    span: with a span pattern: this span instead of the newest.
    class_mapping_path: where the class mapping was read from, only to name it in
      CuratedSchemaGen's error when the schema states other classes ('' if unknown).
  """
  csv_path: str = ''
  image_dir: str = ''
  span: Optional[int] = None
  class_mapping_path: str = ''

  def __post_init__(self):
    if bool(self.csv_path) == bool(self.image_dir):
      raise PipelineConfigError('give csv_path (option --csv) or image_dir (option '
                                '--image-dir), one of them.')


_GLOB_CHARS = '*?[]'


@dataclasses.dataclass(frozen=True)
class PipelineOptions:
  """How the pipeline is built and run, apart from the components' own options.

  Attributes:
    pipeline_root: where artifacts are written (local path, gs://, s3://, hdfs://).
    pipeline_name: also the KFP pipeline name: [a-z0-9][a-z0-9-]{0,127}.
    schema_path: the curated schema.pbtxt, as the executors will see it (in the container
      image for KFP).
    beam_pipeline_args: passed to every Beam-based component (runner, workers, ...).
    component_beam_args: {component id: Beam args} for single components, keys from
      BEAM_COMPONENT_IDS (the Evaluator's with training). Set with TFX's
      ``with_beam_pipeline_args``; TFX puts the pipeline-level ``beam_pipeline_args`` in front
      of them, so for a flag given in both the component's value comes last and wins.
    enable_cache: reuse outputs of unchanged executions ("unchanged" covers the CSV and every
      image/mask it references: path, size, mtime, plus content with fingerprint_content).
    runtime_parameters: make the CSV URI and ImageExampleGen's runtime options (class mapping,
      seed, splits, split manifest) KFP pipeline parameters (names in RUNTIME_PARAMETERS)
      defaulting to the values given, so one compiled spec serves many datasets.
    span_history: with a span pattern, resolve earlier spans through ML Metadata (resolver
      nodes): ClassBalance's drift and cross-span checks; the span window of ``train_spans``.
      Local runners only: the KFP v2 compiler supports no custom resolver.
    train_spans: Transform and the Trainer read this span and the ``train_spans - 1`` spans
      before it (needs a span pattern when > 1). The Evaluator always evaluates on this span.
    previous_examples: instead of the resolver: the URI of the previous span's Examples (an
      ImageExampleGen output folder), imported (Importer node PREVIOUS_EXAMPLES_IMPORTER) as
      ClassBalance's drift baseline and leakage check. Needs a span pattern. The form KFP runs.
    window_examples: instead of ``train_spans``: the URIs of earlier spans' Examples, oldest
      first (at most MAX_WINDOW_EXAMPLES), imported and merged with this span's (SpanWindow):
      Transform and the Trainer read the merge. Needs a span pattern. The form KFP runs.
    serving_model_dir: where the Pusher writes blessed models (``<dir>/<version>/``); default
      ``<pipeline_root>/serving_model`` (SERVING_MODEL_DIR).
    metadata_connection_config: the ML Metadata store; None lets the orchestrator provide one.
  """
  pipeline_root: str
  pipeline_name: str = PIPELINE_NAME
  schema_path: str = SCHEMA_FILE
  beam_pipeline_args: Tuple[str, ...] = ()
  component_beam_args: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
  enable_cache: bool = True
  runtime_parameters: bool = False
  span_history: bool = True
  train_spans: int = 1
  previous_examples: str = ''
  window_examples: Tuple[str, ...] = ()
  serving_model_dir: str = ''
  metadata_connection_config: Any = None

  def __post_init__(self):
    validate_pipeline_name(self.pipeline_name)
    glob_chars = sorted(set(self.pipeline_root) & set(_GLOB_CHARS))
    if glob_chars:
      raise PipelineConfigError(
          f'pipeline root {self.pipeline_root!r} contains {" ".join(glob_chars)}: Beam and TFX '
          'find artifacts by glob patterns under it, so these characters would match other '
          'paths or none; choose a folder without * ? [ ] (option --pipeline-root).')
    object.__setattr__(self, 'beam_pipeline_args', tuple(self.beam_pipeline_args))
    if isinstance(self.train_spans, bool) or not isinstance(self.train_spans, int) \
        or self.train_spans < 1:
      raise PipelineConfigError(f'train_spans must be an int >= 1, got {self.train_spans!r} '
                                '(option --train-spans).')
    self._check_imported_spans()

  def _check_imported_spans(self) -> None:
    window = self.window_examples
    if isinstance(window, str):
      raise PipelineConfigError(f'window_examples must be a list of URIs, got the string '
                                f'{window!r} (option --window-examples, once per span).')
    object.__setattr__(self, 'window_examples', tuple(window))
    for name, uri in ([('previous_examples', self.previous_examples)] if self.previous_examples
                      else []) + [('window_examples', u) for u in self.window_examples]:
      if not isinstance(uri, str) or not uri.strip():
        raise PipelineConfigError(f'{name}: an Examples URI must be a non-empty string, got '
                                  f'{uri!r} (option --{name.replace("_", "-")}).')
    if len(self.window_examples) > MAX_WINDOW_EXAMPLES:
      raise PipelineConfigError(
          f'window_examples: {len(self.window_examples)} earlier spans, at most '
          f'{MAX_WINDOW_EXAMPLES} (option --window-examples).')
    if self.window_examples and self.train_spans != 1:
      raise PipelineConfigError('give the training window as train_spans (resolved through ML '
                                'Metadata) or as window_examples (URIs), not both (options '
                                '--train-spans, --window-examples).')

  @property
  def serving_dir(self) -> str:
    return self.serving_model_dir or '/'.join([self.pipeline_root.rstrip('/'),
                                               SERVING_MODEL_DIR])
