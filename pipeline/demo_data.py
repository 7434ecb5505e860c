"""A synthetic dataset laid out like the COVID-19 Radiography Database (numpy + PIL only).

``generate(out, scale, missing_masks, seed)`` writes
``<out>/COVID-19_Radiography_Dataset/<Class>/{images,masks}/<Class>-<n>.png`` for the four
classes in the real proportions (21,165 images at scale 1), ``all_image_mask_pairs.csv`` with
paths relative to ``<out>``, and ``class_mapping.json``. Images are 299x299 8-bit grayscale
with radiograph structure (body, dark lung fields, spine, heart, ribs, film grain), so PNG sizes
are realistic (tens of KB); masks are 256x256, 0/255 (the two lung fields).

The classes differ by where and how opacities lie in the lung fields, nothing else:

* Normal: clear lung fields.
* COVID: ground-glass patches in the outer, lower part of both lungs (bilateral, peripheral).
* Lung_Opacity: one dense consolidation in the upper or middle zone of one lung (lobar).
* Viral Pneumonia: streaks fanning out from the hila of both lungs (perihilar, interstitial).

Everything else -- lung size and place, how dark the lungs are, body and background
brightness, heart, ribs, exposure (gain, offset, gamma) and grain -- is drawn per image
independently of the class, so the image's size, mode and global or border intensity
statistics do not tell the classes apart (a cross-validated logistic regression over mean,
std, percentiles, border and corner means stays near chance); a model must look at the lungs.

Each image depends only on (seed, class, n): the output is deterministic and order-free, so
``workers`` processes can render and write images in any order with identical results.
"""
import csv
import dataclasses
import json
import multiprocessing
import os
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from pipeline import configs

CLASS_COUNTS = {'COVID': 3616, 'Normal': 10192, 'Lung_Opacity': 6012, 'Viral Pneumonia': 1345}
CLASS_MAPPING = {'COVID': 0, 'Normal': 1, 'Viral Pneumonia': 2, 'Lung_Opacity': 3}
DATASET_DIR = 'COVID-19_Radiography_Dataset'
CSV_NAME = 'all_image_mask_pairs.csv'
MAPPING_NAME = 'class_mapping.json'
IMAGE_SIZE = 299
MASK_SIZE = 256


@dataclasses.dataclass(frozen=True)
class DemoDataset:
  root: str
  csv_path: str
  class_mapping_path: str
  class_counts: Dict[str, int]
  num_rows: int
  num_missing_masks: int


def class_counts_for_scale(scale: float) -> Dict[str, int]:
  """round(real count × scale) per class, at least 1. Scale 0.1 -> 362/1019/601/134."""
  if not scale > 0:
    raise configs.PipelineConfigError(f'scale must be > 0, got {scale!r} (option --scale).')
  return {name: max(1, round(n * scale)) for name, n in CLASS_COUNTS.items()}


def _grid(size: int):
  axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
  return np.meshgrid(axis, axis)  # (x, y), each [size, size] float32; y grows downwards


_IMAGE_GRID = _grid(IMAGE_SIZE)
_MASK_GRID = _grid(MASK_SIZE)
# Parts that do not vary per image, computed once.
_X, _Y = _IMAGE_GRID
_BODY = np.exp(-((_X / 0.92) ** 4 + (_Y / 1.15) ** 4)).astype(np.float32)  # 1 inside the trunk
_VIGNETTE = (1.0 - 0.125 * (_X ** 2 + _Y ** 2)).astype(np.float32)
_RIB_WAVE = (17.0 * (_Y + 0.35 * _X ** 2)).astype(np.float32)
_Lung = Tuple[float, float, float, float]  # centre x, centre y, radius x, radius y


def _ellipse_distance(x, y, cx, cy, rx, ry):
  """((x-cx)/rx)^2 + ((y-cy)/ry)^2: below 1 inside the ellipse."""
  return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2


def _blob(cx, cy, rx, ry):
  """A soft elliptical spot: 1 at (cx, cy), falling off over (rx, ry)."""
  return np.exp(-(((_X - cx) / np.float32(rx)) ** 2 + ((_Y - cy) / np.float32(ry)) ** 2))


def _streak(x0, y0, angle, length, width):
  """A soft line segment from (x0, y0) along ``angle`` (radians), ``length`` long."""
  dx, dy = np.float32(np.cos(angle)), np.float32(np.sin(angle))
  along = np.clip((_X - x0) * dx + (_Y - y0) * dy, 0, length)
  return np.exp(-((_X - x0 - along * dx) ** 2 + (_Y - y0 - along * dy) ** 2)
                / np.float32(width ** 2))


