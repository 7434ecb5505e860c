"""Training options, custom_config keys, class weights and signature names (pure: no TensorFlow).

``TrainConfig`` is what ``create_pipeline(..., train_config=...)`` takes. Its
hyperparameters travel to ``run_fn`` in the Trainer's ``custom_config``
(``to_custom_config`` / ``from_custom_config``); the step counts become TFX's
``TrainArgs``/``EvalArgs``, and ``majority_margin``, ``min_accuracy`` and ``max_regression``
the Evaluator's blessing thresholds (``evaluation.eval_config``).
"""
import dataclasses
import json
import math
import re
from typing import Any, Dict, List, Mapping, Optional

from components import options
from components.errors import ConfigError
from components.options import option

RUN_FN = 'components.trainer.task.run_fn'  # the Trainer's run_fn, by module path (no wheel)

# custom_config keys (TFX serialises custom_config as JSON: keys are strings).
BATCH_SIZE_KEY = 'batch_size'
LEARNING_RATE_KEY = 'learning_rate'
FILTERS_KEY = 'filters'
MASK_LOSS_WEIGHT_KEY = 'mask_loss_weight'
EPOCHS_KEY = 'epochs'
SEED_KEY = 'seed'
SHUFFLE_BUFFER_KEY = 'shuffle_buffer'
PRECISION_KEY = 'precision'
# {"<label>": weight}; set by the Trainer's executor from ClassBalance's output (its custom
# property components.class_balance.spec.CLASS_WEIGHTS_PROPERTY, the same JSON), or by hand.
CLASS_WEIGHTS_KEY = 'class_weights'
CLASS_NAMES_KEY = 'class_names'  # {"<label>": name}; default: the ingest summary's
HYPERPARAMETER_KEYS = (BATCH_SIZE_KEY, LEARNING_RATE_KEY, FILTERS_KEY, MASK_LOSS_WEIGHT_KEY,
                       EPOCHS_KEY, SEED_KEY, SHUFFLE_BUFFER_KEY, PRECISION_KEY)

DEFAULT_EPOCHS = 4  # TrainConfig.epochs: capped at train_steps when there are fewer steps

# Keras dtype policies the Trainer may train under (--precision): float32 everywhere, or
# float16/bfloat16 compute with float32 weights (mixed precision: for GPUs with tensor cores,
# and bfloat16 for TPUs and recent CPUs; slower on other CPUs).
PRECISIONS = ('float32', 'mixed_float16', 'mixed_bfloat16')

# Blessing: a model that predicts one class for at least this share of the evaluation split
# is never blessed, whatever its accuracy (it has learnt the class mix, not the images).
TOP_CLASS_SHARE_LIMIT = 0.95

# The exported SavedModel.
SERVING_SIGNATURE = 'serving_default'  # raw encoded image bytes -> predictions
EXAMPLES_SIGNATURE = 'from_examples'  # serialized tf.Examples -> predictions (Evaluator)
IMAGE_INPUT = 'image'  # serving_default's input: string [B], PNG (8/16-bit) or JPEG file bytes
EXAMPLES_INPUT = 'examples'  # from_examples' input: string [B], serialized tf.Example
PROBABILITIES = 'class_probabilities'  # float32 [B, K], softmax over the classes
CLASS_ID = 'class_id'  # int64 [B], argmax
CLASS_NAME = 'class_name'  # string [B], the class mapping's name of class_id
MASK_OUTPUT = 'mask'  # float32 [B, H, W, 1]: per-pixel lung probability at the Transform size
KERAS_MODEL_FILE = 'model.keras'  # the trained Keras model, in the ModelRun dir (fine-tuning)
EXTRA_ASSETS_DIR = 'assets.extra'  # in the SavedModel: files TF Serving ignores
CLASS_NAMES_FILE = 'class_names.json'  # there: the class names, in label order
SAVED_MODEL_FILE = 'saved_model.pb'  # what makes a folder a SavedModel

