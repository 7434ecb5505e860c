"""Pipeline constants (pure: importing this costs nothing)."""
import difflib
import os
import re
from typing import Dict, Mapping, Sequence, Tuple

from components.errors import ConfigError
from components.image_example_gen.config import DEFAULT_SEED, DEFAULT_SPLITS  # noqa: F401 (re-export)


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

# TFX component ids (TFX uses the class name when no id is given) of the pipeline's components.
IMAGE_EXAMPLE_GEN = 'ImageExampleGen'
SCHEMA_GEN = 'CuratedSchemaGen'
STATISTICS_GEN = 'StatisticsGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
CLASS_BALANCE = 'ClassBalance'
TRANSFORM = 'Transform'
# Resolver nodes of a span pattern (create_pipeline(..., span_history=True)): earlier spans for
# ClassBalance's drift and cross-span checks; the span window Transform and the Trainer read.
PREVIOUS_SPANS_RESOLVER = 'PreviousSpans'
TRAIN_SPANS_RESOLVER = 'TrainSpans'
# Added by create_pipeline(..., train=True).
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
# ImageExampleGen argument -> KFP pipeline parameter name, with create_pipeline(...,
# runtime_parameters=True) (compile): one compiled spec serves many datasets.
RUNTIME_PARAMETERS = {'csv_path': 'csv_uri', 'class_mapping': 'class_mapping', 'seed': 'seed',
                      'splits': 'splits', 'split_manifest': 'split_manifest'}
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