def _opacities(class_name: str, lungs_at: Sequence[_Lung], rng) -> np.ndarray:
  """The class's pattern (module docstring), before it is confined to the lung fields."""
  opacity = np.zeros_like(_X)
  sides = (-1, 1)  # lungs_at[0] is the left of the image, lungs_at[1] the right
  if class_name == 'COVID':  # bilateral, peripheral, lower zones
    for side, (cx, cy, rx, ry) in zip(sides, lungs_at):
      for _ in range(rng.integers(2, 4)):
        radius = rng.uniform(0.08, 0.13)
        opacity += 0.20 * _blob(cx + side * rx * rng.uniform(0.45, 0.75),
                                cy + ry * rng.uniform(0.15, 0.65), radius, radius)
  elif class_name == 'Lung_Opacity':  # one lung, upper or middle zone, dense
    cx, cy, rx, ry = lungs_at[rng.integers(2)]
    patch = _blob(cx + rng.uniform(-0.05, 0.05), cy - ry * rng.uniform(0.15, 0.45),
                  rx * rng.uniform(0.7, 0.9), ry * rng.uniform(0.3, 0.4))
    opacity += 0.26 * np.clip(patch * 1.5, 0.0, 1.0)
  elif class_name == 'Viral Pneumonia':  # bilateral, fanning out from the hila
    for side, (cx, cy, rx, _) in zip(sides, lungs_at):
      hilum_x, hilum_y = cx - side * rx * 0.55, cy - 0.05
      outwards = np.pi / 2 - side * np.pi / 2  # angle 0 points right, pi left
      for _ in range(rng.integers(4, 7)):
        opacity += 0.12 * _streak(hilum_x, hilum_y, outwards + side * rng.uniform(-0.9, 0.9),
                                  rng.uniform(0.25, 0.4), rng.uniform(0.03, 0.045))
  return np.minimum(opacity, 0.4)


def render(class_name: str, n: int, seed: int):
  """-> (image uint8 [299,299], mask uint8 [256,256] of 0/255) for one (class, n, seed)."""
  rng = np.random.default_rng([seed, list(CLASS_COUNTS).index(class_name), n])
  lungs_at = [(side * 0.40 + rng.uniform(-0.06, 0.06), -0.02 + rng.uniform(-0.06, 0.06),
               0.27 + rng.uniform(-0.03, 0.03), 0.58 + rng.uniform(-0.06, 0.06))
              for side in (-1, 1)]
  # Soft lung fields: 1 inside, falling off over the edge (a radiograph has no hard borders).
  d = np.minimum(*(_ellipse_distance(_X, _Y, *p) for p in lungs_at))
  lungs = np.clip(1.5 - d, 0.0, 1.0) ** 2
  spine = (0.32 * np.exp(-(_X / np.float32(0.09 + rng.uniform(-0.01, 0.01))) ** 2)
           * (_Y > -0.75))
  heart = np.float32(rng.uniform(0.08, 0.26)) * _blob(
      rng.uniform(0.02, 0.12), rng.uniform(0.25, 0.4), rng.uniform(0.16, 0.24),
      rng.uniform(0.2, 0.28))
  ribs = 0.07 * (np.sin(_RIB_WAVE + np.float32(rng.uniform(0, 2 * np.pi))) > 0.55) * lungs
  # Background, body and lung darkness vary per image, whatever the class.
  body = np.float32(rng.uniform(0.15, 0.45)) + np.float32(rng.uniform(0.35, 0.55)) * _BODY
  image = body * (1.0 - np.float32(rng.uniform(0.38, 0.70)) * lungs) + spine + ribs + heart
  image = (image + _opacities(class_name, lungs_at, rng) * lungs) * _VIGNETTE
  # Exposure: gamma, contrast and brightness of this film, independent of the class.
  image = np.clip(image, 0.0, None) ** np.float32(np.exp(rng.uniform(-0.45, 0.45)))
  image = ((image - 0.45) * np.float32(rng.uniform(0.7, 1.3)) + 0.45
           + np.float32(rng.uniform(-0.14, 0.14)))
  image += rng.standard_normal(image.shape, dtype=np.float32) * np.float32(0.012)  # grain
  pixels = np.clip(image * 255.0, 0, 255).astype(np.uint8)

  mx, my = _MASK_GRID
  inside = np.minimum(*(_ellipse_distance(mx, my, *p) for p in lungs_at)) < 1.0
  return pixels, inside.astype(np.uint8) * 255


