"""Pipeline constants (pure: importing this costs nothing)."""
import difflib
import os
import re
from typing import Dict, Mapping, Sequence, Tuple

from components.errors import CxrError
from components.image_example_gen.config import DEFAULT_SEED, DEFAULT_SPLITS  # noqa: F401 (re-export)


class PipelineConfigError(CxrError, ValueError):
  """A pipeline-level option (name, per-component arguments, ...) is invalid."""

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(REPO_ROOT, 'schemas')  # the curated schema, read by ImportSchemaGen
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

# TFX component ids (TFX uses the class name when no id is given) of the pipeline's components.
IMAGE_EXAMPLE_GEN = 'ImageExampleGen'
IMPORT_SCHEMA_GEN = 'ImportSchemaGen'
STATISTICS_GEN = 'StatisticsGen'
EXAMPLE_VALIDATOR = 'ExampleValidator'
CLASS_BALANCE = 'ClassBalance'
TRANSFORM = 'Transform'
# Those that run a Beam pipeline (BaseBeamComponent): the keys of create_pipeline's
# component_beam_args and of `--beam-arg-for COMPONENT=ARG`. ImportSchemaGen and (in TFX 1.16)
# ExampleValidator are plain components: they run no Beam pipeline and take no Beam args.
BEAM_COMPONENT_IDS = (IMAGE_EXAMPLE_GEN, STATISTICS_GEN, CLASS_BALANCE, TRANSFORM)
TRANSFORM_GRAPH_KEY = 'transform_graph'  # Transform's output key (TFX standard spec)
# ImageExampleGen argument -> KFP pipeline parameter name, with create_pipeline(...,
# runtime_parameters=True) (compile): one compiled spec serves many datasets.
RUNTIME_PARAMETERS = {'csv_path': 'csv_uri', 'class_mapping': 'class_mapping', 'seed': 'seed',
                      'splits': 'splits'}
# `cxr-tfx lineage --latest` choices -> (producing component, its output key) in the latest run.
LINEAGE_TYPES = {
    'examples': (IMAGE_EXAMPLE_GEN, 'examples'),
    'statistics': (STATISTICS_GEN, 'statistics'),
    'schema': (IMPORT_SCHEMA_GEN, 'schema'),
    'anomalies': (EXAMPLE_VALIDATOR, 'anomalies'),
    'balance': (CLASS_BALANCE, 'anomalies'),
    'transform_graph': (TRANSFORM, TRANSFORM_GRAPH_KEY),
}


def validate_pipeline_name(name: str) -> str:
  """Returns ``name`` if KFP accepts it as a pipeline name, else raises ValueError."""
  if not isinstance(name, str) or not _PIPELINE_NAME_RE.fullmatch(name):
    raise PipelineConfigError(f'pipeline name {name!r} must be 1-128 characters of lower-case letters, '
                     'digits and "-", starting with a letter or digit (KFP pipeline names '
                     '[a-z0-9][a-z0-9-]{0,127}; option --pipeline-name).')
  return name


def unknown_beam_component_message(component_id: str) -> str:
  """The error for a component id that is not one of BEAM_COMPONENT_IDS."""
  near = difflib.get_close_matches(component_id, BEAM_COMPONENT_IDS, n=1)
  hint = f' (did you mean {near[0]!r}?)' if near else ''
  not_beam = (' is not a Beam component' if component_id in (IMPORT_SCHEMA_GEN, EXAMPLE_VALIDATOR)
              else ' is not a component of this pipeline')
  return (f'{component_id!r}{not_beam}{hint}; per-component Beam args take one of: '
          f'{", ".join(BEAM_COMPONENT_IDS)}.')


def validate_component_beam_args(
    component_beam_args: Mapping[str, Sequence[str]]) -> Dict[str, Tuple[str, ...]]:
  """Checks the keys against BEAM_COMPONENT_IDS and the values are lists of strings.

  Returns {component id: tuple of args}; raises ValueError naming the valid ids.
  """
  result = {}
  for component_id, args in (component_beam_args or {}).items():
    if component_id not in BEAM_COMPONENT_IDS:
      raise PipelineConfigError(f'component_beam_args: {unknown_beam_component_message(component_id)}')
    if isinstance(args, (str, bytes)) or not all(isinstance(a, str) for a in args):
      raise PipelineConfigError(f'component_beam_args[{component_id!r}] must be a list of strings such '
                       f'as ["--direct_num_workers=2"], got {args!r}.')
    result[component_id] = tuple(args)
  return result