# Keras output names of the model (model.build_model).
CLASS_HEAD = 'class'
MASK_HEAD = 'mask'

_DOTTED_PATH = re.compile(r'[A-Za-z_]\w*(\.[A-Za-z_]\w*)+')


def _positive_int(name: str, value: Any, option: str) -> None:
  if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
    raise ConfigError(f'{name} must be a positive integer, got {value!r} ({option}).')


def _number(name: str, value: Any, option: str, low: float, high: float,
            low_open: bool = False) -> float:
  ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
        and (value > low if low_open else value >= low) and value <= high)
  if not ok:
    bound = '(' if low_open else '['
    raise ConfigError(f'{name} must be a number in {bound}{low}, {high}], got {value!r} '
                      f'({option}).')
  return float(value)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """How the model is trained, evaluated and blessed: one field per option, its help line
  (``option``) says what it does (components/options.py). The hyperparameters travel in the
  Trainer's custom_config, the steps as TFX's TrainArgs/EvalArgs, ``min_accuracy`` as the
  Evaluator's threshold: none is an exec property of its own.
  """
  train_steps: int = option(
      600, flag='--train-steps', kind=int, parse=options.positive_int, metavar='N',
      exec_property=False,
      help='training steps (batches) in all, with --train (TFX TrainArgs.num_steps; default '
           '%(default)s)')
  eval_steps: int = option(5, exec_property=False,
                           help='validation batches after each epoch (TFX EvalArgs.num_steps)')
  batch_size: int = option(8, exec_property=False,
                           help='records per batch, over all devices (each of N GPUs gets '
                                'batch_size / N)')
  learning_rate: float = option(1e-3, exec_property=False, help="Adam's learning rate")
  filters: int = option(8, exec_property=False,
                        help='width of the first convolutions (deeper ones have 2x and 4x)')
  mask_loss_weight: float = option(1.0, exec_property=False,
                                   help="weight of the mask head's loss against the class head's")
  epochs: int = option(DEFAULT_EPOCHS, exec_property=False,
                       help='train_steps are spread over this many epochs (the default, 4, '
                            'becomes train_steps when there are fewer steps); validation and '
                            'TensorBoard summaries are written after each')
  seed: int = option(0, exec_property=False, help='seeds the weights and the shuffle')
  shuffle_buffer: int = option(512, exec_property=False, help='records in the shuffle buffer')
  precision: str = option(
      'float32', flag='--precision', choices=PRECISIONS, exec_property=False,
      help='with --train, the Keras dtype policy: float32, or mixed precision (float16 or '
           'bfloat16 compute, float32 weights and outputs) for a GPU or TPU (default '
           '%(default)s)')
  use_balance_weights: bool = option(
      True, exec_property=False,
      help="weight the class loss with ClassBalance's class weights when it publishes them "
           '(custom property class_weights); False trains unweighted')
  majority_margin: float = option(
      0.1, flag='--majority-margin', kind=float, metavar='X', exec_property=False,
      help='with --train, bless and push only a model whose accuracy on the evaluation split '
           'is at least the share of that split\'s largest class plus X (what always '
           'answering that class scores; default %(default)s)')
  min_accuracy: float = option(
      0.0, flag='--min-accuracy', kind=float, metavar='X', exec_property=False,
      help='with --train, also require accuracy >= X on the evaluation split (default '
           '%(default)s: the majority rule alone)')
  max_regression: float = option(
      0.0, flag='--max-regression', kind=float, metavar='X', exec_property=False,
      help='with --train, when a blessed model exists, bless a new one only if its accuracy '
           'on the evaluation split is at most X below the blessed one\'s on the same '
           'examples (default %(default)s: no worse)')
  run_fn: str = option(
      RUN_FN, exec_property=False,
      help="the Trainer's entry point as 'package.module.function' (importable where the "
           'Trainer runs: installed, or in the container image for KFP); yours must export with '
           'components.trainer.export.export_serving_model (docs/training.md)')

  def __post_init__(self):
    _positive_int('train_steps', self.train_steps, 'option --train-steps')
    _positive_int('eval_steps', self.eval_steps, 'TrainConfig.eval_steps')
    _positive_int('batch_size', self.batch_size, 'TrainConfig.batch_size')
    _positive_int('filters', self.filters, 'TrainConfig.filters')
    _positive_int('epochs', self.epochs, 'TrainConfig.epochs')
    _positive_int('shuffle_buffer', self.shuffle_buffer, 'TrainConfig.shuffle_buffer')
    if self.epochs == DEFAULT_EPOCHS and self.train_steps < self.epochs:
      object.__setattr__(self, 'epochs', self.train_steps)  # the default: one step per epoch
    if self.epochs > self.train_steps:
      raise ConfigError(f'epochs ({self.epochs}) must not exceed train_steps '
                        f'({self.train_steps}): every epoch needs a step (option --train-steps).')
    if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
      raise ConfigError(f'seed must be an integer >= 0, got {self.seed!r} (TrainConfig.seed).')
    _number('learning_rate', self.learning_rate, 'TrainConfig.learning_rate', 0, 10,
            low_open=True)
    _number('mask_loss_weight', self.mask_loss_weight, 'TrainConfig.mask_loss_weight', 0, 1e6)
    _number('min_accuracy', self.min_accuracy, 'option --min-accuracy', 0, 1)
    _number('majority_margin', self.majority_margin, 'option --majority-margin', 0, 1)
    _number('max_regression', self.max_regression, 'option --max-regression', 0, 1)
    if self.precision not in PRECISIONS:
      raise ConfigError(f'precision must be one of {PRECISIONS}, got {self.precision!r} '
                        '(option --precision).')
    if not isinstance(self.run_fn, str) or not _DOTTED_PATH.fullmatch(self.run_fn):
      raise ConfigError(f'run_fn must be a module path "package.module.function", got '
                        f'{self.run_fn!r} (TrainConfig.run_fn).')
    if not isinstance(self.use_balance_weights, bool):
      raise ConfigError(f'use_balance_weights must be True or False, got '
                        f'{self.use_balance_weights!r}.')

  def with_options(self, train_steps: Optional[int] = None,
                   min_accuracy: Optional[float] = None) -> 'TrainConfig':
    """This config with the command line's --train-steps / --min-accuracy when given (epochs
    capped at the steps)."""
    changes: Dict[str, Any] = {}
    if train_steps is not None:
      changes['train_steps'] = train_steps
      if isinstance(train_steps, int) and 0 < train_steps < self.epochs:
        changes['epochs'] = train_steps
    if min_accuracy is not None:
      changes.update(min_accuracy=min_accuracy)
    return dataclasses.replace(self, **changes)

  def to_custom_config(self) -> Dict[str, Any]:
    """The hyperparameters run_fn reads (steps go to TrainArgs/EvalArgs instead)."""
    return {k: getattr(self, k) for k in HYPERPARAMETER_KEYS}


