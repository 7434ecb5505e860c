"""Split membership by content (``assignment.assign``): invariant under row order, paths and
input form; identical images share a split; a prior manifest keeps every image it names and new
images are dealt towards proportional (pure, no TensorFlow)."""
import collections
import hashlib

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import pytest

from components.image_example_gen import assignment
from components.image_example_gen.config import SplitSpec
from components.image_example_gen.index import IndexRow

SPLITS = (SplitSpec('train', 8), SplitSpec('eval', 1), SplitSpec('test', 1))


def sha(text):
  return hashlib.sha256(text.encode()).hexdigest()


def rows_of(contents, prefix='/data', groups=None):
  """contents: [(content name, label)] -> rows whose image_sha256 is the content's hash."""
  return [IndexRow(line=i + 2, image_id=f'{prefix}/{name}-{i}.png',
                   image_path=f'{prefix}/{name}-{i}.png', mask_path='', label=label,
                   class_name=f'c{label}', group=(groups or {}).get(name, ''),
                   image_sha256=sha(name))
          for i, (name, label) in enumerate(contents)]


def membership(result):
  return {r.image_sha256: s.split for s in result.shards for r in s.rows}


contents_st = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 3)), min_size=12,
                       max_size=150, unique_by=lambda t: t[0]).map(
                           lambda xs: [(f'img{n}', label) for n, label in xs])


@settings(max_examples=60, deadline=None)
@given(contents_st, st.integers(0, 2**31), st.randoms(use_true_random=False))
def test_membership_follows_content_not_row_order_or_paths(contents, seed, rnd):
  base = assignment.assign(rows_of(contents), SPLITS[:2] if len(contents) < 20 else SPLITS, seed)
  shuffled = list(contents)
  rnd.shuffle(shuffled)
  # Rows permuted, every path rewritten to another folder / a bucket, ids with them.
  moved = assignment.assign(rows_of(shuffled, prefix='gs://bucket/elsewhere'),
                            SPLITS[:2] if len(contents) < 20 else SPLITS, seed)
  assert membership(moved) == membership(base)


@settings(max_examples=60, deadline=None)
@given(contents_st, st.integers(1, 3), st.integers(0, 2**31))
def test_identical_images_always_share_a_split(contents, copies, seed):
  dup_name, dup_label = contents[0]
  with_copies = contents + [(dup_name, (dup_label + k) % 4) for k in range(copies)]
  result = assignment.assign(rows_of(with_copies), SPLITS[:2], seed)
  splits_of_dup = {s.split for s in result.shards for r in s.rows
                   if r.image_sha256 == sha(dup_name)}
  assert len(splits_of_dup) == 1


@settings(max_examples=60, deadline=None)
@given(contents_st, st.integers(1, 60), st.integers(0, 2**31))
def test_a_prior_keeps_every_image_and_new_ones_fill_towards_proportional(contents, grow, seed):
  splits = SPLITS[:2] if len(contents) < 20 else SPLITS
  first = assignment.assign(rows_of(contents), splits, seed)
  extra = [(f'new{i}', i % 4) for i in range(grow)]
  grown = assignment.assign(rows_of(contents + extra), splits, seed, prior=first.manifest)
  before, after = membership(first), membership(grown)
  assert {k: after[k] for k in before} == before  # no earlier image moves
  assert grown.report['kept'] == len(contents) and grown.report['new'] == grow
  assert sum(grown.report['new_by_split'].values()) == grow
  # The manifest is cumulative: everything published so far.
  assert set(grown.manifest.images) == set(before) | {sha(n) for n, _ in extra}
  # Each class's new images go where its count is below proportional: no split receives new
  # images of a class while holding more than its share of that class afterwards + 1.
  weights = {s.name: s.num_shards for s in splits}
  total_w = sum(weights.values())
  for label in range(4):
    final = collections.Counter(after[sha(n)] for n, l in contents + extra if l == label)
    new = collections.Counter(after[sha(n)] for n, l in extra if l == label)
    n = sum(final.values())
    for split, got in new.items():
      assert final[split] <= n * weights[split] / total_w + 1


def test_a_fresh_deal_keeps_floor_or_ceil_per_shard():
  contents = [(f'img{i}', i % 3) for i in range(97)]
  result = assignment.assign(rows_of(contents), SPLITS, 5)
  assert result.report['max_class_deviation'] < 1
  assert result.report['max_split_class_deviation'] < 1


