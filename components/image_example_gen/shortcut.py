"""Shortcut risk (pure: NumPy and OpenCV; scikit-learn loaded inside ``assess``): how well trivial,
non-anatomical properties of the files predict the class.

When each class comes from another hospital or device, a model can learn the source -- image
size, exposure, borders, a burned-in marker -- instead of the disease (DeGrave et al., Nature
Machine Intelligence 2021). ``properties`` measures such properties per image (in the Beam
workers, on the pixels they decode); ``assess`` cross-validates a shallow decision tree on them
(stratified folds, class-balanced) and warns when it tells some class from the others far
better than chance (scikit-learn's tree: the library that does it; a depth-3 tree also names
the properties it used).
"""
import dataclasses
import math
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from components.image_example_gen import quality

# Warn when some class is told from the rest this well (its one-vs-rest balanced accuracy,
# chance 0.5): one class from another source is the typical shortcut, and it hardly moves the
# balanced accuracy over all classes.
DEFAULT_THRESHOLD = 0.8
FOLDS = 5
MIN_PER_CLASS = 5  # fewer images in a class: no assessment
TREE_DEPTH = 3
FORMATS = ('png', 'jpeg', 'dicom')
_BORDER = 0.05  # the border band: this share of each side
_CORNER = 0.10  # corner squares: this share of each side
WHAT_TO_DO = ('crop or mask the borders and corners, equalise sizes and intensities across '
              'classes, or re-source the classes from the same sites')


@dataclasses.dataclass(frozen=True)
class ShortcutResult:
  balanced_accuracy: float  # cross-validated, over all classes; 0.0 when not assessed
  chance: float  # 1 / number of classes
  skill: float  # (balanced_accuracy - chance) / (1 - chance)
  worst_class: int  # the label told from the rest best (-1 when not assessed)
  worst_class_accuracy: float  # its one-vs-rest balanced accuracy (chance 0.5)
  top_properties: Tuple[Tuple[str, float], ...]  # (name, importance), most important first
  warning: bool
  message: str  # one sentence


def properties(grey: np.ndarray, width: int, height: int, mode: str, bit_depth: int,
               file_format: str, summary: Optional[quality.Summary] = None) -> Dict[str, float]:
  """Non-anatomical properties of one image: size, aspect, colour mode, bit depth, file format
  (one-hot), intensity statistics, and the border band's and the corners' statistics (a
  burned-in marker or a collimation edge shows there), on quality.py's strided sample
  (``summary``: quality.summarise(grey), shared with quality.measure; computed here unless
  given). ``grey``: ``perceptual.to_grey``'s output, or uint8 grey pixels as decoded."""
  summary = summary if summary is not None else quality.summarise(grey)
  s, scale = summary.sample, summary.scale
  h, w = s.shape
  b = max(1, round(_BORDER * min(h, w)))
  c = max(1, round(_CORNER * min(h, w)))
  # The border band: the whole sample less its inside, by sums (no copy).
  mean, std = summary.mean, summary.std
  inner = s[b:h - b, b:w - b]
  inner_mean, inner_std = ((float(x[0, 0]) * scale for x in cv2.meanStdDev(inner))
                           if inner.size else (0.0, 0.0))  # a tiny image is all border
  inner_size = inner.size
  n_border = max(s.size - inner_size, 1)
  border_sum = mean * s.size - inner_mean * inner_size
  border_sq = (std ** 2 + mean ** 2) * s.size - (inner_std ** 2 + inner_mean ** 2) * inner_size
  border_mean = border_sum / n_border
  border_var = max(border_sq / n_border - border_mean ** 2, 0.0)
  out = {
      'width': float(width), 'height': float(height),
      'aspect': float(width) / max(float(height), 1.0),
      'colour_mode': 1.0 if mode in quality.COLOUR_MODES else 0.0,
      'bit_depth': float(bit_depth),
      'mean': mean, 'std': std, 'p01': summary.p01, 'p99': summary.p99,
      'border_mean': border_mean, 'border_std': math.sqrt(border_var),
  }
  corners = (('top_left', s[:c, :c]), ('top_right', s[:c, -c:]), ('bottom_left', s[-c:, :c]),
             ('bottom_right', s[-c:, -c:]))
  for name, corner in corners:
    _, corner_std = cv2.meanStdDev(corner)
    out[f'corner_{name}_max'] = float(corner.max()) * scale
    out[f'corner_{name}_std'] = float(corner_std[0, 0]) * scale
  fmt = file_format.lower().replace('jpg', 'jpeg')
  for f in FORMATS:
    out[f'format_{f}'] = 1.0 if fmt == f else 0.0
  return out


