"""What ImageExampleGen measured on the images' pixels, as ClassBalance's findings and report
data (pure: plain Python; no TensorFlow, no I/O).

ImageExampleGen's workers measure every image they decode (``--verify full``) and its deal step
writes three things into the ingest summary; this module reads them defensively (older
summaries, ``--verify header`` and ``--near-duplicates off`` leave them empty, and any key may be
missing) and turns them into findings:

- **Near-duplicate groups** (``near_duplicate_groups``, at most 200 listed, two-label groups
  first): copies of one image re-encoded, resized, cropped or re-exposed, which the sha256 of
  the bytes misses. A group whose members carry two classes is an ERROR
  (``NEAR_DUPLICATE_LABELS``: one image, two labels); a group whose members sit in two splits --
  possible with ``--near-duplicates report``, or when an earlier span published members in
  another split -- is an ERROR leakage finding (``NEAR_DUPLICATE_ACROSS_SPLITS``), one per
  group, as ``balance.duplicate_findings`` does for identical bytes.
- **Image quality** (``quality``: findings such as dark, light, blurry, low_information,
  odd_size, odd_aspect_ratio, grayscale_mix counted per split and class, with examples): shown
  as a table, not as findings, except when one class has a finding far more often than the
  other classes -- then a model can learn the artefact instead of the disease: a WARNING
  (``QUALITY_CLASS_RATE``) when the class has at least ``QUALITY_MIN_FLAGGED`` such images, at
  least ``QUALITY_RATE_RATIO`` times the other classes' rate, and a rate above theirs by more
  than ``QUALITY_RATE_GAP`` plus a 3-sigma sampling allowance (the two-proportion standard
  error). Finding codes are plain strings: a code this module does not know is shown as is.
- **Shortcut risk** (``shortcut``): how well non-anatomical properties (size, mode, format,
  intensity, borders, corners) predict the class; when ImageExampleGen's assessment says
  ``warning``, a WARNING (``SHORTCUT_RISK``) with its one-sentence message and top properties.
"""
import dataclasses
import json
import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from components.class_balance import balance
from components.errors import escape_name

# ImageExampleGen's --near-duplicates modes (its config's choices; '' when not measured).
MODE_GROUP = 'group'
MODE_REPORT = 'report'
MODE_OFF = 'off'

EXAMPLE_MEMBERS = 6  # members quoted in a finding
THUMBNAILS_PER_GROUP = 8  # members of a listed group shown as thumbnails
MAX_GROUPS = 200  # groups read from the summary (it lists at most 200)
MAX_QUALITY_EXAMPLES = 8  # examples per quality finding shown as thumbnails
HASH_CHARS = 12

QUALITY_MIN_FLAGGED = 5
QUALITY_RATE_RATIO = 3.0
QUALITY_RATE_GAP = 0.05

# What a quality finding code means, for messages ("34 of 120 'COVID' images are dark").
QUALITY_MEANING = {
    'dark': 'are dark',
    'light': 'are washed out (light)',
    'blurry': 'are blurry',
    'low_information': 'carry little information (nearly uniform)',
    'odd_size': 'have an unusual size',
    'odd_aspect_ratio': 'have an unusual aspect ratio',
    'grayscale_mix': 'differ from the others in colour mode (grayscale vs colour)',
}


def _str(value: Any) -> str:
  return '' if value is None else value if isinstance(value, str) else str(value)


def _int(value: Any) -> Optional[int]:
  if isinstance(value, bool):
    return None
  try:
    return int(value)
  except (TypeError, ValueError):
    return None


def _float(value: Any) -> Optional[float]:
  if isinstance(value, bool) or value is None:
    return None
  try:
    out = float(value)
  except (TypeError, ValueError):
    return None
  return out if math.isfinite(out) else None


def _list(value: Any) -> Sequence[Any]:
  return value if isinstance(value, (list, tuple)) else ()


