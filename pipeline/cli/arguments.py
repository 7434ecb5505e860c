"""The option groups several commands share (added to a subparser by build_parser)."""
import argparse
from typing import Tuple

from components import options as options_lib
from components.class_balance import config as balance_config_lib
from components.image_example_gen import config as config_lib
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig
from pipeline import configs
from pipeline.cli.options import _component_beam_arg
from pipeline.cli.options import _pipeline_name


def _add_quiet_arg(p: argparse.ArgumentParser) -> None:
  p.add_argument('--quiet', action='store_true',
                 help='print results and errors only: no start-up line, spinner or progress')


def _add_ingest_args(p: argparse.ArgumentParser, csv_help: str, mapping_help: str,
                     exclude: Tuple[str, ...] = ()) -> None:
  """ImageExampleGen's input and options (IngestConfig's flags, but those in ``exclude``):
  shared by `validate`, `run` and `compile`."""
  p.add_argument('--csv', help=csv_help + '. A span pattern such as \'data/index-{SPAN}.csv\' '
                 '(also {VERSION}, {YYYY}{MM}{DD}) takes the newest span, or --span '
                 '(docs/spans.md)')
  p.add_argument('--span', type=options_lib.non_negative_int, metavar='N',
                 help='with a span pattern in --csv: this span instead of the newest')
  p.add_argument('--class-mapping', help=mapping_help)
  options_lib.add_arguments(p, config_lib.IngestConfig, exclude=exclude)


def _add_image_dir_arg(p: argparse.ArgumentParser, what: str) -> None:
  p.add_argument('--image-dir', default='', metavar='DIR',
                 help=f'instead of --csv: {what}, DIR/<class>/<images> (masks in '
                      'DIR/<class>/masks/, matched by file stem), or the COVID-19 '
                      'Radiography Database layout DIR/<Class>/images + DIR/<Class>/masks. '
                      '--class-mapping must name every class folder; without it labels follow '
                      'the sorted class folders (docs/inputs.md)')


def _add_pipeline_name_arg(p: argparse.ArgumentParser, what: str) -> None:
  p.add_argument('--pipeline-name', default=configs.PIPELINE_NAME, type=_pipeline_name,
                 help=f'{what}, [a-z0-9][a-z0-9-]{{0,127}} (default %(default)s)')


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
  """Pipeline name and Beam options: shared by `run` and `compile`."""
  _add_pipeline_name_arg(p, 'TFX/KFP pipeline name')
  p.add_argument('--beam-arg', action='append', default=[], metavar='ARG',
                 help='Beam pipeline option for every Beam component, repeatable, e.g. '
                      '--beam-arg=--runner=DataflowRunner '
                      '--beam-arg=--direct_running_mode=multi_processing (docs/orchestration.md)')
  p.add_argument('--beam-arg-for', action='append', default=[], type=_component_beam_arg,
                 metavar='COMPONENT=ARG',
                 help='Beam pipeline option for one component, repeatable, added after the '
                      '--beam-arg ones so it wins for the same flag, e.g. '
                      '--beam-arg-for ImageExampleGen=--direct_num_workers=2; COMPONENT is one '
                      f'of {", ".join(configs.BEAM_COMPONENT_IDS)} (docs/orchestration.md: Per-component Beam '
                      'arguments)')


def _add_balance_args(p: argparse.ArgumentParser) -> None:
  """ClassBalance's thresholds (BalanceConfig's flags): shared by `run` and `compile`."""
  options_lib.add_arguments(p, balance_config_lib.BalanceConfig)


def _add_transform_args(p: argparse.ArgumentParser) -> None:
  """Transform's output shape and materialisation (TransformConfig's flags): shared by `run`
  and `compile`."""
  options_lib.add_arguments(p, TransformConfig)


def _add_train_args(p: argparse.ArgumentParser) -> None:
  """Trainer, Evaluator and Pusher (TrainConfig's flags): shared by `run` and `compile`."""
  p.add_argument('--train', action='store_true',
                 help='also train the template model (Trainer), evaluate it (Evaluator: '
                      'accuracy overall and per class) and push it when blessed (Pusher); '
                      'docs/training.md')
  options_lib.add_arguments(p, TrainConfig)
  p.add_argument('--serving-dir', default=None, metavar='DIR',
                 help='with --train, where blessed models go as DIR/<version>/ (default '
                      f'<pipeline-root>/{configs.SERVING_MODEL_DIR})')
