"""Near-duplicate groups: the Beam transform (DirectRunner) equals the in-memory reference."""
import hashlib
import io

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import near_duplicates
from components.image_example_gen import perceptual
from pipeline import demo_data


@pytest.fixture(scope='module')
def fingerprints(tmp_path_factory):
  """{key: Fingerprint}: 12 demo radiographs, a JPEG copy of two of them and a crop of one."""
  import csv
  import os
  ds = demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.0006, seed=5)
  with open(ds.csv_path, encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  images = [np.asarray(Image.open(os.path.join(ds.root, r['image_path']))) for r in rows]

  def jpeg(x):
    buf = io.BytesIO()
    Image.fromarray(x).save(buf, format='JPEG', quality=60)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))

  named = {f'img{i:02d}': x for i, x in enumerate(images)}
  named['img00-jpeg'] = jpeg(images[0])
  named['img03-jpeg'] = jpeg(images[3])
  named['img03-crop'] = images[3][8:-10, 12:-6]
  return {hashlib.sha256(k.encode()).hexdigest()[:8] + k: perceptual.fingerprint(
      perceptual.to_grey(x)) for k, x in named.items()}


def _names(groups):
  return sorted(sorted(k[8:] for k in g) for g in groups)


def test_group_pairs_finds_the_copies_and_nothing_else(fingerprints):
  assert _names(near_duplicates.group_pairs(fingerprints)) == [
      ['img00', 'img00-jpeg'], ['img03', 'img03-crop', 'img03-jpeg']]


def test_beam_transform_equals_group_pairs(fingerprints):
  expected = near_duplicates.group_pairs(fingerprints)
  items = [(k, fp.to_text()) for k, fp in fingerprints.items()]
  items.append(items[0])  # the same key twice (identical bytes): counted once
  with TestPipeline() as p:
    groups = (p | beam.Create(items)
              | 'Groups' >> near_duplicates.NearDuplicateGroups())
    assert_that(groups, equal_to(expected))


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False))
def test_grouping_is_independent_of_input_order(fingerprints, rnd):
  keys = list(fingerprints)
  rnd.shuffle(keys)
  assert near_duplicates.group_pairs({k: fingerprints[k] for k in keys}) == \
      near_duplicates.group_pairs(fingerprints)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=30))
def test_components_are_the_connected_components(edges):
  pairs = [(f'k{a:02d}', f'k{b:02d}') for a, b in edges if a != b]
  groups = near_duplicates.components(pairs)
  where = {k: i for i, g in enumerate(groups) for k in g}
  for a, b in pairs:
    assert where[a] == where[b]
  assert all(len(g) >= 2 and g == sorted(g) for g in groups)
  assert sum(len(g) for g in groups) == len(where)


def test_large_buckets_compare_neighbourhoods_only():
  assert near_duplicates.candidate_pairs([10]) == 45
  n = near_duplicates.MAX_BUCKET * 10
  assert near_duplicates.candidate_pairs([n]) < n * near_duplicates.WINDOW


def test_a_crop_in_a_bucket_too_large_for_all_pairs_is_found(tmp_path):
  """A bucket of more than MAX_BUCKET radiographs of one size is compared in neighbourhoods; a
  crop (another size) is still checked against its original: crop candidates go by size class
  and the profile screen, not by the neighbourhood."""
  import csv
  import os
  ds = demo_data.generate(str(tmp_path), scale=0.008, seed=11)  # 170 images of 299x299
  with open(ds.csv_path, encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  images = [np.asarray(Image.open(os.path.join(ds.root, r['image_path']))) for r in rows]
  assert len(images) > near_duplicates.MAX_BUCKET
  members = [(f'img{i:03d}', perceptual.fingerprint(x)) for i, x in enumerate(images)]
  members.append(('img007-crop', perceptual.fingerprint(images[7][10:-6, 5:-14])))
  pairs = near_duplicates.verify_bucket('one bucket', members)
  assert pairs == [('img007', 'img007-crop')]
  small, big = near_duplicates.crop_candidates([fp for _, fp in members])
  assert len(small) <= near_duplicates.CROP_NEIGHBOURS  # the crop's best fits only