def _member(entry: Mapping[str, Any]) -> Dict[str, Any]:
  """A group member: this run's image (image_id, line, class_name, split, span, sha256) or an
  earlier span's (sha256, split, span; ``prior``)."""
  image_id = _str(entry.get('image_id'))
  return {'image_id': image_id, 'line': _int(entry.get('line')),
          'class_name': _str(entry.get('class_name')), 'split': _str(entry.get('split')),
          'span': _int(entry.get('span')), 'sha256': _str(entry.get('sha256')),
          'prior': not image_id}


def _group(entry: Any) -> Optional[Dict[str, Any]]:
  if not isinstance(entry, Mapping):
    return None
  members = [_member(m) for m in _list(entry.get('members')) if isinstance(m, Mapping)]
  if not members:
    return None
  listed = lambda key: {_str(v) for v in _list(entry.get(key)) if _str(v)}
  classes = sorted({m['class_name'] for m in members if m['class_name']} | listed('classes'))
  splits = sorted({m['split'] for m in members if m['split']} | listed('splits'))
  return {'members': members, 'classes': classes, 'splits': splits,
          'crosses_classes': len(classes) > 1 or bool(entry.get('crosses_classes')),
          'crosses_splits': len(splits) > 1 or bool(entry.get('crosses_splits'))}


def _counts(data: Any) -> Dict[str, Dict[str, Dict[str, int]]]:
  """{split: {class name: {code: n}}}; entries of any other shape left out."""
  out: Dict[str, Dict[str, Dict[str, int]]] = {}
  for split, by_class in (data.items() if isinstance(data, Mapping) else ()):
    for cls, by_code in (by_class.items() if isinstance(by_class, Mapping) else ()):
      for code, n in (by_code.items() if isinstance(by_code, Mapping) else ()):
        count = _int(n)
        if count:
          out.setdefault(_str(split), {}).setdefault(_str(cls), {})[_str(code)] = count
  return out


def _examples(data: Any) -> Dict[str, List[Dict[str, Any]]]:
  out = {}
  for code, listed in (data.items() if isinstance(data, Mapping) else ()):
    entries = [_member(e) for e in _list(listed) if isinstance(e, Mapping) and e.get('image_id')]
    if entries:
      out[_str(code)] = entries
  return out


def _scalar(value: Any) -> Any:
  """A JSON scalar as is; anything else as (at most 200 characters of) its JSON."""
  if value is None or isinstance(value, (bool, int, float, str)):
    return value
  text = json.dumps(value, sort_keys=True, default=str)
  return text if len(text) <= 200 else text[:199] + '…'


def _properties(data: Any) -> List[Tuple[str, float]]:
  """[[name, importance], ...] or [{name, importance}, ...] -> [(name, importance)]."""
  out = []
  for item in _list(data):
    if isinstance(item, Mapping):
      name, value = item.get('name'), item.get('importance')
    elif isinstance(item, (list, tuple)) and len(item) >= 2:
      name, value = item[0], item[1]
    else:
      continue
    importance = _float(value)
    if name is not None and importance is not None:
      out.append((_str(name), importance))
  return out


SHORTCUT_KEYS = ('balanced_accuracy', 'chance', 'threshold', 'warning', 'message',
                 'top_properties')


def _shortcut(data: Any) -> Dict[str, Any]:
  if not isinstance(data, Mapping) or not data:
    return {}
  return {'balanced_accuracy': _float(data.get('balanced_accuracy')),
          'chance': _float(data.get('chance')), 'threshold': _float(data.get('threshold')),
          'warning': bool(data.get('warning')), 'message': _str(data.get('message')),
          'top_properties': _properties(data.get('top_properties')),
          'other': {_str(k): _scalar(v) for k, v in sorted(data.items(), key=lambda kv: str(kv[0]))
                    if k not in SHORTCUT_KEYS}}


