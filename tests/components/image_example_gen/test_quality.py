"""Image-quality findings: planted dark, light, blurry and blank images are found; demo
radiographs are not reported."""
import csv
import os

import numpy as np
from PIL import Image
from PIL import ImageFilter
import pytest

from components.image_example_gen import perceptual
from components.image_example_gen import quality
from pipeline import demo_data


@pytest.fixture(scope='module')
def radiographs(tmp_path_factory):
  ds = demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.002, seed=11)
  with open(ds.csv_path, encoding='utf-8') as f:
    rows = list(csv.DictReader(f))
  return [np.asarray(Image.open(os.path.join(ds.root, r['image_path']))) for r in rows]


def _findings(x, mode='L'):
  h, w = x.shape[:2]
  return quality.findings(quality.measure(perceptual.to_grey(x), w, h, mode))


def test_demo_radiographs_have_no_findings(radiographs):
  assert [f for f in map(_findings, radiographs) if f] == []


def test_planted_problems_are_found(radiographs):
  x = radiographs[0].astype(np.float32)
  assert _findings((x * 0.25).astype(np.uint8)) == (quality.DARK,)
  assert _findings(np.clip(170 + x * 0.3, 0, 255).astype(np.uint8)) == (quality.LIGHT,)
  blurred = np.asarray(Image.fromarray(radiographs[0]).filter(ImageFilter.GaussianBlur(2)))
  assert _findings(blurred) == (quality.BLURRY,)
  assert quality.LOW_INFORMATION in _findings(np.full((299, 299), 90, np.uint8))
  assert _findings(np.asarray(Image.fromarray(radiographs[0]).resize((600, 200)))) == (
      quality.ODD_ASPECT_RATIO,)


def test_dataset_findings_odd_size_and_grey_colour_mix():
  def m(side, colour):
    return {quality.WIDTH: side, quality.HEIGHT: side, quality.COLOUR: colour}
  measures = {f'g{i}': m(299, 0.0) for i in range(8)}
  measures['big'] = m(1024, 0.0)
  measures['rgb'] = m(299, 1.0)
  assert quality.dataset_findings(measures) == {'big': (quality.ODD_SIZE,),
                                                'rgb': (quality.GRAYSCALE_MIX,)}
  assert quality.dataset_findings({}) == {}