@dataclasses.dataclass(frozen=True)
class Hyperparameters:
  """What run_fn reads from custom_config: TrainConfig's hyperparameters, plus class weights
  and class names when given (by the pipeline's Trainer executor, or by hand with the stock
  Trainer)."""
  batch_size: int = TrainConfig.batch_size
  learning_rate: float = TrainConfig.learning_rate
  filters: int = TrainConfig.filters
  mask_loss_weight: float = TrainConfig.mask_loss_weight
  epochs: int = TrainConfig.epochs
  seed: int = TrainConfig.seed
  shuffle_buffer: int = TrainConfig.shuffle_buffer
  precision: str = TrainConfig.precision
  class_weights: Optional[Dict[int, float]] = None
  class_names: Optional[Dict[int, str]] = None

  def __post_init__(self):
    # The same checks as TrainConfig (steps are not part of custom_config: any valid count).
    steps = self.epochs if isinstance(self.epochs, int) and self.epochs > 0 else 1
    TrainConfig(train_steps=steps, **{k: getattr(self, k) for k in HYPERPARAMETER_KEYS})
    if self.class_weights is not None:
      object.__setattr__(self, 'class_weights', parse_class_weights(self.class_weights))
    if self.class_names is not None:
      object.__setattr__(self, 'class_names', _parse_class_names(self.class_names))

  @classmethod
  def from_custom_config(cls, custom_config: Optional[Mapping[str, Any]]) -> 'Hyperparameters':
    custom_config = dict(custom_config or {})
    known = HYPERPARAMETER_KEYS + (CLASS_WEIGHTS_KEY, CLASS_NAMES_KEY)
    unknown = sorted(set(custom_config) - set(known))
    if unknown:
      raise ConfigError(f'unknown custom_config keys {unknown} for the cxr-tfx trainer; it '
                        f'takes {list(known)}.')
    return cls(**custom_config)


