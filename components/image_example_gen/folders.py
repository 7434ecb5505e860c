"""Image folders without a CSV: ``DIR/<class>/<images>``, masks in ``DIR/<class>/masks/``.

Listing a folder is the launcher's work, like reading a CSV: names only (``os.scandir``
locally, ``tf.io.gfile.listdir`` for gs:// and other URIs), no image opened, read or stat'ed --
the Beam workers do that, as for CSV rows. A folder of 21,165 images is a handful of directory
reads (one per class folder and its ``images/`` and ``masks/``), tens of milliseconds.

Every folder directly under ``DIR`` whose name does not start with '.' is a class folder.
In each:

* images are the files in ``<class>/images/`` when that folder exists (the COVID-19
  Radiography Database's own layout, ``<Class>/images/`` and ``<Class>/masks/``), else the
  files directly in ``<class>/``;
* an image file is one named ``*.png``, ``*.jpg``, ``*.jpeg``, ``*.dcm``, ``*.dicom`` or
  ``*.dic`` (any case), or with no suffix or a numeric one (PACS exports named by number or
  UID). The workers check the content, so such a file that is no image is a bad record, never
  skipped silently. Other files (``.txt``, ``.xlsx``, ``.csv``, hidden ones) and other folders
  are ignored, and counted;
* an image's mask is ``<class>/masks/<same stem>.<image suffix>``; two candidates for one
  image (``x.png`` and ``x.dcm``) make the row bad (``ambiguous``); masks matching no image are
  counted.

Class folders without images are left out (counted). The default class mapping is the sorted
names of the class folders that hold images, labelled 0..K-1. A given class mapping must name
every class folder that holds images (``index.check_folder_classes`` refuses the folder
otherwise, naming both sides); a class of the mapping with no folder is allowed (a span may
lack a class; its label stays reserved).

The listing then *is* a CSV index (``csv_text``): ``image_path,mask_path,class`` with paths
relative to ``DIR`` in sorted order, which goes through the CSV's own parse and checks
(``index.read_folder_index``). ImageExampleGen writes it next to its outputs
(``image_index.csv``, with ``class_mapping.json``), so the line numbers in errors and in
``quarantine.json`` point into it, and each image's ``image_id`` is its path under ``DIR``
(``COVID/images/COVID-1.png``), stable wherever the folder is mounted.
"""
import csv
import dataclasses
import io
import os
import posixpath
import re
from typing import Dict, List, Tuple

IMAGES_DIR = 'images'
MASKS_DIR = 'masks'
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.dcm', '.dicom', '.dic')
_NUMERIC_SUFFIX = re.compile(r'\.\d+$')
CSV_HEADER = ('image_path', 'mask_path', 'class')  # index.REQUIRED_COLUMNS, in order

# Keys of Listing.ignored
IGNORED_FILES = 'files that are not images'
IGNORED_FOLDERS = 'other folders'
UNMATCHED_MASKS = 'masks without an image'
EMPTY_CLASS_FOLDERS = 'class folders without images'


def is_uri(path: str) -> bool:
  return '://' in path


def is_image_name(name: str) -> bool:
  """An image file by its name: an image suffix, none, or a numeric one (DICOM exports)."""
  if name.startswith('.'):
    return False
  lower = name.lower()
  if lower.endswith(IMAGE_SUFFIXES):
    return True
  _, suffix = posixpath.splitext(lower)
  return not suffix or bool(_NUMERIC_SUFFIX.match(suffix))


def stem(name: str) -> str:
  """'COVID-1.png' -> 'COVID-1'; a numeric suffix (a UID's last part) is part of the stem."""
  base, suffix = posixpath.splitext(name)
  return name if not suffix or _NUMERIC_SUFFIX.match(suffix) else base


