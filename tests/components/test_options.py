"""Options as data (components/options.py): every option is one field, and the spec, the
executor's parsing, the exec properties and the command line all derive from it. Pure: no
TensorFlow (the spec checks import TFX's spec classes only)."""
import argparse
import dataclasses

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components import options
from components.class_balance.config import BalanceConfig
from components.errors import ConfigError
from components.image_example_gen import config as config_lib
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import SplitSpec
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig

CONFIGS = (IngestConfig, BalanceConfig, TransformConfig, TrainConfig)
MAPPING = {'COVID': 0, 'Normal': 1}


def _config(config_class, **values):
  return config_class(class_mapping=MAPPING, **values) if config_class is IngestConfig \
      else config_class(**values)


@pytest.mark.parametrize('config_class', CONFIGS)
def test_every_field_is_an_option_with_a_help_line(config_class):
  declared = {f.name for f in dataclasses.fields(config_class)}
  described = {f.name: o for f, o in options.options_of(config_class)}
  assert set(described) == declared
  assert all(o.help and not o.help.endswith('.') for o in described.values())


@pytest.mark.parametrize('config_class', CONFIGS)
def test_flags_are_unique_and_spelled_from_the_field(config_class):
  flags = [o.flag for _, o in options.options_of(config_class) if o.flag]
  assert len(flags) == len(set(flags))
  for f, o in options.options_of(config_class):
    if o.flag and not o.repeat:  # a repeated flag is singular: --allowed-root for allowed_roots
      assert o.flag == '--' + f.name.replace('_', '-'), (f.name, o.flag)


@pytest.mark.parametrize('config_class', CONFIGS)
def test_the_command_line_defaults_are_the_dataclass_defaults(config_class):
  parser = argparse.ArgumentParser()
  options.add_arguments(parser, config_class)
  assert options.from_args(config_class, parser.parse_args([]),
                           **({'class_mapping': MAPPING} if config_class is IngestConfig
                              else {})) == _config(config_class)


def test_ingest_flags_give_the_config_the_fields_describe(tmp_path):
  parser = argparse.ArgumentParser()
  options.add_arguments(parser, IngestConfig)
  args = parser.parse_args([
      '--splits', 'train=3,test=1', '--seed', '7', '--allowed-root', str(tmp_path),
      '--allowed-root', 'gs://bucket/x', '--max-pixels', '100', '--fresh-splits',
      '--mask-check', 'fail', '--dicom-window', '40,400', '--allow-burned-in'])
  config = options.from_args(IngestConfig, args, class_mapping=MAPPING)
  assert config.splits == (SplitSpec('train', 3), SplitSpec('test', 1))
  assert config.seed == 7 and config.max_pixels == 100 and config.fresh_splits
  assert config.allowed_roots == (str(tmp_path), 'gs://bucket/x')
  assert (config.mask_check, config.dicom_window, config.allow_burned_in) == ('fail', '40,400',
                                                                             True)
  with pytest.raises(SystemExit):  # argparse refuses a value outside the field's choices
    parser.parse_args(['--verify', 'pixels'])


