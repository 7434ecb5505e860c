"""Shard files sized for the data: the file count, the per-split re-cut, --shard-size (pure)."""
import argparse
import collections
import dataclasses
import hashlib

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components import options
from components.errors import ConfigError
from components.image_example_gen import assignment
from components.image_example_gen import shard_sizing
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.index import IndexRow

SPLITS = (SplitSpec('train', 8), SplitSpec('eval', 1), SplitSpec('test', 1))


def make_rows(class_totals, duplicates=0):
  """Rows with content hashes; ``duplicates`` extra rows repeat earlier rows' images."""
  rows = []
  for label, n in enumerate(class_totals):
    for i in range(n):
      key = f'{label}/{i}.png'
      rows.append(IndexRow(line=len(rows) + 2, image_id=key, image_path=f'/data/{key}',
                           mask_path='', label=label, class_name=f'c{label}',
                           image_sha256=hashlib.sha256(key.encode()).hexdigest()))
  for j in range(min(duplicates, len(rows))):
    rows.append(dataclasses.replace(rows[j], line=len(rows) + 2, image_id=f'copy/{j}.png',
                                    image_path=f'/data/copy/{j}.png'))
  return rows


def layout(shards):
  return [(s.split, s.index, s.num_shards, [r.image_id for r in s.rows]) for s in shards]


def one_split(rows, num_shards):
  """``rows`` cut into ``num_shards`` dealt shards of one split, in the given order."""
  return [assignment.Shard('train', i, num_shards, tuple(rows[i::num_shards]))
          for i in range(num_shards)]


class_totals_st = st.lists(st.integers(min_value=0, max_value=60), min_size=1, max_size=5).filter(
    lambda totals: sum(totals) > 0)


@settings(max_examples=150, deadline=None)
@given(class_totals_st, st.integers(0, 3), st.integers(1, 4), st.data(), st.integers(0, 2**31))
def test_resize_puts_every_row_in_one_of_k_files_with_classes_within_one(
    totals, duplicates, dealt, data, seed):
  rows = make_rows(totals, duplicates)
  k = data.draw(st.integers(1, len(rows)), label='k')
  files = shard_sizing.resize(one_split(rows, min(dealt, len(rows))), k, seed)
  assert [(f.split, f.index, f.num_shards) for f in files] == [('train', j, k) for j in range(k)]
  ids = [r.image_id for f in files for r in f.rows]
  assert sorted(ids) == sorted(r.image_id for r in rows)  # each row exactly once
  assert all(f.rows for f in files)
  sizes = [len(f.rows) for f in files]
  assert max(sizes) - min(sizes) <= 1
  for label in range(len(totals)):
    counts = [f.class_counts().get(label, 0) for f in files]
    assert max(counts) - min(counts) <= 1, (label, counts)
  assert assignment.max_class_deviation(files) < 1


@settings(max_examples=100, deadline=None)
@given(class_totals_st, st.integers(0, 3), st.integers(1, 5), st.data(), st.integers(0, 2**31))
def test_resize_depends_only_on_the_keys_not_on_row_order_dealt_shards_or_paths(
    totals, duplicates, dealt, data, seed):
  rows = make_rows(totals, duplicates)
  k = data.draw(st.integers(1, len(rows)), label='k')
  expected = layout(shard_sizing.resize(one_split(rows, 1), k, seed))
  shuffled = [dataclasses.replace(r, image_path=f'/elsewhere/{i}.png', line=i + 2)
              for i, r in enumerate(data.draw(st.permutations(rows), label='order'))]
  assert layout(shard_sizing.resize(one_split(shuffled, min(dealt, len(rows))), k, seed)) == (
      expected)


def test_files_follow_the_deal_s_write_order_and_another_seed_gives_another_cut():
  rows = make_rows([40, 30, 30])
  files = shard_sizing.resize(one_split(rows, 3), 4, seed=0)
  for f in files:
    assert list(f.rows) == sorted(f.rows, key=lambda r: assignment.rank(
        0, 'order', assignment._order_key(r)))  # pylint: disable=protected-access
  assert layout(shard_sizing.resize(one_split(rows, 3), 4, seed=1)) != layout(files)


@settings(max_examples=60, deadline=None)
@given(class_totals_st, st.integers(1, 40_000), st.integers(0, 2**31))
def test_split_membership_is_the_deal_s_whatever_the_file_counts(totals, target, seed):
  rows = make_rows([t + 10 for t in totals])
  result = assignment.assign(rows, SPLITS, seed)
  sized = shard_sizing.plan(result.shards, target, bytes_of=lambda r: 1000 + r.line)
  files = shard_sizing.resize_all(result.shards, sized.files, seed)
  assert {r.image_id: f.split for f in files for r in f.rows} == (
      {r.image_id: s.split for s in result.shards for r in s.rows})
  assert collections.Counter(f.split for f in files) == sized.files
  assert list(sized.files) == ['train', 'eval', 'test']
  for split, k in sized.files.items():
    assert k == shard_sizing.files_for(sized.bytes[split], sized.rows[split], target)
  # Every file agrees with the split manifest the deal publishes.
  assert {r.image_sha256: (f.split, 0) for f in files for r in f.rows} == result.manifest.images


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**12), st.integers(1, 10**7), st.integers(1, 10**9))
def test_files_for_is_the_ceiling_of_bytes_over_target_capped_by_rows(size, rows, target):
  k = shard_sizing.files_for(size, rows, target)
  assert 1 <= k <= rows
  if k < rows and size:
    assert (k - 1) * target < size <= k * target  # the smallest K whose files fit the target


