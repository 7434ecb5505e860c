"""Span patterns: the TF-free resolver (spans.py) against TFX's own (FileBasedInputProcessor),
and the component's refusals of options it cannot honour."""
import os

from hypothesis import given
from hypothesis import HealthCheck
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components.image_example_gen import spans


def _touch(path):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'w') as f:
    f.write('image_path,mask_path,class\n')


def _tfx_resolve(pattern, span=None):
  """TFX's driver logic: (span, version, the matched file)."""
  import glob

  from tfx.components.example_gen import input_processor
  from tfx.proto import example_gen_pb2
  from tfx.proto import range_config_pb2
  base, rel = spans.split_pattern(pattern)
  splits = [example_gen_pb2.Input.Split(name='index', pattern=rel)]
  range_config = (range_config_pb2.RangeConfig(static_range=range_config_pb2.StaticRange(
      start_span_number=span, end_span_number=span)) if span is not None else None)
  processor = input_processor.FileBasedInputProcessor(base, splits, range_config)
  got_span, got_version = processor.resolve_span_and_version()
  resolved = processor.get_pattern_for_span_version(rel, got_span, got_version)
  return got_span, got_version, glob.glob(os.path.join(base, resolved))


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sets(st.integers(min_value=0, max_value=60), min_size=1, max_size=6),
       st.booleans(), st.booleans(), st.data())
def test_resolve_agrees_with_tfx(tmp_path_factory, span_set, with_version, in_folder, data):
  root = str(tmp_path_factory.mktemp('spans'))
  if in_folder:
    pattern = os.path.join(root, 'week-{SPAN}', 'v{VERSION}' if with_version else 'x', 'index.csv')
  else:
    pattern = os.path.join(root, 'index-{SPAN}' + ('-v{VERSION}' if with_version else '') + '.csv')
  for s in span_set:
    versions = data.draw(st.sets(st.integers(0, 5), min_size=1, max_size=3)) if with_version else [None]
    for v in versions:
      path = pattern.replace('{SPAN}', str(s))
      _touch(path.replace('{VERSION}', str(v)) if v is not None else path)
  asked = data.draw(st.one_of(st.none(), st.sampled_from(sorted(span_set))))
  mine = spans.resolve(pattern, asked)
  tfx_span, tfx_version, matched = _tfx_resolve(pattern, asked)
  assert (mine.span, mine.version, [mine.path]) == (tfx_span, tfx_version, matched)


def test_padded_span_and_dates(tmp_path):
  for name in ('index-007.csv', 'index-012.csv'):
    _touch(str(tmp_path / name))
  got = spans.resolve(str(tmp_path / 'index-{SPAN:3}.csv'))
  assert (got.span, os.path.basename(got.path)) == (12, 'index-012.csv')
  for name in ('2026-11-19/index.csv', '2026-11-26/index.csv'):
    _touch(str(tmp_path / 'd' / name))
  got = spans.resolve(str(tmp_path / 'd' / '{YYYY}-{MM}-{DD}' / 'index.csv'))
  assert got.span == spans.date_to_span(2026, 11, 26)


def test_errors_name_the_spans_found_and_the_option(tmp_path):
  for s in (1, 2, 3):
    _touch(str(tmp_path / f'index-{s}.csv'))
  with pytest.raises(spans.SpanError, match=r'no CSV for span 7 \(spans found: 1, 2, 3\).*--span'):
    spans.resolve(str(tmp_path / 'index-{SPAN}.csv'), 7)
  with pytest.raises(spans.SpanError, match='no CSV matches'):
    spans.resolve(str(tmp_path / 'other-{SPAN}.csv'))
  with pytest.raises(spans.SpanError, match='only one'):
    spans.check_pattern('a-{SPAN}-{SPAN}.csv')
  with pytest.raises(spans.SpanError, match='needs a {SPAN}'):
    spans.check_pattern('a-{VERSION}.csv')


