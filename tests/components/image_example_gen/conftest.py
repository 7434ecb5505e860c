"""Fixtures shared by the pixel-level tests of ImageExampleGen (NumPy and Pillow only)."""
import pytest


@pytest.fixture(scope='session')
def demo_radiographs(tmp_path_factory):
  """seed -> grey uint8 demo radiographs (demo data at scale 0.002: ~45 images), each seed's
  set generated once per session."""
  import csv
  import os

  import numpy as np
  from PIL import Image

  from pipeline import demo_data
  made = {}

  def of(seed: int):
    if seed not in made:
      ds = demo_data.generate(str(tmp_path_factory.mktemp(f'radiographs{seed}')), scale=0.002,
                              seed=seed)
      with open(ds.csv_path, encoding='utf-8') as f:
        rows = list(csv.DictReader(f))
      made[seed] = [np.asarray(Image.open(os.path.join(ds.root, r['image_path'])))
                    for r in rows]
    return made[seed]
  return of
