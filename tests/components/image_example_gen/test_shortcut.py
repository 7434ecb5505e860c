"""Shortcut risk: a class with another size or a burned-in corner marker raises the warning;
demo radiographs and random labels do not."""
import csv
import os

import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import perceptual
from components.image_example_gen import shortcut
from pipeline import demo_data


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  """(grey images, labels): demo data at scale 0.004 (~85 images, 4 classes)."""
  ds = demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.004, seed=2)
  with open(ds.csv_path, encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  greys = [perceptual.to_grey(np.asarray(Image.open(os.path.join(ds.root, r['image_path']))))
           for r in rows]
  return greys, [demo_data.CLASS_MAPPING[r['class']] for r in rows]


def _props(grey, side=299):
  return shortcut.properties(grey, side, side, 'L', 8, 'png')


def test_demo_data_raises_no_warning(demo):
  greys, labels = demo
  result = shortcut.assess([_props(g) for g in greys], labels)
  assert not result.warning, result.message
  assert result.message.startswith('No shortcut risk')


def test_random_labels_raise_no_warning(demo):
  greys, labels = demo
  shuffled = list(np.random.default_rng(0).permutation(labels))
  assert not shortcut.assess([_props(g) for g in greys], shuffled).warning


def test_a_class_of_another_size_raises_the_warning(demo):
  greys, labels = demo
  props = [_props(g, 512 if y == 0 else 299) for g, y in zip(greys, labels)]
  result = shortcut.assess(props, labels)
  assert result.warning and result.worst_class == 0
  assert result.top_properties[0][0] in ('width', 'height')
  assert 'crop' in result.message and result.message.count('.') >= 1


def test_a_burned_in_corner_marker_raises_the_warning(demo):
  greys, labels = demo
  props = []
  for g, y in zip(greys, labels):
    if y == 1:
      g = g.copy()
      g[8:28, 8:40] = 1.0  # a white 'R' marker in the top-left corner
    props.append(_props(g))
  result = shortcut.assess(props, labels)
  assert result.warning and result.worst_class == 1
  assert result.top_properties[0][0].startswith('corner_top_left')


def test_deterministic_and_graceful_on_tiny_or_one_class_sets(demo):
  greys, labels = demo
  props = [_props(g) for g in greys]
  assert shortcut.assess(props, labels, seed=4) == shortcut.assess(props, labels, seed=4)
  one = shortcut.assess(props[:10], [0] * 10)
  assert not one.warning and 'fewer than two classes' in one.message
  tiny = shortcut.assess(props[:4], [0, 1, 0, 1])
  assert not tiny.warning and 'not assessed' in tiny.message


@pytest.mark.parametrize('shape', [(1, 1), (2, 3), (1, 400), (400, 2)])
def test_a_tiny_image_is_all_border(shape):
  """Too small for an inside: its border band is the whole image, as decoded or as float."""
  for pixels in (np.full(shape, 7, np.uint8), np.full(shape, 7 / 255, np.float32)):
    props = shortcut.properties(pixels, shape[1], shape[0], 'L', 8, 'png')
    assert props['border_mean'] == pytest.approx(7 / 255, abs=1e-6)
    assert props['border_std'] == 0.0
