"""CSV index parsing and checking (pure parsing + real files for existence)."""

import pytest

from components.image_example_gen import index
from components.image_example_gen.config import ConfigError
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import load_class_mapping_text
from components.image_example_gen.config import parse_splits
from components.image_example_gen.config import SplitSpec

MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
HEADER = 'image_path,mask_path,class\n'


def parse(text, csv_dir='/data/set'):
  checked = index.parse_index(text, csv_dir, MAPPING, csv_path='/data/set/index.csv')
  assert checked.rows_in == len(checked.rows) + len(checked.quarantined)
  return checked.rows


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
  rows = index.parse_index(HEADER + 'a/../b/c.png,,COVID\n', 'gs://bkt/set', MAPPING).rows
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


def test_bad_rows_become_problems_with_line_path_and_reason():
  checked = index.parse_index(
      HEADER + 'a.png,,COVID\n'
      'b.png,,Covid\n'          # typo
      'a.png,,Normal\n'         # duplicate key
      ',,Normal\n'              # no image
      'c.png,,Normal,extra\n',  # too many fields
      '/d', MAPPING)
  assert [r.image_id for r in checked.rows] == ['a.png']
  assert checked.rows_in == 5
  got = [str(p) for p in checked.quarantined]
  assert got == [
      "line 3: unknown class: 'Covid' is not in the class mapping "
      "['COVID', 'Lung_Opacity', 'Normal', 'Viral Pneumonia'] (b.png)",
      "line 4: duplicate image_id: 'a.png' is also on line 2 (a.png)",
      'line 5: no image path: the image_path column is empty',
      'line 6: bad row: more fields than the header has (c.png)']


def test_fail_policy_lists_every_bad_row_and_totals_before_writing(tmp_path):
  csv_path = tmp_path / 'index.csv'
  csv_path.write_text(HEADER + ''.join(f'missing-{i}.png,,Nope\n' for i in range(25)))
  checked = index.read_index(str(csv_path), MAPPING)
  assert (checked.rows_in, len(checked.rows), len(checked.quarantined)) == (25, 0, 25)
  with pytest.raises(index.IndexValidationError) as e:
    index.fail_on_problems(str(csv_path), checked, checked.quarantined)
  msg = str(e.value)
  assert '25 of 25 rows are bad and nothing was written' in msg
  assert '--on-bad-record quarantine' in msg
  assert "line 2: unknown class: 'Nope'" in msg and '... and 5 more' in msg
  assert 'totals: unknown class: 25' in msg


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
  with pytest.raises(ConfigError, match=r"gives the class 'a' twice \(labels 0 and 1\)"):
    load_class_mapping_text('{"a": 0, "b": 1, "a": 1}')
  with pytest.raises(ConfigError, match='seed must be an int'):
    IngestConfig(MAPPING, seed='1')


def test_group_column_is_read_required_and_never_empty():
  checked = index.parse_index('image_path,mask_path,class,patient_id\n'
                              'a.png,,COVID,p1\nb.png,,Normal,p1\nc.png,,Normal,\n', '/d', MAPPING,
                              group_column='patient_id')
  assert [(r.image_id, r.group) for r in checked.rows] == [('a.png', 'p1'), ('b.png', 'p1')]
  assert [str(p) for p in checked.quarantined] == [
      "line 4: no group: the 'patient_id' column is empty (c.png)"]
  with pytest.raises(index.IndexValidationError,
                     match=r"missing column\(s\) \['patient_id'\].*--group-column"):
    index.parse_index(
        HEADER + 'a.png,,COVID\n', '/d', MAPPING, group_column='patient_id')


def test_the_launcher_checks_allowed_roots_by_name_without_touching_files(tmp_path):
  """No file exists here: the rule is on names (normalised paths, URI prefixes) only."""
  csv_path = tmp_path / 'index.csv'
  csv_path.write_text(HEADER + 'a.png,,COVID\n../elsewhere/b.png,,COVID\n'
                      '/etc/passwd,,COVID\nsub/../c.png,sub/../../d.png,Normal\n'
                      'gs://bucket/data/e.png,,COVID\ngs://bucket/other/f.png,,COVID\n')
  checked = index.read_index(str(csv_path), MAPPING)
  assert [r.line for r in checked.rows] == [2]
  assert [p.line for p in checked.quarantined] == [3, 4, 5, 6, 7]
  assert 'outside allowed roots: the mask is outside' in str(checked.quarantined[2])
  checked = index.read_index(str(csv_path), MAPPING,
                             allowed_roots=[str(tmp_path), 'gs://bucket/data'])
  assert [r.line for r in checked.rows] == [2, 6]


def test_map_in_threads_keeps_order_in_chunks_and_inline():
  from components.image_example_gen.fingerprint import map_in_threads
  items = list(range(1000))
  assert map_in_threads(lambda x: x * x, items, 4) == [x * x for x in items]
  assert map_in_threads(lambda x: -x, items, 1) == [-x for x in items]
  assert map_in_threads(lambda x: x, [], 16) == []
