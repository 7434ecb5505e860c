"""Image folders without a CSV: the listing rules (real folders), the index it becomes, the
cache fingerprint, and real Beam ingestions (the COVID-19 Radiography layout, and a folder of
PNG and DICOM files through the TFX executor)."""
import io
import json
import os
import time

import numpy as np
from PIL import Image
import pytest

from components.image_example_gen import folders
from components.image_example_gen import index
from tests.support import dicom_files as df


def _png(path, seed=0, shape=(12, 10), top=200):
  os.makedirs(os.path.dirname(str(path)), exist_ok=True)
  rng = np.random.default_rng(seed)
  Image.fromarray(rng.integers(0, top, shape).astype(np.uint8)).save(str(path), 'PNG')
  return str(path)


def _touch(path, data=b''):
  os.makedirs(os.path.dirname(str(path)), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(data)


@pytest.fixture
def tree(tmp_path):
  """Both layouts, and everything a real folder holds besides images."""
  d = tmp_path / 'DIR'
  for name in ('README.txt', 'cats/notes.txt', 'cats/.DS_Store', 'cats/sub/deep.png',
               'cats/masks/zz.png', '.hidden/h.png', 'dogs/stray.png', 'empty/masks/q.png',
               'empty/readme.md'):
    _touch(d / name)
  for name in ('cats/a.png', 'cats/b.PNG', 'cats/c.jpg', 'cats/1.2.840.113619.2',
               'cats/IM0001', 'cats/masks/a.png', 'cats/masks/IM0001.dcm',
               'dogs/images/x.dcm', 'dogs/images/y.png', 'dogs/masks/x.png',
               'dogs/masks/x.dcm', 'dogs/masks/y.png'):
    _touch(d / name, b'x')
  return d


def test_listing_follows_both_layouts_and_counts_what_it_leaves_out(tree):
  listing = folders.list_image_dir(str(tree))
  assert listing.rows == [
      ('cats/1.2.840.113619.2', '', 'cats'),  # UID-named DICOM export: numeric suffix
      ('cats/IM0001', 'cats/masks/IM0001.dcm', 'cats'),  # no suffix
      ('cats/a.png', 'cats/masks/a.png', 'cats'),
      ('cats/b.PNG', '', 'cats'),
      ('cats/c.jpg', '', 'cats'),
      ('dogs/images/x.dcm', 'dogs/masks/x.dcm', 'dogs'),  # first of two candidates...
      ('dogs/images/y.png', 'dogs/masks/y.png', 'dogs')]
  assert listing.ambiguous_masks == {  # ... and flagged
      'dogs/images/x.dcm': ['dogs/masks/x.dcm', 'dogs/masks/x.png']}
  assert listing.classes == ['cats', 'dogs']  # 'empty' has no image; '.hidden' is hidden
  assert listing.default_class_mapping() == {'cats': 0, 'dogs': 1}
  assert listing.ignored == {
      folders.IGNORED_FILES: 5,  # README.txt, notes.txt, .DS_Store, dogs/stray.png, readme.md
      folders.IGNORED_FOLDERS: 1,  # cats/sub
      folders.UNMATCHED_MASKS: 2,  # cats/masks/zz.png, empty/masks/q.png
      folders.EMPTY_CLASS_FOLDERS: 1}
  text = listing.csv_text()
  assert text.splitlines()[0] == 'image_path,mask_path,class'
  assert text.splitlines()[3] == 'cats/a.png,cats/masks/a.png,cats'


def test_the_folder_index_is_checked_like_a_csv(tree):
  folder = index.read_folder_index(str(tree), {})
  assert folder.class_mapping == {'cats': 0, 'dogs': 1}
  rows = {r.image_id: r for r in folder.checked.rows}
  assert rows['cats/a.png'].image_path == str(tree / 'cats' / 'a.png')
  assert rows['cats/a.png'].mask_path == str(tree / 'cats' / 'masks' / 'a.png')
  assert (rows['dogs/images/y.png'].label, rows['dogs/images/y.png'].line) == (1, 8)
  assert [(p.line, p.path) for p in folder.checked.quarantined] == [(7, 'dogs/images/x.dcm')]
  assert folder.checked.quarantined[0].reason.startswith('ambiguous mask: several files in '
                                                         "masks/ have this image's name")
  assert folder.checked.rows_in == 7
  assert folder.classes_without_folder == []
  with pytest.raises(index.SourceError, match='does not exist or is not a folder'):
    index.read_folder_index(str(tree / 'nope'), {})
  (tree.parent / 'bare').mkdir()
  with pytest.raises(index.IndexValidationError, match='no images found'):
    index.read_folder_index(str(tree.parent / 'bare'), {})


def test_a_given_mapping_must_name_every_class_folder(tree):
  """A class folder the mapping does not name is refused, naming both sides (never per-row
  'unknown class' problems); mapping classes without a folder are allowed, and exposed."""
  with pytest.raises(index.SourceError) as e:
    index.read_folder_index(str(tree), {'cats': 0, 'birds': 1})
  message = str(e.value)
  assert message.startswith("the class mapping (option --class-mapping) does not name the "
                            f"class folder(s) ['dogs'] of {tree}; ")
  assert "the mapping names ['birds', 'cats'], the folders are ['cats', 'dogs']" in message
  # 'empty' holds no image and '.hidden' is hidden: not class folders, so not refused
  folder = index.read_folder_index(str(tree), {'birds': 2, 'dogs': 1, 'cats': 0, 'fish': 3})
  assert folder.classes_without_folder == ['birds', 'fish']  # in label order
  assert folder.class_mapping == {'birds': 2, 'dogs': 1, 'cats': 0, 'fish': 3}
  assert not [p for p in folder.checked.quarantined if p.reason.startswith('unknown class')]
  assert {r.class_name: r.label for r in folder.checked.rows} == {'cats': 0, 'dogs': 1}
  listing = folders.list_image_dir(str(tree))
  assert index.check_folder_classes(str(tree), listing, {}) == []  # no mapping: the folders


def test_listing_21k_files_is_launcher_cheap(tmp_path):
  """The real dataset's size: 21,165 images and as many masks in the COVID-19 layout."""
  from pipeline import demo_data
  root = tmp_path / 'big'
  for name, n in demo_data.CLASS_COUNTS.items():
    for sub in ('images', 'masks'):
      os.makedirs(root / name / sub)
      for k in range(1, n + 1):
        open(root / name / sub / f'{name}-{k}.png', 'wb').close()  # pylint: disable=consider-using-with
  start = time.perf_counter()
  folder = index.read_folder_index(str(root), {})
  seconds = time.perf_counter() - start
  assert folder.checked.rows_in == len(folder.checked.rows) == 21165
  assert all(r.mask_path for r in folder.checked.rows)
  print(f'listing and checking 21,165 images + masks: {seconds:.3f} s')
  assert seconds < 5.0, seconds  # measured ~0.3 s on the 2-core machine


def test_fingerprint_sees_added_changed_and_moved_images(tree):
  from components.image_example_gen import fingerprint
  from components.image_example_gen.config import IngestConfig
  source, config = index.Source(image_dir=str(tree)), IngestConfig({})
  first = fingerprint.referenced_files(source, config)
  assert first.startswith('referenced files (path/size/mtime): 12, sha256:')
  assert fingerprint.referenced_files(source, config) == first
  _touch(tree / 'cats' / 'd.png', b'new')
  added = fingerprint.referenced_files(source, config)
  assert added != first
  _touch(tree / 'cats' / 'd.png', b'newer')
  changed = fingerprint.referenced_files(source, config)
  assert changed != added
  os.rename(tree / 'cats' / 'd.png', tree / 'dogs' / 'images' / 'd.png')  # another class
  assert fingerprint.referenced_files(source, config) not in (first, added, changed)
  _touch(tree / 'cats' / 'ignored.txt', b'x')  # not an image: not an input
  moved = fingerprint.referenced_files(source, config)
  assert fingerprint.referenced_files(source, config) == moved


def test_the_covid_layout_gives_the_records_its_csv_gives(demo_dataset, tmp_path):
  """The demo data is the COVID-19 Radiography Database's layout (<Class>/images, masks)."""
  import apache_beam as beam

  from components.image_example_gen import ingest
  from components.image_example_gen.config import IngestConfig
  from tests.support.testutil import load_mapping
  from tests.support.testutil import read_examples
  image_dir = os.path.join(demo_dataset.root, 'COVID-19_Radiography_Dataset')
  summary = ingest.run_ingest(index.Source(image_dir=image_dir), IngestConfig(
      {}, (('train', 3), ('test', 1))), str(tmp_path / 'folder'), beam.Pipeline)
  mapping = {'COVID': 0, 'Lung_Opacity': 1, 'Normal': 2, 'Viral Pneumonia': 3}  # sorted
  assert summary.class_names == {v: k for k, v in mapping.items()}
  assert (summary.csv_path, summary.image_dir) == ('', image_dir)
  assert summary.examples_written == demo_dataset.num_rows
  with open(tmp_path / 'folder' / 'class_mapping.json') as f:
    assert json.load(f) == mapping
  with open(tmp_path / 'folder' / 'image_index.csv') as f:
    assert f.read() == folders.list_image_dir(image_dir).csv_text()

  by_csv = str(tmp_path / 'csv')
  ingest.run_ingest(demo_dataset.csv_path, IngestConfig(
      load_mapping(demo_dataset.class_mapping_path), (('train', 3), ('test', 1))), by_csv,
                    beam.Pipeline)

  def contents(out, names):
    return sorted((ex.features.feature['image_sha256'].bytes_list.value[0],
                   ex.features.feature['mask'].bytes_list.value[0],
                   names[ex.features.feature['class'].int64_list.value[0]])
                  for _, ex in read_examples(os.path.join(out, 'Split-*', '*')))
  demo_names = {v: k for k, v in load_mapping(demo_dataset.class_mapping_path).items()}
  assert contents(str(tmp_path / 'folder'), summary.class_names) == contents(by_csv, demo_names)
  ids = [ex.features.feature['image_id'].bytes_list.value[0].decode()
         for _, ex in read_examples(str(tmp_path / 'folder' / 'Split-*' / '*'))]
  assert 'Viral Pneumonia/images/Viral Pneumonia-1.png' in ids  # the path under the folder


def test_the_executor_ingests_a_folder_of_png_and_dicom(tmp_path):
  """ImageExampleGen(image_dir=...) -> exec properties -> the TFX executor; a bad file is
  quarantined with the line of image_index.csv, written next to the outputs."""
  from google.protobuf import message
  from tfx.types import standard_artifacts
  from tfx.utils import proto_utils

  from components.image_example_gen import executor
  from components.image_example_gen import spec
  from components.image_example_gen.component import ImageExampleGen
  from components.image_example_gen.config import ConfigError
  from tests.support.testutil import read_examples
  d = tmp_path / 'xrays'
  for k in range(3):
    _png(d / 'normal' / f'n{k}.png', k)
    _png(d / 'normal' / 'masks' / f'n{k}.png', 10 + k, top=2)
    df.write(d / 'pneumonia' / f'p{k}.dcm', df.radiograph(seed=k, rows=12, columns=10))
  df.write(d / 'pneumonia' / 'p9.dcm', df.radiograph(seed=9, burned_in='YES'))

  with pytest.raises(ConfigError, match='exactly one input'):
    ImageExampleGen(csv_path='/x/index.csv', image_dir=str(d))
  with pytest.raises(ConfigError, match='exactly one input'):
    ImageExampleGen(class_mapping={'a': 0})
  with pytest.raises(ConfigError, match='class mapping is empty'):
    ImageExampleGen(csv_path='/x/index.csv')
  component = ImageExampleGen(image_dir=str(d), splits=[('train', 2)],
                              on_bad_record='quarantine', dicom_output='png8')
  props = component.exec_properties
  assert (props[spec.IMAGE_DIR_KEY], props[spec.CSV_URI_KEY], props[spec.CLASS_MAPPING_KEY]) == (
      str(d), '', '')
  exec_properties = {k: proto_utils.proto_to_json(v) if isinstance(v, message.Message) else v
                     for k, v in props.items() if v is not None}
  examples = standard_artifacts.Examples()
  examples.uri = str(tmp_path / 'out')
  executor.Executor().Do({}, {spec.EXAMPLES_KEY: [examples]}, exec_properties)

  out = tmp_path / 'out'
  assert sorted(os.listdir(out)) == ['Split-train', 'class_mapping.json', 'image_index.csv',
                                     'ingest_summary.json', 'quarantine.json',
                                     'split_fingerprints.jsonl.gz', 'split_manifest.json']
  with open(out / 'quarantine.json') as f:
    (record,) = json.load(f)
  with open(out / 'image_index.csv') as f:
    lines = f.read().splitlines()
  assert lines[record['line'] - 1].startswith(record['path'] + ',')
  assert record['path'] == 'pneumonia/p9.dcm' and 'BurnedInAnnotation' in record['reason']
  records = read_examples(str(out / 'Split-train' / '*'))
  assert len(records) == 6
  for _, ex in records:
    f = ex.features.feature
    is_dicom = f['image_id'].bytes_list.value[0].startswith(b'pneumonia/')
    assert f['class'].int64_list.value == [1 if is_dicom else 0]
    assert ('dicom_bits_stored' in f) == is_dicom
    assert bool(f['mask'].bytes_list.value[0]) != is_dicom
    if is_dicom:
      assert Image.open(io.BytesIO(f['image'].bytes_list.value[0])).mode == 'L'  # png8
