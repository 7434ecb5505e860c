"""The span resolvers' selection on real TFX Examples artifacts (span/version custom properties
as TFX's driver records them): anchored on the current span, the newest artifact per span.
The ML Metadata walk (``published_alongside``) runs in tests/pipeline/test_spans.py."""
import pytest

from components.image_example_gen import span_resolvers as sr


def _examples(artifact_id, span, version=None):
  from tfx.types import standard_artifacts
  a = standard_artifacts.Examples()
  a.id = artifact_id
  a.set_int_custom_property('span', span)
  if version is not None:
    a.set_int_custom_property('version', version)
  return a


def _ids(artifacts):
  return [a.id for a in artifacts]


def test_previous_spans_are_below_the_current_span_newest_each():
  history = [_examples(1, 1), _examples(2, 2), _examples(3, 3), _examples(4, 2),  # 4 redoes 2
             _examples(6, 0)]
  # Rerunning span 2 after span 3 exists still compares with the spans before 2 only.
  assert _ids(sr.previous_spans(_examples(4, 2), history)) == [6, 1]
  assert sr.previous_spans(_examples(6, 0), history) == []
  assert _ids(sr.previous_spans(_examples(3, 3), history)) == [6, 1, 4]  # span 2: newest, 4


def test_versions_beat_recency_within_a_span():
  history = [_examples(1, 1, version=2), _examples(2, 1, version=1), _examples(3, 1, version=2)]
  assert sr.newest_per_span(history)[1].id == 3
  assert sr.newest_per_span(history[:2])[1].id == 1


def test_span_window_keeps_the_current_artifact_and_n_minus_1_earlier_spans():
  history = [_examples(i, s) for i, s in ((1, 1), (2, 2), (3, 4), (4, 5), (5, 9))]
  current = history[3]
  assert _ids(sr.span_window(current, history, 3)) == [2, 3, 4]  # spans 2, 4, 5; never 9
  assert _ids(sr.span_window(current, history, 1)) == [4]
  assert _ids(sr.span_window(current, history, 10)) == [1, 2, 3, 4]
  with pytest.raises(ValueError, match='--train-spans'):
    sr.SpanWindowStrategy(num_spans=0)