@dataclasses.dataclass(frozen=True)
class ImageFindings:
  """The ingest summary's pixel findings, normalized (every key present, right types)."""
  near_duplicates: str = ''  # the mode: 'group' | 'report' | 'off' | '' (not measured)
  groups: Tuple[Dict[str, Any], ...] = ()  # listed groups: {members, classes, splits, ...}
  groups_total: int = 0  # all groups ImageExampleGen found (it lists at most 200)
  quality_images: int = 0  # images measured; 0: no quality measures
  quality_counts: Dict[str, Dict[str, Dict[str, int]]] = dataclasses.field(default_factory=dict)
  quality_examples: Dict[str, List[Dict[str, Any]]] = dataclasses.field(default_factory=dict)
  quality_thresholds: Dict[str, Any] = dataclasses.field(default_factory=dict)
  shortcut: Dict[str, Any] = dataclasses.field(default_factory=dict)
  # {code: {class name: {flagged, images, rate}}} over all splits (filled by ``class_rates``)
  class_rates: Dict[str, Dict[str, Dict[str, Any]]] = dataclasses.field(default_factory=dict)

  @property
  def measured(self) -> bool:
    """Whether the summary carries any pixel finding (a newer ImageExampleGen, verify=full)."""
    return bool(self.near_duplicates or self.groups or self.quality_images or self.shortcut)

  @property
  def quality_codes(self) -> List[str]:
    """Every finding code counted or exemplified, the known ones in QUALITY_MEANING's order."""
    found = {code for by_class in self.quality_counts.values() for by_code in by_class.values()
             for code in by_code} | set(self.quality_examples)
    return [c for c in QUALITY_MEANING if c in found] + sorted(found - set(QUALITY_MEANING))

  def thumbnail_ids(self) -> List[str]:
    """The image ids whose thumbnails the report shows: the first THUMBNAILS_PER_GROUP members
    of every listed group and the first MAX_QUALITY_EXAMPLES examples of every quality
    finding (this run's images only: an earlier span's are not in these shard files)."""
    ids = [m['image_id'] for g in self.groups for m in g['members'][:THUMBNAILS_PER_GROUP]
           if m['image_id']]
    ids += [e['image_id'] for listed in self.quality_examples.values()
            for e in listed[:MAX_QUALITY_EXAMPLES]]
    return sorted(set(ids))

  def to_dict(self) -> Dict[str, Any]:
    return {
        'near_duplicates': {
            'mode': self.near_duplicates, 'groups': self.groups_total,
            'listed': [dict(g) for g in self.groups],
            'two_labels': sum(g['crosses_classes'] for g in self.groups),
            'across_splits': sum(g['crosses_splits'] for g in self.groups)},
        'quality': {'images': self.quality_images, 'counts': self.quality_counts,
                    'examples': self.quality_examples, 'thresholds': self.quality_thresholds,
                    'class_rates': self.class_rates},
        'shortcut': dict(self.shortcut, top_properties=[
            list(p) for p in self.shortcut.get('top_properties', [])]) if self.shortcut else {},
    }


def read(summary: Any) -> ImageFindings:
  """The ingest summary's ``near_duplicates``, ``near_duplicate_groups``, ``quality`` and
  ``shortcut`` (None, an older summary or missing keys: nothing)."""
  if summary is None:
    return ImageFindings()
  groups = [g for g in (_group(e) for e in _list(getattr(summary, 'near_duplicate_groups',
                                                         None))[:MAX_GROUPS]) if g]
  quality = getattr(summary, 'quality', None)
  quality = quality if isinstance(quality, Mapping) else {}
  thresholds = quality.get('thresholds')
  return ImageFindings(
      near_duplicates=_str(getattr(summary, 'near_duplicates', '')),
      groups=tuple(groups),
      groups_total=max(_int(quality.get('near_duplicate_groups')) or 0, len(groups)),
      quality_images=max(_int(quality.get('images')) or 0, 0),
      quality_counts=_counts(quality.get('counts')),
      quality_examples=_examples(quality.get('examples')),
      quality_thresholds=({_str(k): _scalar(v) for k, v in sorted(thresholds.items())}
                          if isinstance(thresholds, Mapping) else {}),
      shortcut=_shortcut(getattr(summary, 'shortcut', None)))


# --- Findings ---------------------------------------------------------------------------------

