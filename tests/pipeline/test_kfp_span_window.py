"""The KFP form of earlier spans, below the harness run (test_kfp_weekly.py): SpanWindow's merge
on tiny real files, and the options that imported spans need, refused when the pipeline is built.
"""
import json
import os

import pytest


def _examples(root, name, splits, span):
  """A tiny Examples folder: two shard files per split and an ingest_summary.json."""
  uri = os.path.join(root, name)
  for split in splits:
    os.makedirs(os.path.join(uri, f'Split-{split}'))
    for shard in range(2):
      with open(os.path.join(uri, f'Split-{split}', f'data_tfrecord-{shard:05d}-of-00002.gz'),
                'w') as f:
        f.write(f'{name} {split} {shard}')
  with open(os.path.join(uri, 'ingest_summary.json'), 'w') as f:
    json.dump({'span': span, 'class_names': {'0': 'COVID'}}, f)
  return uri


def test_the_window_holds_every_spans_shards_oldest_first_and_this_spans_summary(tmp_path):
  from pipeline.pipeline import merge_window
  uris = [_examples(str(tmp_path), f'span{s}', ('train', 'test'), s) for s in (1, 2, 3)]
  out = str(tmp_path / 'window')
  assert merge_window(uris, ['train', 'test'], out) == {'train': 6, 'test': 6}
  files = sorted(os.listdir(os.path.join(out, 'Split-train')))
  assert files == [f'w{i}-data_tfrecord-0000{s}-of-00002.gz' for i in range(3) for s in range(2)]
  with open(os.path.join(out, 'Split-train', 'w1-data_tfrecord-00001-of-00002.gz')) as f:
    assert f.read() == 'span2 train 1'  # copied unchanged
  with open(os.path.join(out, 'ingest_summary.json')) as f:
    assert json.load(f)['span'] == 3  # this span's: the Trainer reads the class names there


def test_an_earlier_span_without_this_spans_splits_is_refused_by_name(tmp_path):
  from components.errors import CxrError
  from pipeline.pipeline import merge_window
  old = _examples(str(tmp_path), 'old', ('train',), 1)
  new = _examples(str(tmp_path), 'new', ('train', 'eval'), 2)
  with pytest.raises(CxrError, match=f"Examples {old} have no Split-eval files.*"
                                     '--window-examples'):
    merge_window([old, new], ['train', 'eval'], str(tmp_path / 'window'))


@pytest.mark.parametrize('options, source, words', [
    (dict(previous_examples='gs://b/prev'), 'gs://b/index.csv',
     'previous_examples and window_examples are earlier spans: they need a span pattern'),
    (dict(window_examples='gs://b/w1'), 'gs://b/index-{SPAN}.csv',
     'window_examples must be a list of URIs'),
    (dict(window_examples=['gs://b/w1'], train_spans=2), 'gs://b/index-{SPAN}.csv',
     'as train_spans .* or as window_examples .*, not both'),
    (dict(window_examples=['gs://b/w'] * 13), 'gs://b/index-{SPAN}.csv', 'at most 12'),
    (dict(previous_examples=' '), 'gs://b/index-{SPAN}.csv', 'must be a non-empty string'),
])
def test_imported_spans_need_what_they_name(options, source, words):
  from components.image_example_gen.config import IngestConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineConfigError
  from pipeline.configs import PipelineOptions
  from pipeline.pipeline import create_pipeline
  with pytest.raises(PipelineConfigError, match=words):
    create_pipeline(PipelineOptions('gs://b/root', span_history=False, **options),
                    DataSource(csv_path=source), IngestConfig({'COVID': 0, 'Normal': 1}))
