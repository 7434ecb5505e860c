"""Image-quality findings: planted dark, light, blurry and blank images are found; demo
radiographs are not reported."""

import numpy as np
from PIL import Image
from PIL import ImageFilter
import pytest

from components.image_example_gen import perceptual
from components.image_example_gen import quality


@pytest.fixture(scope='module')
def radiographs(demo_radiographs):
  """Grey uint8 demo radiographs (~45 images)."""
  return demo_radiographs(11)


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


def test_uint8_pixels_as_decoded_measure_as_their_float_grey(radiographs):
  """The workers measure uint8 grey without a float copy (one shared summary); the float path
  (16-bit, colour) gives the same measures and properties."""
  from components.image_example_gen import shortcut
  for x in radiographs[:5] + [np.asarray(Image.fromarray(radiographs[0]).resize((410, 377)))]:
    h, w = x.shape
    grey = perceptual.to_grey(x)
    assert quality.is_grey8(x) and not quality.is_grey8(grey)
    summary = quality.summarise(x)
    assert summary.sample.dtype == np.uint8
    as_decoded = quality.measure(x, w, h, 'L', summary)
    as_float = quality.measure(grey, w, h, 'L')
    assert as_decoded.keys() == as_float.keys()
    assert all(abs(as_decoded[k] - as_float[k]) < 1e-5 for k in as_float), (as_decoded, as_float)
    props = shortcut.properties(x, w, h, 'L', 8, 'png', summary)
    props_float = shortcut.properties(grey, w, h, 'L', 8, 'png')
    assert props.keys() == props_float.keys()
    assert all(abs(props[k] - props_float[k]) < 1e-5 for k in props), (props, props_float)