def _who(m: Mapping[str, Any]) -> str:
  """One member, for a message (repr'd ids and escaped names: terminal-safe)."""
  if m['prior']:
    span = f'span {m["span"]}' if m['span'] is not None else 'an earlier span'
    return (f'an image of {span} (sha256 {m["sha256"][:HASH_CHARS]}, split '
            f'{escape_name(m["split"]) or "?"})')
  line = f'line {m["line"]} ' if m['line'] is not None else ''
  return (f'{line}{m["image_id"]!r} ({escape_name(m["class_name"]) or "?"}, '
          f'{escape_name(m["split"]) or "?"})')


def _members(group: Mapping[str, Any]) -> str:
  members = group['members']
  quoted = ', '.join(_who(m) for m in members[:EXAMPLE_MEMBERS])
  more = len(members) - EXAMPLE_MEMBERS
  return quoted + (f' and {more} more' if more > 0 else '')


_COPIES = 'copies of one image re-encoded, resized, cropped or re-exposed'


def label_findings(groups: Sequence[Mapping[str, Any]]) -> List[balance.Finding]:
  """One ERROR per near-duplicate group whose members carry two (or more) classes."""
  out = []
  for g in groups:
    if not g['crosses_classes']:
      continue
    classes = ', '.join(repr(escape_name(c)) for c in g['classes'])
    out.append(balance.Finding(
        balance.NEAR_DUPLICATE_LABELS, balance.DATASET, '/'.join(g['splits']), '', None, '',
        len(g['classes']), 1,
        f'one image, two labels: near-duplicate images ({_COPIES}) carry the classes '
        f'{classes}: {_members(g)}; correct the wrong label in the CSV (or remove the copy)',
        severity=balance.ERROR))
  return out


def leakage_findings(groups: Sequence[Mapping[str, Any]], mode: str) -> List[balance.Finding]:
  """One ERROR leakage finding per near-duplicate group whose members sit in several splits
  (as ``balance.duplicate_findings`` for identical bytes)."""
  if mode == MODE_REPORT:
    remedy = ('ImageExampleGen dealt them as any image (--near-duplicates report): '
              '--near-duplicates group deals each group to one split')
  else:
    remedy = ('ImageExampleGen --near-duplicates group deals each group to one split, but '
              'images an earlier span published keep their split: remove the extra copies, '
              'or deal every image again (--fresh-splits)')
  out = []
  for g in groups:
    if not g['crosses_splits']:
      continue
    out.append(balance.Finding(
        balance.NEAR_DUPLICATE_ACROSS_SPLITS, balance.DATASET, '/'.join(g['splits']), '', None,
        '', len(g['members']), 1,
        f'near-duplicate images ({_COPIES}) are in splits {", ".join(g["splits"])}: '
        f'{_members(g)}; {remedy}'))
  return out


def rate_threshold(rate: float, images: int, other_images: int) -> float:
  """QUALITY_RATE_GAP plus 3 two-proportion standard errors at the pooled ``rate``."""
  return QUALITY_RATE_GAP + 3 * math.sqrt(max(rate * (1 - rate), 0.0)
                                          * (1 / images + 1 / other_images))