def _not_assessed(chance: float, why: str) -> ShortcutResult:
  return ShortcutResult(0.0, chance, 0.0, -1, 0.0, (), False,
                        f'Shortcut risk not assessed: {why}.')


def assess(properties_list: Sequence[Dict[str, float]], labels: Sequence[int], seed: int = 0,
           threshold: float = DEFAULT_THRESHOLD) -> ShortcutResult:
  """Cross-validated predictions of a shallow tree (label from properties); ``warning`` when
  some class's one-vs-rest balanced accuracy (from the same predictions) is at least
  ``threshold``. Deterministic for a seed."""
  if len(properties_list) != len(labels):
    raise ValueError(f'{len(properties_list)} property rows but {len(labels)} labels')
  classes, counts = np.unique(np.asarray(labels), return_counts=True)
  chance = 1.0 / len(classes) if len(classes) else 1.0
  if len(classes) < 2:
    return _not_assessed(chance, 'the images have fewer than two classes')
  if counts.min() < MIN_PER_CLASS:
    return _not_assessed(chance, f'a class has {int(counts.min())} image(s), fewer than '
                                 f'{MIN_PER_CLASS}')
  from sklearn.metrics import balanced_accuracy_score  # pylint: disable=import-outside-toplevel
  from sklearn.model_selection import StratifiedKFold  # pylint: disable=import-outside-toplevel
  from sklearn.tree import DecisionTreeClassifier  # pylint: disable=import-outside-toplevel
  names: List[str] = sorted({k for p in properties_list for k in p})
  x = np.array([[p.get(k, 0.0) for k in names] for p in properties_list], np.float64)
  y = np.asarray(labels)
  folds = StratifiedKFold(n_splits=int(min(FOLDS, counts.min())), shuffle=True,
                          random_state=seed)
  predicted = np.empty_like(y)
  importances = np.zeros(len(names))
  for train, test in folds.split(x, y):
    tree = DecisionTreeClassifier(max_depth=TREE_DEPTH, class_weight='balanced',
                                  random_state=seed).fit(x[train], y[train])
    predicted[test] = tree.predict(x[test])
    importances += tree.feature_importances_
  accuracy = float(balanced_accuracy_score(y, predicted))
  skill = (accuracy - chance) / (1 - chance)
  total = importances.sum() or 1.0
  top = tuple((names[i], round(float(importances[i] / total), 3))
              for i in np.argsort(-importances, kind='stable')[:5] if importances[i] > 0)
  per_class = {}
  for c in classes:
    recall = float(np.mean(predicted[y == c] == c))
    specificity = float(np.mean(predicted[y != c] != c))
    per_class[c] = (recall + specificity) / 2
  worst = max(sorted(per_class), key=lambda c: per_class[c])
  warning = per_class[worst] >= threshold
  listed = ', '.join(name for name, _ in top[:3]) or 'none'
  if warning:
    message = (f'WARNING: file and border properties alone ({listed}) tell class {worst} from '
               f'the others with balanced accuracy {per_class[worst]:.2f} (chance 0.50; all '
               f'classes {accuracy:.2f} against {chance:.2f}), so a model can learn the source '
               f'instead of the disease: {WHAT_TO_DO}.')
  else:
    message = (f'No shortcut risk found: file and border properties tell no class from the '
               f'others better than balanced accuracy {per_class[worst]:.2f} (threshold '
               f'{threshold:.2f}; all classes {accuracy:.2f} against chance {chance:.2f}).')
  return ShortcutResult(round(accuracy, 4), chance, round(skill, 4), int(worst),
                        round(per_class[worst], 4), top, warning, message)
