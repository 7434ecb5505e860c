"""TrainConfig / Hyperparameters validation, custom_config round trip, and the ClassBalance
class-weights contract as the Trainer's executor applies it (real TFX artifacts)."""
import json

import pytest

from components.trainer import config as config_lib
from components.trainer.config import ConfigError
from components.trainer.config import Hyperparameters
from components.trainer.config import TrainConfig


def test_hyperparameters_round_trip_through_custom_config_json():
  config = TrainConfig(batch_size=4, learning_rate=0.01, filters=4, mask_loss_weight=0.5,
                       epochs=2, seed=3, shuffle_buffer=16)
  custom_config = json.loads(json.dumps(config.to_custom_config()))  # as TFX stores it
  hparams = Hyperparameters.from_custom_config(custom_config)
  assert (hparams.batch_size, hparams.learning_rate, hparams.filters, hparams.mask_loss_weight,
          hparams.epochs, hparams.seed, hparams.shuffle_buffer) == (4, 0.01, 4, 0.5, 2, 3, 16)
  assert hparams.class_weights is None and hparams.class_names is None
  assert 'train_steps' not in custom_config and 'min_accuracy' not in custom_config
  assert Hyperparameters.from_custom_config(None) == Hyperparameters()


@pytest.mark.parametrize('kwargs, option', [
    (dict(train_steps=0), '--train-steps'),
    (dict(train_steps=True), '--train-steps'),
    (dict(min_accuracy=1.5), '--min-accuracy'),
    (dict(min_accuracy=float('nan')), '--min-accuracy'),
    (dict(learning_rate=0), 'learning_rate'),
    (dict(batch_size=2.0), 'batch_size'),
    (dict(epochs=5, train_steps=3), '--train-steps'),
    (dict(seed=-1), 'seed'),
    (dict(use_balance_weights='yes'), 'use_balance_weights'),
    (dict(run_fn='run_fn'), 'package.module.function'),
    (dict(run_fn='my models.run_fn'), 'package.module.function'),
    (dict(majority_margin=-0.1), '--majority-margin'),
    (dict(majority_margin=1.5), '--majority-margin'),
    (dict(max_regression=-0.01), '--max-regression'),
    (dict(precision='float16'), '--precision'),
])
def test_bad_options_say_what_and_which_option(kwargs, option):
  with pytest.raises(ConfigError, match=option.replace('-', r'\-')):
    TrainConfig(**kwargs)


def test_the_blessing_defaults_and_precision_travel_as_documented():
  config = TrainConfig()
  assert (config.majority_margin, config.min_accuracy, config.max_regression) == (0.1, 0.0, 0.0)
  assert config_lib.TOP_CLASS_SHARE_LIMIT == 0.95
  assert 'majority_margin' not in config.to_custom_config()  # the Evaluator's, not run_fn's
  custom = TrainConfig(precision='mixed_float16').to_custom_config()
  assert Hyperparameters.from_custom_config(custom).precision == 'mixed_float16'


def test_command_line_overrides():
  assert TrainConfig().with_options(train_steps=7).train_steps == 7
  assert TrainConfig(train_steps=2).epochs == 2  # the default 4 epochs, capped: one per step
  assert TrainConfig(epochs=4, train_steps=8).with_options(train_steps=2).epochs == 2
  assert TrainConfig().with_options(min_accuracy=0.5).min_accuracy == 0.5
  assert TrainConfig().with_options() == TrainConfig()
  with pytest.raises(ConfigError, match='--train-steps'):
    TrainConfig().with_options(train_steps=-1)


def test_unknown_custom_config_keys_are_named():
  with pytest.raises(ConfigError, match=r"\['batchsize'\]"):
    Hyperparameters.from_custom_config({'batchsize': 8})


def test_class_weights_parse_from_json_and_mappings():
  assert config_lib.parse_class_weights('{"1": 2, "0": 0.5}') == {0: 0.5, 1: 2.0}
  assert config_lib.parse_class_weights({0: 1, 1: 3.0}) == {0: 1.0, 1: 3.0}
  assert json.loads(config_lib.class_weights_to_json({1: 2, 0: 1})) == {'0': 1.0, '1': 2.0}
  assert config_lib.class_weight_list({'1': 2, '0': 1}, 2) == [1.0, 2.0]
  assert config_lib.class_weight_list(None, 4) is None
  assert config_lib.parse_class_weights('{"0": 0, "1": 2}') == {0: 0.0, 1: 2.0}  # no examples
  for bad, match in (('{"0": 1', 'not valid JSON'), ('{}', 'non-empty'),
                     ('{"a": 1}', "label 'a'"), ('{"0": -1}', '>= 0'), ('{"0": "x"}', '>= 0'),
                     ('{"0": 0, "1": 0}', 'every weight is 0'),
                     ('{"0": 1, "2": 1}', '0..K-1'), ('[1, 2]', 'mapping')):
    with pytest.raises(ConfigError, match=match):
      config_lib.parse_class_weights(bad)
  with pytest.raises(ConfigError, match='same class mapping'):
    config_lib.class_weight_list({0: 1.0, 1: 1.0}, 4)


def _balance_artifact(weights_json=None):
  """ClassBalance's output artifact as its executor publishes it."""
  from tfx.types import standard_artifacts

  from components.class_balance import spec as balance_spec
  artifact = standard_artifacts.ExampleAnomalies()
  artifact.uri = '/tmp/unused-balance'
  if weights_json is not None:
    artifact.set_string_custom_property(balance_spec.CLASS_WEIGHTS_PROPERTY, weights_json)
  return artifact


def test_executor_reads_class_balance_weights_when_present():
  from components.trainer import executor
  published = _balance_artifact('{"0": 1.5, "1": 0.5, "2": 4.0, "3": 1.0}')
  assert executor.balance_class_weights([published]) == {0: 1.5, 1: 0.5, 2: 4.0, 3: 1.0}
  assert executor.balance_class_weights([_balance_artifact()]) is None  # not published
  assert executor.balance_class_weights([]) is None  # not wired (use_balance_weights=False)
  with pytest.raises(ConfigError, match='>= 0'):
    executor.balance_class_weights([_balance_artifact('{"0": -1}')])

  base = json.dumps(TrainConfig().to_custom_config())
  merged = json.loads(executor.with_class_weights(base, {0: 1.5, 1: 0.5}))
  assert merged[config_lib.CLASS_WEIGHTS_KEY] == {'0': 1.5, '1': 0.5}
  assert Hyperparameters.from_custom_config(merged).class_weights == {0: 1.5, 1: 0.5}
  assert config_lib.CLASS_WEIGHTS_KEY not in json.loads(executor.with_class_weights(base, None))
  explicit = json.dumps({config_lib.CLASS_WEIGHTS_KEY: {'0': 9.0, '1': 1.0}})
  assert json.loads(executor.with_class_weights(explicit, {0: 1.5, 1: 0.5}))[
      config_lib.CLASS_WEIGHTS_KEY] == {'0': 9.0, '1': 1.0}  # set by hand: kept