def _stands_out(cls: str, by_class: Mapping[str, Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
  """Class ``cls``'s rate of one finding against the other classes' pooled: the numbers when
  it stands out (module doc), else None."""
  r = by_class[cls]
  others = [o for c, o in by_class.items() if c != cls]
  other_images = sum(o['images'] for o in others)
  if r['flagged'] < QUALITY_MIN_FLAGGED or not other_images:
    return None
  other_flagged = sum(o['flagged'] for o in others)
  rate, other_rate = r['flagged'] / r['images'], other_flagged / other_images
  pooled = (r['flagged'] + other_flagged) / (r['images'] + other_images)
  threshold = rate_threshold(pooled, r['images'], other_images)
  if rate < QUALITY_RATE_RATIO * other_rate or rate - other_rate <= threshold:
    return None
  return {'rate': rate, 'other_rate': other_rate, 'other_flagged': other_flagged,
          'other_images': other_images, 'threshold': threshold}


def class_rates(counts: Mapping[str, Mapping[str, Mapping[str, int]]],
                class_totals: Mapping[str, int]) -> Dict[str, Dict[str, Dict[str, Any]]]:
  """{split: {class: {code: n}}} and {class: images} -> {code: {class: {flagged, images, rate,
  warning}}}, all splits pooled (classes without images left out); ``warning``: the class's
  rate stands out from the other classes' (module doc)."""
  flagged: Dict[str, Dict[str, int]] = {}
  for by_class in counts.values():
    for cls, by_code in by_class.items():
      for code, n in by_code.items():
        flagged.setdefault(code, {})
        flagged[code][cls] = flagged[code].get(cls, 0) + n
  out: Dict[str, Dict[str, Dict[str, Any]]] = {
      code: {cls: {'flagged': n_by_class.get(cls, 0), 'images': total,
                   'rate': round(n_by_class.get(cls, 0) / total, 6)}
             for cls, total in class_totals.items() if total > 0}
      for code, n_by_class in sorted(flagged.items())}
  for by_class in out.values():
    for cls, r in by_class.items():
      r['warning'] = _stands_out(cls, by_class) is not None
  return out


def quality_findings(rates: Mapping[str, Mapping[str, Mapping[str, Any]]]
                     ) -> List[balance.Finding]:
  """A WARNING per (finding code, class) whose rate stands far above the other classes'."""
  out = []
  for code, by_class in rates.items():
    for cls, r in by_class.items():
      found = _stands_out(cls, by_class)
      if found is None:
        continue
      meaning = QUALITY_MEANING.get(code, f'have the finding {code!r}')
      out.append(balance.Finding(
          balance.QUALITY_CLASS_RATE, balance.DATASET, '', '', None, cls,
          round(found['rate'] - found['other_rate'], 6), round(found['threshold'], 6),
          f'image quality: {r["flagged"]} of {r["images"]} {escape_name(cls)!r} images '
          f'({found["rate"]:.1%}) {meaning}, vs {found["other_rate"]:.1%} of the other '
          f'classes\' ({found["other_flagged"]} of {found["other_images"]}); a model can learn '
          'this instead of the disease: check how this class was acquired or exported (the '
          'examples are in the report\'s quality section)'))
  return out


def shortcut_findings(shortcut: Mapping[str, Any]) -> List[balance.Finding]:
  """ImageExampleGen's shortcut-risk assessment -> a WARNING when it says ``warning``."""
  if not shortcut or not shortcut.get('warning'):
    return []
  accuracy, chance = shortcut.get('balanced_accuracy'), shortcut.get('chance')
  threshold = shortcut.get('threshold')
  measured = (f'balanced accuracy {accuracy:.2f}' if accuracy is not None else
              'a balanced accuracy')
  measured += f' vs chance {chance:.2f}' if chance is not None else ''
  measured += f', warning at {threshold:.2f}' if threshold is not None else ''
  top = ', '.join(f'{escape_name(name)} {importance:.2f}'
                  for name, importance in shortcut.get('top_properties', [])[:5])
  message = escape_name(shortcut.get('message', '')).strip()
  return [balance.Finding(
      balance.SHORTCUT_RISK, balance.DATASET, '', '', None, '',
      accuracy if accuracy is not None else 0.0, threshold if threshold is not None else 0.0,
      f'shortcut risk: non-anatomical image properties predict the class ({measured})'
      + (f'; top properties: {top}' if top else '') + (f'. {message}' if message else ''),
      severity=balance.WARNING)]


def evaluate(found: ImageFindings, class_totals: Mapping[str, int]
             ) -> Tuple[ImageFindings, List[balance.Finding]]:
  """-> (``found`` with its class rates, its findings). ``class_totals``: {class name: images
  over all splits} (the denominators of the quality rates)."""
  rates = class_rates(found.quality_counts, class_totals)
  found = dataclasses.replace(found, class_rates=rates)
  return found, (label_findings(found.groups)
                 + leakage_findings(found.groups, found.near_duplicates)
                 + quality_findings(rates) + shortcut_findings(found.shortcut))