_Task = Tuple[str, str, int, int, str, str]  # out_dir, class, n, seed, image path, mask path


def _write(task: _Task) -> None:
  """Renders one (class, n) and writes its image and (unless '') mask under out_dir."""
  out_dir, class_name, n, seed, image_rel, mask_rel = task
  image, mask = render(class_name, n, seed)
  for rel, pixels in ((image_rel, image), (mask_rel, mask)):
    if rel:
      path = os.path.join(out_dir, rel)
      os.makedirs(os.path.dirname(path), exist_ok=True)
      Image.fromarray(pixels, mode='L').save(path, format='PNG')


def _write_all(tasks: Sequence[_Task], workers: int,
               progress: Optional[Callable[[int, int], None]]) -> None:
  if progress:
    progress(0, len(tasks))
  if workers <= 1 or len(tasks) < 2 * workers:
    for done, task in enumerate(tasks, 1):
      _write(task)
      if progress:
        progress(done, len(tasks))
    return
  # fork: numpy and Pillow are loaded, TensorFlow is not (callers with TensorFlow loaded pass
  # workers=1, the default).
  with multiprocessing.get_context('fork').Pool(workers) as pool:
    for done, _ in enumerate(pool.imap_unordered(_write, tasks, chunksize=8), 1):
      if progress:
        progress(done, len(tasks))


def generate(out_dir: str, scale: float = 1.0, missing_masks: float = 0.0, seed: int = 0,
             workers: int = 1,
             progress: Optional[Callable[[int, int], None]] = None) -> DemoDataset:
  """Writes the dataset under out_dir (see the module docstring) and returns where it is.

  ``workers`` > 1 renders in that many processes (same files); ``progress(done, total)`` is
  called as images are written."""
  if not 0.0 <= missing_masks <= 1.0:
    raise configs.PipelineConfigError(f'missing_masks must be in [0, 1], got {missing_masks!r} '
                     '(option --missing-masks).')
  counts = class_counts_for_scale(scale)
  keys = [(c, n) for c in CLASS_COUNTS for n in range(1, counts[c] + 1)]
  rng = np.random.default_rng([seed, 0xDA7A])
  no_mask = {keys[i] for i in rng.choice(len(keys), size=round(missing_masks * len(keys)),
                                          replace=False)}
  rows, tasks = [], []
  for class_name, n in keys:
    base = f'{DATASET_DIR}/{class_name}'
    image_rel = f'{base}/images/{class_name}-{n}.png'
    mask_rel = '' if (class_name, n) in no_mask else f'{base}/masks/{class_name}-{n}.png'
    tasks.append((out_dir, class_name, n, seed, image_rel, mask_rel))
    rows.append((image_rel, mask_rel, class_name))
  _write_all(tasks, workers, progress)

  csv_path = os.path.join(out_dir, CSV_NAME)
  with open(csv_path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['image_path', 'mask_path', 'class'])
    writer.writerows(rows)
  mapping_path = os.path.join(out_dir, MAPPING_NAME)
  with open(mapping_path, 'w', encoding='utf-8') as f:
    json.dump(CLASS_MAPPING, f, indent=2)
  return DemoDataset(root=out_dir, csv_path=csv_path, class_mapping_path=mapping_path,
                     class_counts=counts, num_rows=len(rows), num_missing_masks=len(no_mask))


# --- Spans: new data every week ---------------------------------------------------------------

SPAN_CSV_PATTERN = 'index-{SPAN}.csv'  # generate_spans writes index-1.csv, index-2.csv, ...
SPAN_DIR = 'spans'
PATIENT_COLUMN = 'patient_id'
# Class mixes of the spans generate_spans writes by default: span 2 is span 1 give or take a
# few points (no drift), span 3 shifts to COVID (beyond ClassBalance's default drift thresholds).
DEFAULT_SPAN_MIXES = (
    {'COVID': 0.20, 'Normal': 0.45, 'Lung_Opacity': 0.25, 'Viral Pneumonia': 0.10},
    {'COVID': 0.22, 'Normal': 0.43, 'Lung_Opacity': 0.25, 'Viral Pneumonia': 0.10},
    {'COVID': 0.50, 'Normal': 0.20, 'Lung_Opacity': 0.20, 'Viral Pneumonia': 0.10},
)
def span_mixes(num_spans: int) -> Tuple[Dict[str, float], ...]:
  """DEFAULT_SPAN_MIXES for ``num_spans`` spans (the last mix repeats beyond three)."""
  return tuple(DEFAULT_SPAN_MIXES[min(i, len(DEFAULT_SPAN_MIXES) - 1)] for i in range(num_spans))