def test_relative_paths_become_absolute_uris_stay(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  parser = argparse.ArgumentParser()
  options.add_arguments(parser, IngestConfig)
  config = options.from_args(IngestConfig, parser.parse_args(
      ['--split-manifest', 'm.json', '--allowed-root', 'gs://b/x']), class_mapping=MAPPING)
  assert config.split_manifest == str(tmp_path / 'm.json')
  assert config.allowed_roots == ('gs://b/x',)


ingest_configs = st.builds(
    IngestConfig,
    class_mapping=st.dictionaries(st.text('abcXYZ _-', min_size=1, max_size=6), st.none(),
                                  min_size=1, max_size=4).map(
                                      lambda d: {k: i for i, k in enumerate(sorted(d))}),
    splits=st.lists(st.sampled_from(['train', 'eval', 'test', 'holdout']), min_size=1,
                    max_size=4, unique=True).flatmap(
                        lambda names: st.tuples(*[st.tuples(st.just(n), st.integers(1, 9))
                                                  for n in names])),
    seed=st.integers(-5, 2**31), on_bad_record=st.sampled_from(config_lib.ON_BAD_RECORD_CHOICES),
    allowed_roots=st.lists(st.sampled_from(['/data', 'gs://b/x', '/mnt/a b']), max_size=3,
                           unique=True).map(tuple),
    max_pixels=st.integers(1, 10**9), group_column=st.sampled_from(['', 'patient_id']),
    duplicates=st.sampled_from(config_lib.DUPLICATES_CHOICES),
    verify=st.sampled_from(config_lib.VERIFY_CHOICES),
    mask_check=st.sampled_from(config_lib.MASK_CHECK_CHOICES),
    mask_size=st.sampled_from(['', '256x256']),
    dicom_window=st.sampled_from(['auto', 'none', '40,400']),
    dicom_output=st.sampled_from(config_lib.DICOM_OUTPUT_CHOICES),
    allow_burned_in=st.booleans(), group_salt=st.text(max_size=8),
    group_assignment=st.sampled_from(('',) + config_lib.GROUP_ASSIGNMENT_CHOICES),
    split_manifest=st.sampled_from(['', '/m.json']), fingerprint_content=st.booleans())


@settings(max_examples=60, deadline=None)
@given(ingest_configs)
def test_exec_properties_round_trip(config):
  """What a component records is what its executor reads back, for any valid config."""
  encoded = options.to_exec_properties(config)
  assert set(encoded) == set(options.exec_types(IngestConfig))
  assert all(isinstance(v, options.exec_types(IngestConfig)[k]) for k, v in encoded.items())
  assert options.from_exec_properties(IngestConfig, encoded) == config


def test_an_older_execution_without_newer_keys_reads_as_the_defaults():
  """Keys recorded before an option existed (or '' where TFX stored nothing) take today's
  default: stores of earlier versions still load for the cache and `cxr-tfx report`."""
  old = {'class_mapping': '{"COVID": 0, "Normal": 1}', 'splits': 'train=3,test=1', 'seed': 4,
         'on_bad_record': 'fail', 'mask_check': '', 'dicom_window': ''}
  config = options.from_exec_properties(IngestConfig, old)
  assert config == IngestConfig(class_mapping=MAPPING, splits=(('train', 3), ('test', 1)),
                                seed=4)
  assert options.from_exec_properties(BalanceConfig, {'max_linf': 0.05}) == BalanceConfig(
      max_linf=0.05)


@pytest.mark.parametrize('values, message', [
    ({'verify': 'pixels'}, r"verify must be one of \('full', 'header'\), got 'pixels' "
                           r'\(option --verify\)'),
    ({'max_pixels': 0}, r'max_pixels must be an int >= 1, got 0 \(option --max-pixels\)'),
    ({'allow_burned_in': 'yes'}, r"allow_burned_in must be True or False, got 'yes' "
                                 r'\(option --allow-burned-in\)'),
])
def test_errors_name_the_field_the_value_and_the_flag(values, message):
  with pytest.raises(ConfigError, match=message):
    IngestConfig(class_mapping=MAPPING, **values)


def test_an_int_exec_property_must_fit_ml_metadatas_int64():
  """Issue #29: a seed above 2**63 passed validate and crashed the run in ML Metadata."""
  IngestConfig(class_mapping=MAPPING, seed=2**63 - 1)
  with pytest.raises(ConfigError, match=r'seed must fit in 64 bits.*\(option --seed\)'):
    IngestConfig(class_mapping=MAPPING, seed=2**63)
  with pytest.raises(ConfigError, match=r'--max-pixels'):
    IngestConfig(class_mapping=MAPPING, max_pixels=2**64)


def test_a_field_without_a_flag_is_named_as_python_sets_it():
  with pytest.raises(ConfigError, match=r'\(TransformConfig.disable_statistics\)'):
    TransformConfig(disable_statistics='no')


def test_the_specs_parameters_are_the_configs_fields():
  from components.class_balance import spec as balance_spec
  from components.image_example_gen import spec
  for spec_class, config_class in ((spec.ImageExampleGenSpec, IngestConfig),
                                   (balance_spec.ClassBalanceSpec, BalanceConfig)):
    for key, kind in options.exec_types(config_class).items():
      assert spec_class.PARAMETERS[key].type is kind, key
      assert spec_class.PARAMETERS[key].optional, key


def test_group_assignment_default_is_decided_once_by_the_input():
  config = IngestConfig(class_mapping=MAPPING, group_column='patient_id')
  assert config.for_input('data/index-{SPAN}.csv').group_assignment == 'stable'
  assert config.for_input('data/index-{YYYY}{MM}{DD}.csv').group_assignment == 'stable'
  assert config.for_input('data/index.csv').group_assignment == 'balanced'
  chosen = dataclasses.replace(config, group_assignment='balanced')
  assert chosen.for_input('data/index-{SPAN}.csv') is chosen