def test_files_for_examples():
  mib = 2**20
  assert shard_sizing.files_for(1000 * mib, 21165, 256 * mib) == 4
  assert shard_sizing.files_for(256 * mib, 100, 256 * mib) == 1
  assert shard_sizing.files_for(256 * mib + 1, 100, 256 * mib) == 2
  assert shard_sizing.files_for(10**9, 3, 1) == 3  # never more files than rows
  assert shard_sizing.files_for(0, 5, 256 * mib) == 1
  with pytest.raises(ValueError, match='at least 1 byte'):
    shard_sizing.files_for(10, 5, 0)


def test_resize_refuses_more_files_than_rows_and_several_splits():
  rows = make_rows([2, 1])
  with pytest.raises(ValueError, match='3 rows cannot make 4 non-empty files'):
    shard_sizing.resize(one_split(rows, 1), 4, 0)
  mixed = [assignment.Shard('train', 0, 1, tuple(rows[:2])),
           assignment.Shard('eval', 0, 1, tuple(rows[2:]))]
  with pytest.raises(ValueError, match='one split'):
    shard_sizing.resize(mixed, 1, 0)


@pytest.mark.parametrize('text, expected', [
    ('256MiB', 256 * 2**20), ('256 MiB', 256 * 2**20), ('256mib', 256 * 2**20),
    ('500M', 500 * 2**20), ('1GB', 10**9), ('1gb', 10**9), ('1.5GiB', 3 * 2**29),
    ('64K', 65536), ('64KB', 64000), ('2T', 2 * 2**40), ('1TB', 10**12), ('4096', 4096),
    ('4096B', 4096), ('.5K', 512), (' 1G ', 2**30)])
def test_parse_size(text, expected):
  assert shard_sizing.parse_size(text) == expected


@pytest.mark.parametrize('text, reason', [
    ('', 'is not a size'), ('big', 'is not a size'), ('256 MB/s', 'is not a size'),
    ('1e9', 'is not a size'), ('-1M', 'is not a size'), ('1PB', 'is not a size'),
    ('1,5G', 'is not a size'), ('0', 'less than one byte'), ('0.5B', 'less than one byte')])
def test_parse_size_errors_say_what_and_name_the_option(text, reason):
  with pytest.raises(ConfigError, match=reason) as e:
    shard_sizing.parse_size(text)
  assert str(e.value).endswith('(option --shard-size).')
  assert repr(text) in str(e.value)


def test_format_size_and_the_one_line_description():
  assert [shard_sizing.format_size(n) for n in (812, 48230, 256 * 2**20, 3 * 2**29)] == [
      '812 B', '47.1 KiB', '256 MiB', '1.5 GiB']
  sized = shard_sizing.FilePlan(
      256 * 2**20, files={'train': 3, 'eval': 1, 'test': 1},
      rows={'train': 16932, 'eval': 2117, 'test': 2116},
      bytes={'train': 16932 * 48230, 'eval': 2117 * 48230, 'test': 2116 * 48230},
      dealt={'train': 8, 'eval': 1, 'test': 1})
  assert sized.describe() == (
      'shard size 256 MiB: train 3 files, eval 1, test 1 (the splits keep their --splits '
      'weights 8/1/1); 47.1 KiB per record on average, from the check pass')
  assert sized.capped() == []
  assert sized.as_dict()['files'] == {'train': 3, 'eval': 1, 'test': 1}


def test_a_size_below_a_record_gives_one_record_per_file_and_says_so():
  rows = make_rows([3, 2, 1])
  shards = [assignment.Shard('train', 0, 1, tuple(rows[:5])),
            assignment.Shard('eval', 0, 1, tuple(rows[5:]))]
  sized = shard_sizing.plan(shards, 1000, bytes_of=lambda r: 5000)
  assert sized.files == {'train': 5, 'eval': 1}
  assert sized.capped() == ['train', 'eval']
  assert sized.describe('a sample').endswith(
      'from a sample; train, eval: one record per file, the most there can be (records are '
      'larger than --shard-size 1000 B)')


def test_the_option_validates_and_round_trips_through_exec_properties_and_flags():
  mapping = {'a': 0, 'b': 1}
  assert IngestConfig(mapping).shard_size_bytes == 0
  config = IngestConfig(mapping, shard_size='256MiB')
  assert config.shard_size_bytes == 256 * 2**20
  props = options.to_exec_properties(config)
  assert props['shard_size'] == '256MiB'
  assert options.from_exec_properties(IngestConfig, props) == config
  assert options.exec_types(IngestConfig)['shard_size'] is str
  with pytest.raises(ConfigError, match=r"'256 MB/s' is not a size.*option --shard-size"):
    IngestConfig(mapping, shard_size='256 MB/s')
  parser = argparse.ArgumentParser()
  options.add_arguments(parser, IngestConfig)
  args = parser.parse_args(['--shard-size', '1GB'])
  assert options.from_args(IngestConfig, args, class_mapping=mapping).shard_size_bytes == 10**9
  assert options.from_args(IngestConfig, parser.parse_args([]),
                           class_mapping=mapping).shard_size == ''