RETURNING_SHARE = 0.3  # of a span's images: follow-ups of patients seen in the span before


@dataclasses.dataclass(frozen=True)
class SpanDataset:
  root: str
  csv_pattern: str  # <root>/index-{SPAN}.csv
  class_mapping_path: str
  csv_paths: Tuple[str, ...]  # span 1, 2, ...
  class_counts: Tuple[Dict[str, int], ...]  # per span
  patients: Tuple[Dict[str, str], ...]  # per span: {image_path: patient_id}


def _largest_remainder(mix: Dict[str, float], n: int) -> Dict[str, int]:
  raw = {c: mix.get(c, 0.0) * n / (sum(mix.values()) or 1.0) for c in CLASS_COUNTS}
  counts = {c: int(v) for c, v in raw.items()}
  for c in sorted(raw, key=lambda c: (counts[c] - raw[c], c))[:n - sum(counts.values())]:
    counts[c] += 1
  return counts


def generate_spans(out_dir: str, rows_per_span: int = 40,
                   mixes: Sequence[Dict[str, float]] = DEFAULT_SPAN_MIXES, seed: int = 0,
                   first_span: int = 1) -> SpanDataset:
  """Writes one CSV index per span, ``<out>/index-<span>.csv`` (columns image_path, mask_path,
  class, patient_id), with images under ``<out>/spans/<span>/`` and ``class_mapping.json``.

  Span k's class counts follow ``mixes[k]``. About RETURNING_SHARE of a span's images are
  follow-ups of patients from the span before (same class, new image), the rest come from new
  patients, two images each. Deterministic in (rows_per_span, mixes, seed)."""
  rng = np.random.default_rng([seed, 0x5BA5])
  os.makedirs(out_dir, exist_ok=True)
  counter = {c: 0 for c in CLASS_COUNTS}  # images rendered per class, all spans
  next_patient = 0
  previous: Dict[str, list] = {c: [] for c in CLASS_COUNTS}  # patients of the span before
  csv_paths, all_counts, all_patients = [], [], []
  for k, mix in enumerate(mixes):
    span = first_span + k
    counts = _largest_remainder(mix, rows_per_span)
    rows, tasks, patients_now = [], [], {c: [] for c in CLASS_COUNTS}
    for class_name, n_images in counts.items():
      returning = list(previous[class_name])
      rng.shuffle(returning)
      owners = returning[:min(len(returning), int(RETURNING_SHARE * n_images))]
      while len(owners) < n_images:
        next_patient += 1
        owners += [f'P{next_patient:04d}'] * 2
      for patient in owners[:n_images]:
        counter[class_name] += 1
        n = counter[class_name]
        base = f'{SPAN_DIR}/{span}/{class_name}'
        image_rel = f'{base}/images/{class_name}-{n}.png'
        mask_rel = f'{base}/masks/{class_name}-{n}.png'
        tasks.append((out_dir, class_name, n, seed, image_rel, mask_rel))
        rows.append((image_rel, mask_rel, class_name, patient))
        if patient not in patients_now[class_name]:
          patients_now[class_name].append(patient)
    _write_all(tasks, 1, None)
    csv_path = os.path.join(out_dir, SPAN_CSV_PATTERN.replace('{SPAN}', str(span)))
    with open(csv_path, 'w', newline='', encoding='utf-8') as f:
      writer = csv.writer(f)
      writer.writerow(['image_path', 'mask_path', 'class', PATIENT_COLUMN])
      writer.writerows(rows)
    previous = patients_now
    csv_paths.append(csv_path)
    all_counts.append(counts)
    all_patients.append({r[0]: r[3] for r in rows})
  mapping_path = os.path.join(out_dir, MAPPING_NAME)
  with open(mapping_path, 'w', encoding='utf-8') as f:
    json.dump(CLASS_MAPPING, f, indent=2)
  return SpanDataset(out_dir, os.path.join(out_dir, SPAN_CSV_PATTERN), mapping_path,
                     tuple(csv_paths), tuple(all_counts), tuple(all_patients))