def parse_class_weights(value: Any) -> Dict[int, float]:
  """{label: weight} from a JSON string or a mapping with int or decimal-string keys.

  Every weight must be a finite number >= 0 (ClassBalance gives 0 to a class with no training
  example), at least one > 0, and the labels 0..K-1 for some K (ConfigError naming the
  problem otherwise).
  """
  source = value
  if isinstance(value, (str, bytes)):
    try:
      value = json.loads(value)
    except ValueError as e:
      raise ConfigError(f'class_weights is not valid JSON ({e}): {source!r}') from None
  if not isinstance(value, Mapping) or not value:
    raise ConfigError(f'class_weights must be a non-empty {{label: weight}} mapping, got '
                      f'{source!r}.')
  weights = {}
  for key, weight in value.items():
    try:
      label = int(key)
    except (TypeError, ValueError):
      raise ConfigError(f'class_weights: label {key!r} is not an integer.') from None
    if (isinstance(weight, bool) or not isinstance(weight, (int, float))
        or not math.isfinite(weight) or weight < 0):
      raise ConfigError(f'class_weights: weight {weight!r} of label {label} must be a finite '
                        'number >= 0.')
    weights[label] = float(weight)
  if sorted(weights) != list(range(len(weights))):
    raise ConfigError(f'class_weights: labels must be 0..K-1, got {sorted(weights)}.')
  if not any(weights.values()):
    raise ConfigError(f'class_weights: every weight is 0 ({source!r}): nothing would train.')
  return weights


def _parse_class_names(value: Mapping[Any, str]) -> Dict[int, str]:
  try:
    names = {int(k): str(v) for k, v in dict(value).items()}
  except (TypeError, ValueError):
    raise ConfigError(f'class_names must be a {{label: name}} mapping, got {value!r}.') from None
  if sorted(names) != list(range(len(names))) or not names:
    raise ConfigError(f'class_names: labels must be 0..K-1, got {sorted(names)}.')
  return names


def class_weights_to_json(weights: Mapping[int, float]) -> str:
  """The form ClassBalance publishes and custom_config carries: {"<label>": weight}."""
  return json.dumps({str(k): float(v) for k, v in sorted(parse_class_weights(weights).items())},
                    sort_keys=True)


def class_weight_list(weights: Optional[Mapping[int, float]], num_classes: int
                      ) -> Optional[List[float]]:
  """Weights indexed by label, checked against the number of classes; None for unweighted."""
  if weights is None:
    return None
  weights = parse_class_weights(weights)
  if len(weights) != num_classes:
    raise ConfigError(f'class_weights has {len(weights)} labels but the data has {num_classes} '
                      'classes; the weights must come from the same class mapping.')
  return [weights[k] for k in range(num_classes)]