@pytest.mark.parametrize('names, pattern', [
    (('index-1.csv', 'index-2x.csv'), 'index-{SPAN}.csv'),   # issue #29: a traceback in `run`
    (('index-007.csv', 'index-12.csv'), 'index-{SPAN:3}.csv'),
    (('2026-11-19/index.csv', '2026-13-40/index.csv'), '{YYYY}-{MM}-{DD}/index.csv'),
])
def test_a_file_the_pattern_globs_but_cannot_read_is_refused_as_tfx_refuses_it(
    tmp_path, names, pattern):
  """TFX's driver fails on a folder where the pattern's wildcard matches a file with no span
  number (or date); resolve refuses it first, naming the file and --csv (validate used to say
  OK and `run` to end in TFX's traceback)."""
  for name in names:
    _touch(str(tmp_path / name))
  with pytest.raises(spans.SpanError, match=rf"{names[1]} matches the pattern's wildcard.*--csv"):
    spans.resolve(str(tmp_path / pattern))
  with pytest.raises(ValueError):
    _tfx_resolve(str(tmp_path / pattern), None)


def test_split_pattern_keeps_spec_folders_in_the_pattern():
  assert spans.split_pattern('/d/w-{SPAN}/index.csv') == ('/d', 'w-{SPAN}/index.csv')
  assert spans.split_pattern('/d/index-{SPAN}.csv') == ('/d', 'index-{SPAN}.csv')
  assert spans.split_pattern('gs://b/x/{SPAN}/v{VERSION}/i.csv') == ('gs://b/x',
                                                                    '{SPAN}/v{VERSION}/i.csv')


def test_component_refuses_span_options_it_cannot_honour(tmp_path):
  from tfx.orchestration import data_types
  from tfx.proto import range_config_pb2

  from components.image_example_gen.component import ImageExampleGen
  from components.image_example_gen.config import ConfigError
  mapping = {'a': 0, 'b': 1}
  plain, pattern = str(tmp_path / 'index.csv'), str(tmp_path / 'index-{SPAN}.csv')
  cases = [
      (dict(csv_path=plain, span=2), 'need a span pattern'),
      (dict(csv_path=pattern, span=2, range_config=range_config_pb2.RangeConfig()),
       'not both'),
      (dict(csv_path=pattern, span=-1), 'span must be an int >= 0'),
      (dict(csv_path=pattern, range_config=range_config_pb2.RangeConfig(
          static_range=range_config_pb2.StaticRange(start_span_number=1, end_span_number=3))),
       'must be equal'),
      (dict(csv_path=pattern, range_config=range_config_pb2.RangeConfig(
          rolling_range=range_config_pb2.RollingRange(num_spans=3))), 'single span'),
      (dict(csv_path=pattern, group_column='patient', group_assignment='balanced'),
       'spans need .stable'),
      (dict(csv_path=data_types.RuntimeParameter(name='csv_uri', ptype=str, default=pattern)),
       'cannot be a runtime parameter'),
      (dict(csv_path=str(tmp_path / 'a-{VERSION}.csv')), 'needs a {SPAN}'),
  ]
  for kwargs, message in cases:
    with pytest.raises(ConfigError, match=message):
      ImageExampleGen(class_mapping=mapping, **kwargs)
  # What it accepts: the pattern split for TFX's driver, the span as a StaticRange, and the
  # stable group assignment by default.
  gen = ImageExampleGen(csv_path=str(tmp_path / 'w-{SPAN}' / 'index.csv'), class_mapping=mapping,
                        span=4, group_column='patient')
  props = gen.exec_properties
  assert props['input_base'] == str(tmp_path)
  assert 'w-{SPAN}/index.csv' in str(props['input_config'])
  assert '"start_span_number": 4' in props['range_config']
  assert props['group_assignment'] == 'stable'
  assert props['csv_uri'] == ''
  assert ImageExampleGen(csv_path=plain, class_mapping=mapping,
                         group_column='patient').exec_properties['group_assignment'] == 'balanced'