def test_groups_decide_and_identical_images_join_their_groups():
  contents = [(f'img{i}', i % 2) for i in range(40)]
  groups = {f'img{i}': f'p{i // 4}' for i in range(40)}
  rows = rows_of(contents, groups=groups)
  # img0's bytes again under another patient: the two patients become one unit.
  rows.append(IndexRow(line=99, image_id='/data/copy.png', image_path='/data/copy.png',
                       mask_path='', label=0, class_name='c0', group='p9',
                       image_sha256=sha('img0')))
  result = assignment.assign(rows, (SplitSpec('train', 2), SplitSpec('test', 2)), 3)
  split_of_group = collections.defaultdict(set)
  for s in result.shards:
    for r in s.rows:
      split_of_group[r.group].add(s.split)
  assert all(len(v) == 1 for v in split_of_group.values())
  assert split_of_group['p0'] == split_of_group['p9']


def test_a_group_in_the_prior_keeps_its_split_with_new_images():
  groups = {f'img{i}': f'p{i // 4}' for i in range(40)}
  contents = [(f'img{i}', i % 2) for i in range(40)]
  splits = (SplitSpec('train', 2), SplitSpec('test', 2))
  first = assignment.assign(rows_of(contents, groups=groups), splits, 3)
  group_split = {r.group: s.split for s in first.shards for r in s.rows}
  # New images of known patients, and new patients.
  more = [(f'late{i}', i % 2) for i in range(12)]
  groups.update({f'late{i}': f'p{i}' if i < 6 else f'q{i}' for i in range(12)})
  second = assignment.assign(rows_of(contents + more, groups=groups), splits, 3,
                             prior=first.manifest)
  for s in second.shards:
    for r in s.rows:
      if r.group in group_split:
        assert s.split == group_split[r.group], r


def test_resent_images_and_missing_ones_are_reported():
  first = assignment.assign(rows_of([(f'img{i}', i % 2) for i in range(30)]), SPLITS[:2], 0,
                            span=1)
  again = [(f'img{i}', i % 2) for i in range(5)] + [(f'new{i}', i % 2) for i in range(20)]
  second = assignment.assign(rows_of(again, prefix='/week2'), SPLITS[:2], 0,
                             prior=first.manifest, span=2)
  r = second.report
  assert (r['kept'], r['new'], r['missing'], r['resent_count']) == (5, 20, 25, 5)
  before = membership(first)
  assert all(x['split'] == before[x['sha256']] and x['first_span'] == 1 for x in r['resent'])


def test_a_manifest_with_other_splits_is_refused_naming_the_option():
  first = assignment.assign(rows_of([(f'img{i}', 0) for i in range(20)]), SPLITS[:2], 0)
  with pytest.raises(assignment.AssignmentError, match='--fresh-splits'):
    assignment.assign(rows_of([(f'img{i}', 0) for i in range(20)]),
                      (SplitSpec('train', 1), SplitSpec('test', 1)), 0, prior=first.manifest)


def test_manifest_round_trips_and_a_bad_file_is_named(tmp_path):
  first = assignment.assign(rows_of([(f'img{i}', i % 2) for i in range(20)]), SPLITS[:2], 4)
  path = tmp_path / 'split_manifest.json'
  path.write_text(first.manifest.to_json())
  loaded = assignment.load_manifest(str(path))
  assert loaded == first.manifest and loaded.digest() == first.manifest.digest()
  (tmp_path / 'bad.json').write_text('{"format": "something else"}')
  with pytest.raises(assignment.AssignmentError, match=r'bad\.json.*--split-manifest'):
    assignment.load_manifest(str(tmp_path / 'bad.json'))
  with pytest.raises(assignment.AssignmentError, match='--split-manifest'):
    assignment.load_manifest(str(tmp_path / 'missing.json'))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=5), st.integers(0, 200),
       st.integers(0, 2**31))
def test_fill_gives_everything_away_and_never_to_a_bin_above_its_share(have, new, seed):
  weights = [1 + i % 3 for i in range(len(have))]
  got = assignment.fill(have, new, weights, seed)
  assert sum(got) == new and all(g >= 0 for g in got)
  total, w = sum(have) + new, sum(weights)
  for h, g, wt in zip(have, got, weights):
    if g:
      assert h + g <= total * wt / w + 1
