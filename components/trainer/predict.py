"""Scoring image files with a served model (``cxr-tfx predict``): find the SavedModel, read
each file as ImageExampleGen stores it (PNG and JPEG bytes as they are, DICOM rendered to PNG
the ingest way), call ``serving_default``, and say what came back.

Pure until ``predict`` is called (TensorFlow is imported there): ``find_saved_model`` and
``read_for_serving`` work without it.
"""
import dataclasses
import json
import os
import re
from typing import Dict, List, Optional, Sequence

import numpy as np

from components.errors import CxrError
from components.image_example_gen import dicom
from components.trainer import config as config_lib

_PNG = b'\x89PNG\r\n\x1a\n'
_JPEG = b'\xff\xd8\xff'
_VERSION = re.compile(r'\d+')  # a serving folder's versions: <dir>/<digits>/ (TF Serving)
SERVING_DIR = 'serving_model'  # where a pipeline root keeps pushed models (configs)
FORMAT_SERVING = 'Format-Serving'  # where a Trainer's Model artifact keeps its SavedModel
MASK_THRESHOLD = 0.5  # a pixel is lung when the mask head's probability exceeds this


class PredictError(CxrError, ValueError):
  pass


def _is_saved_model(path: str) -> bool:
  return os.path.isfile(os.path.join(path, config_lib.SAVED_MODEL_FILE))


def _newest_version(path: str) -> Optional[str]:
  versions = [d for d in os.listdir(path) if _VERSION.fullmatch(d)
              and _is_saved_model(os.path.join(path, d))] if os.path.isdir(path) else []
  return os.path.join(path, max(versions, key=int)) if versions else None


def find_saved_model(path: str) -> str:
  """The SavedModel ``path`` names: the folder itself (a pushed version, or any SavedModel), a
  Trainer Model artifact (its ``Format-Serving``), a serving folder (its newest numeric
  version, as TF Serving picks) or a pipeline root (the newest in its ``serving_model``)."""
  if not os.path.exists(path):
    raise PredictError(f'{path} does not exist (option --model).')
  for candidate in (path, os.path.join(path, FORMAT_SERVING)):
    if _is_saved_model(candidate):
      return candidate
  for folder in (path, os.path.join(path, SERVING_DIR)):
    newest = _newest_version(folder)
    if newest:
      return newest
  raise PredictError(
      f'{path} holds no SavedModel: give a pushed model (<serving dir>/<version>), a serving '
      f'folder, a pipeline root with {SERVING_DIR}/, or a Trainer model folder (option '
      '--model).')


def class_names(saved_model_dir: str) -> Optional[List[str]]:
  """The class names in the order of ``class_probabilities`` (``export.write_class_names``),
  or None for a model exported without them."""
  path = os.path.join(saved_model_dir, config_lib.EXTRA_ASSETS_DIR, config_lib.CLASS_NAMES_FILE)
  if not os.path.isfile(path):
    return None
  with open(path, encoding='utf-8') as f:
    return [str(n) for n in json.load(f)]


def read_for_serving(path: str, dicom_window: str = dicom.WINDOW_AUTO,
                     dicom_output: str = dicom.OUTPUT_PNG16) -> bytes:
  """The bytes the model serves for an image file: a PNG's or JPEG's own bytes; a DICOM file
  rendered to PNG as ImageExampleGen renders it (``dicom.render``, the same window and output;
  burned-in annotations are no reason to refuse here: nothing is stored). Other files are a
  PredictError naming the path."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise PredictError(f'{path}: cannot read it: {e.strerror}.') from e
  if dicom.is_dicom(data):
    try:
      return dicom.render(data, window=dicom_window, output=dicom_output,
                          allow_burned_in=True).png
    except dicom.BadDicom as e:
      raise PredictError(f'{path}: {e}') from e
  if data.startswith(_PNG) or data.startswith(_JPEG):
    return data
  raise PredictError(f'{path}: not a PNG, JPEG or DICOM file (it starts with {data[:8]!r}).')


@dataclasses.dataclass
class Prediction:
  path: str
  class_name: str
  probabilities: Dict[str, float]  # class name -> probability, in label order
  mask_coverage: float  # share of the image's pixels the mask head calls lung
  mask: np.ndarray  # float32 [H, W]: per-pixel lung probability at the model's size


def predict(saved_model_dir: str, paths: Sequence[str], batch_size: int = 16,
            dicom_window: str = dicom.WINDOW_AUTO,
            dicom_output: str = dicom.OUTPUT_PNG16) -> List[Prediction]:
  """Every file of ``paths`` through the model's ``serving_default``, ``batch_size`` at a
  time. Errors (an unreadable file, a request the model refuses) name the file."""
  import tensorflow as tf  # heavy: only here
  serve = tf.saved_model.load(saved_model_dir).signatures[config_lib.SERVING_SIGNATURE]
  names = class_names(saved_model_dir)
  out: List[Prediction] = []
  for start in range(0, len(paths), batch_size):
    batch = list(paths[start:start + batch_size])
    data = [read_for_serving(p, dicom_window, dicom_output) for p in batch]
    try:
      result = serve(**{config_lib.IMAGE_INPUT: tf.constant(data)})
    except tf.errors.InvalidArgumentError as e:
      raise PredictError(f'the model refused {", ".join(batch)}: {e.message}') from e
    probabilities = result[config_lib.PROBABILITIES].numpy()
    masks = result[config_lib.MASK_OUTPUT].numpy()[..., 0]
    top = result[config_lib.CLASS_NAME].numpy()
    labels = names or [str(k) for k in range(probabilities.shape[1])]
    for path, p, mask, name in zip(batch, probabilities, masks, top):
      out.append(Prediction(path=path, class_name=name.decode(),
                            probabilities={labels[k]: float(v) for k, v in enumerate(p)},
                            mask_coverage=float(np.mean(mask > MASK_THRESHOLD)), mask=mask))
  return out


def mask_png(mask: np.ndarray) -> bytes:
  """A predicted mask as the masks are stored: 8-bit grayscale PNG, 255 lung, 0 elsewhere."""
  import io

  from PIL import Image
  out = io.BytesIO()
  Image.fromarray(((mask > MASK_THRESHOLD) * 255).astype(np.uint8), mode='L').save(out, 'PNG')
  return out.getvalue()


def mask_names(paths: Sequence[str]) -> List[str]:
  """A file name per input for its mask, ``<stem>_mask.png``; stems that repeat get their
  position too (``<stem>_<i>_mask.png``), so no mask overwrites another."""
  stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
  repeated = {s for s in stems if stems.count(s) > 1}
  return [f'{s}_{i}_mask.png' if s in repeated else f'{s}_mask.png'
          for i, s in enumerate(stems)]
