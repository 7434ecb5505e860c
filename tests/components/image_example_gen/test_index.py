"""CSV index parsing and checking (pure parsing + real files for existence)."""
import os

import pytest

from components.image_example_gen import index
from components.image_example_gen.config import (ConfigError, IngestConfig, SplitSpec,
                                                 load_class_mapping_text, parse_splits)

MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
HEADER = 'image_path,mask_path,class\n'


def parse(text, csv_dir='/data/set'):
  return index.parse_index(text, csv_dir, MAPPING, csv_path='/data/set/index.csv')


def test_relative_paths_resolve_against_the_csv_folder_and_spaces_survive():
  rows = parse(HEADER + 'DS/Viral Pneumonia/images/Viral Pneumonia-1.png,'
               'DS/Viral Pneumonia/masks/Viral Pneumonia-1.png,Viral Pneumonia\n'
               '/abs/x.png,,Normal\n'
               'gs://bucket/y.png,,COVID\n')
  assert rows[0].image_path == '/data/set/DS/Viral Pneumonia/images/Viral Pneumonia-1.png'
  assert rows[0].mask_path == '/data/set/DS/Viral Pneumonia/masks/Viral Pneumonia-1.png'
  assert (rows[0].label, rows[0].class_name, rows[0].line) == (2, 'Viral Pneumonia', 2)
  assert rows[0].image_id == 'DS/Viral Pneumonia/images/Viral Pneumonia-1.png'
  assert (rows[1].image_path, rows[1].mask_path) == ('/abs/x.png', '')
  assert rows[2].image_path == 'gs://bucket/y.png'


def test_relative_paths_resolve_against_a_bucket_folder():
  rows = index.parse_index(HEADER + 'a/../b/c.png,,COVID\n', 'gs://bkt/set', MAPPING)
  assert rows[0].image_path == 'gs://bkt/set/b/c.png'
  assert rows[0].image_id == 'b/c.png'


def test_image_id_column_wins_over_the_path():
  rows = parse('image_id,image_path,mask_path,class\npatient7-a,x.png,,COVID\n')
  assert rows[0].image_id == 'patient7-a'


def test_missing_column_names_what_is_needed():
  with pytest.raises(index.IndexValidationError, match=r"missing column\(s\) \['mask_path'\]"):
    parse('image_path,class\nx.png,COVID\n')


def test_empty_csv_and_header_only_are_errors():
  with pytest.raises(index.IndexValidationError, match='missing column'):
    parse('')
  with pytest.raises(index.IndexValidationError, match='header but no rows'):
    parse(HEADER)


def test_every_bad_row_is_listed_with_line_path_and_reason():
  with pytest.raises(index.IndexValidationError) as e:
    parse(HEADER + 'a.png,,COVID\n'
          'b.png,,Covid\n'          # typo
          'a.png,,Normal\n'         # duplicate key
          ',,Normal\n'              # no image
          'c.png,,Normal,extra\n')  # too many fields
  msg = str(e.value)
  assert "line 3: unknown class: 'Covid' is not in the class mapping" in msg and '(b.png)' in msg
  assert "line 4: duplicate image_id: 'a.png' is also on line 2 (a.png)" in msg
  assert 'line 5: no image path' in msg
  assert 'line 6: bad row: more fields than the header has' in msg
  assert [p.line for p in e.value.problems] == [3, 4, 5, 6]
  assert 'totals:' in msg


def test_missing_files_are_found_with_their_rows(tmp_path):
  (tmp_path / 'img').mkdir()
  (tmp_path / 'img' / 'a.png').write_bytes(b'x')
  csv_path = tmp_path / 'index.csv'
  csv_path.write_text(HEADER + 'img/a.png,img/a-mask.png,COVID\nimg/b.png,,Normal\n')
  with pytest.raises(index.IndexValidationError) as e:
    index.read_index(str(csv_path), MAPPING)
  msg = str(e.value)
  assert f"line 2: missing file: mask not found ({tmp_path / 'img' / 'a-mask.png'})" in msg
  assert f"line 3: missing file: image not found ({tmp_path / 'img' / 'b.png'})" in msg


def test_missing_csv_names_the_option(tmp_path):
  with pytest.raises(index.IndexValidationError, match='does not exist.*--csv'):
    index.read_index(str(tmp_path / 'nope.csv'), MAPPING)


def test_split_and_mapping_options_are_validated_with_the_option_named():
  assert parse_splits('train=8,eval=1,test=1') == (
      SplitSpec('train', 8), SplitSpec('eval', 1), SplitSpec('test', 1))
  with pytest.raises(ConfigError, match='--splits'):
    parse_splits('train=8,eval')
  with pytest.raises(ConfigError, match='needs at least 1 shard'):
    parse_splits('train=0')
  with pytest.raises(ConfigError, match='given twice'):
    parse_splits('a=1,a=2')
  with pytest.raises(ConfigError, match=r'exactly 0\.\.1'):
    load_class_mapping_text('{"a": 0, "b": 2}')
  with pytest.raises(ConfigError, match='not valid JSON'):
    load_class_mapping_text('{a: 0}')
  with pytest.raises(ConfigError, match='seed must be an int'):
    IngestConfig(MAPPING, seed='1')