@dataclasses.dataclass
class Listing:
  """What a folder holds, as index rows; paths relative to the folder, '/'-separated."""
  image_dir: str
  rows: List[Tuple[str, str, str]]  # (image path, mask path or '', class name), sorted
  classes: List[str]  # class folders holding images, sorted
  ambiguous_masks: Dict[str, List[str]]  # image path -> its several mask candidates
  ignored: Dict[str, int]  # what was left out -> how many (keys IGNORED_FILES, ...)

  def default_class_mapping(self) -> Dict[str, int]:
    return {name: label for label, name in enumerate(self.classes)}

  def csv_text(self) -> str:
    """The CSV index this listing stands for (header line 1, then one line per image)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator='\n')
    writer.writerow(CSV_HEADER)
    writer.writerows(self.rows)
    return out.getvalue()


def _entries(folder: str) -> Tuple[List[str], List[str]]:
  """(file names, folder names) directly in ``folder``; ([], []) if it does not exist."""
  if is_uri(folder):
    import tensorflow as tf  # URIs only
    if not tf.io.gfile.isdir(folder):
      return [], []
    names, dirs = [], []
    for name in tf.io.gfile.listdir(folder):
      if name.endswith('/'):
        dirs.append(name.rstrip('/'))
      else:
        names.append(name)
    return names, dirs
  try:
    with os.scandir(folder) as it:
      names, dirs = [], []
      for entry in it:
        (dirs if entry.is_dir() else names).append(entry.name)
      return names, dirs
  except (FileNotFoundError, NotADirectoryError):
    return [], []


def _is_dir(folder: str, name: str, dirs: List[str]) -> bool:
  """Whether ``name`` in ``folder`` is a folder: listed as one, or (object stores, which may
  list a folder without its slash) a folder to tf.io.gfile."""
  if name in dirs:
    return True
  if is_uri(folder):
    import tensorflow as tf
    return tf.io.gfile.isdir(posixpath.join(folder, name))
  return False


def list_image_dir(image_dir: str) -> Listing:
  """Lists ``image_dir``'s class folders (module docstring). Raises FileNotFoundError if it is
  not a folder."""
  if is_uri(image_dir):
    import tensorflow as tf  # URIs only
    join, found = posixpath.join, tf.io.gfile.isdir(image_dir)
  else:
    join, found = os.path.join, os.path.isdir(image_dir)
  if not found:
    raise FileNotFoundError(image_dir)
  files, dirs = _entries(image_dir)
  ignored = {IGNORED_FILES: 0, IGNORED_FOLDERS: 0, UNMATCHED_MASKS: 0, EMPTY_CLASS_FOLDERS: 0}
  ignored[IGNORED_FILES] += len(files)  # files directly in DIR belong to no class
  rows, classes, ambiguous = [], [], {}
  for class_name in sorted(d for d in dirs if not d.startswith('.')):
    class_dir = join(image_dir, class_name)
    names, subdirs = _entries(class_dir)
    image_sub = ''
    if _is_dir(class_dir, IMAGES_DIR, subdirs):
      image_sub = IMAGES_DIR
      ignored[IGNORED_FILES] += len(names)
      names, _ = _entries(join(class_dir, IMAGES_DIR))
    has_masks = _is_dir(class_dir, MASKS_DIR, subdirs)
    ignored[IGNORED_FOLDERS] += len([d for d in subdirs if d not in (IMAGES_DIR, MASKS_DIR)])
    images = sorted(n for n in names if is_image_name(n))
    ignored[IGNORED_FILES] += len(names) - len(images)
    masks: Dict[str, List[str]] = {}
    if has_masks:
      mask_names, _ = _entries(join(class_dir, MASKS_DIR))
      for name in sorted(mask_names):
        if is_image_name(name):
          masks.setdefault(stem(name), []).append(name)
        else:
          ignored[IGNORED_FILES] += 1
    if not images:
      ignored[EMPTY_CLASS_FOLDERS] += 1
      ignored[UNMATCHED_MASKS] += sum(len(v) for v in masks.values())
      continue
    classes.append(class_name)
    prefix = posixpath.join(class_name, image_sub) if image_sub else class_name
    matched = set()
    for name in images:
      image_path = posixpath.join(prefix, name)
      candidates = masks.get(stem(name), [])
      matched.add(stem(name))
      mask_path = posixpath.join(class_name, MASKS_DIR, candidates[0]) if candidates else ''
      if len(candidates) > 1:
        ambiguous[image_path] = [posixpath.join(class_name, MASKS_DIR, c) for c in candidates]
      rows.append((image_path, mask_path, class_name))
    ignored[UNMATCHED_MASKS] += sum(len(v) for k, v in masks.items() if k not in matched)
  rows.sort()
  return Listing(image_dir, rows, classes, ambiguous, ignored)
