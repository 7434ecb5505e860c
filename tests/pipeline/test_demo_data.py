"""The demo dataset generator: layout, proportions, PNG realism, determinism (no TensorFlow)."""
import filecmp
import glob
import json
import os

import numpy as np
from PIL import Image
import pytest

from pipeline import demo_data
from tests.support.testutil import read_csv_rows


@pytest.fixture(scope='module')
def ds(tmp_path_factory):
  return demo_data.generate(str(tmp_path_factory.mktemp('a')), scale=0.004, missing_masks=0.25,
                            seed=11)


def test_real_proportions():
  assert sum(demo_data.class_counts_for_scale(1.0).values()) == 21165
  assert demo_data.class_counts_for_scale(0.1) == {
      'COVID': 362, 'Normal': 1019, 'Lung_Opacity': 601, 'Viral Pneumonia': 134}
  assert min(demo_data.class_counts_for_scale(1e-6).values()) == 1
  with pytest.raises(ValueError, match='--scale'):
    demo_data.class_counts_for_scale(0)


def test_kaggle_layout_relative_csv_and_mapping(ds):
  rows = read_csv_rows(ds.csv_path)
  assert len(rows) == ds.num_rows == sum(ds.class_counts.values())
  assert rows[0]['image_path'] == 'COVID-19_Radiography_Dataset/COVID/images/COVID-1.png'
  vp = [r for r in rows if r['class'] == 'Viral Pneumonia']
  assert vp[0]['image_path'] == ('COVID-19_Radiography_Dataset/Viral Pneumonia/images/'
                                 'Viral Pneumonia-1.png')
  for r in rows:
    assert os.path.isfile(os.path.join(ds.root, r['image_path']))
    if r['mask_path']:
      assert r['mask_path'] == r['image_path'].replace('/images/', '/masks/')
      assert os.path.isfile(os.path.join(ds.root, r['mask_path']))
    else:
      assert not os.path.exists(os.path.join(ds.root, r['image_path'].replace('/images/',
                                                                             '/masks/')))
  assert sum(1 for r in rows if not r['mask_path']) == ds.num_missing_masks == round(
      0.25 * len(rows))
  with open(ds.class_mapping_path) as f:
    assert json.load(f) == {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}


def test_images_look_like_radiographs_and_masks_are_binary(ds):
  images = sorted(glob.glob(os.path.join(ds.root, '*', '*', 'images', '*.png')))
  masks = sorted(glob.glob(os.path.join(ds.root, '*', '*', 'masks', '*.png')))
  sizes = [os.path.getsize(p) for p in images]
  assert 15_000 < np.mean(sizes) < 80_000  # the real set averages ~37 KB
  img = Image.open(images[0])
  assert (img.size, img.mode) == ((299, 299), 'L')
  pixels = np.asarray(img, dtype=np.float32)
  assert pixels[100:200, 60:110].mean() + 20 < pixels[100:200, 140:160].mean()  # lung < spine
  mask = Image.open(masks[0])
  assert (mask.size, mask.mode) == ((256, 256), 'L')
  assert set(np.unique(np.asarray(mask))) == {0, 255}


def test_deterministic_from_the_seed(ds, tmp_path):
  again = demo_data.generate(str(tmp_path / 'b'), scale=0.004, missing_masks=0.25, seed=11)
  with open(ds.csv_path, 'rb') as a, open(again.csv_path, 'rb') as b:
    assert a.read() == b.read()
  rel = 'COVID-19_Radiography_Dataset/Normal/images/Normal-3.png'
  assert filecmp.cmp(os.path.join(ds.root, rel), os.path.join(again.root, rel), shallow=False)
  other = demo_data.generate(str(tmp_path / 'c'), scale=0.004, missing_masks=0.25, seed=12)
  assert not filecmp.cmp(os.path.join(ds.root, rel), os.path.join(other.root, rel),
                         shallow=False)


def test_bad_arguments():
  with pytest.raises(ValueError, match='--missing-masks'):
    demo_data.generate('/nonexistent', missing_masks=1.5)


def test_processes_write_the_same_files_and_report_progress(ds, tmp_path):
  seen = []
  again = demo_data.generate(str(tmp_path / 'p'), scale=0.004, missing_masks=0.25, seed=11,
                             workers=2, progress=lambda done, total: seen.append((done, total)))
  assert seen[0] == (0, ds.num_rows) and seen[-1] == (ds.num_rows, ds.num_rows)
  assert [d for d, _ in seen] == sorted(d for d, _ in seen)
  names = sorted(os.path.relpath(p, ds.root) for p in glob.glob(
      os.path.join(ds.root, '*', '*', '*', '*.png')))
  assert len(names) == ds.num_rows * 2 - ds.num_missing_masks
  for rel in names:
    assert filecmp.cmp(os.path.join(ds.root, rel), os.path.join(again.root, rel), shallow=False)
  with open(ds.csv_path, 'rb') as a, open(again.csv_path, 'rb') as b:
    assert a.read() == b.read()


def test_global_intensity_statistics_do_not_tell_the_classes_apart():
  """The classes differ by where opacities lie in the lungs, not by exposure: a 5-fold
  cross-validated logistic regression over what a shortcut check measures -- mean, std, 5th /
  50th / 95th percentiles, border and corner means -- stays near chance (0.25 for four
  classes) on `make demo`'s 423 images."""
  from sklearn.linear_model import LogisticRegression
  from sklearn.model_selection import cross_val_score
  from sklearn.model_selection import StratifiedKFold
  from sklearn.pipeline import make_pipeline
  from sklearn.preprocessing import StandardScaler
  features, labels = [], []
  for label, (name, count) in enumerate(demo_data.class_counts_for_scale(0.02).items()):
    for n in range(1, count + 1):
      image = demo_data.render(name, n, 0)[0].astype(np.float32)
      b = 12  # border width, pixels
      border = np.concatenate([image[:b].ravel(), image[-b:].ravel(), image[:, :b].ravel(),
                               image[:, -b:].ravel()])
      corners = [image[:b, :b].mean(), image[:b, -b:].mean(), image[-b:, :b].mean(),
                 image[-b:, -b:].mean()]
      features.append([image.mean(), image.std(), *np.percentile(image, [5, 50, 95]),
                       border.mean(), *corners])
      labels.append(label)
  model = make_pipeline(StandardScaler(),
                        LogisticRegression(max_iter=2000, class_weight='balanced'))
  scores = cross_val_score(model, np.array(features), np.array(labels), scoring='balanced_accuracy',
                           cv=StratifiedKFold(5, shuffle=True, random_state=0))
  assert scores.mean() < 0.40, scores
