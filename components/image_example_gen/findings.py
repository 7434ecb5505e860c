"""What the deal reports about the images as a whole (pure: runs in the one deal step, on rows
that carry their check pass's facts; no TensorFlow).

- ``near_duplicate_entries``: each near-duplicate group with its members' splits, classes and
  spans (a prior span's members from the split manifest); a group whose members carry two
  labels is flagged (one image, two labels).
- ``quality_entry``: CleanVision's findings (quality.py) counted per split and class, with the
  first examples of each.
- ``shortcut_entry``: how well non-anatomical properties predict the class (shortcut.py).
"""
import collections
import dataclasses
from typing import Any, Dict, List, Optional, Sequence

from components.image_example_gen import image_facts
from components.image_example_gen import quality
from components.image_example_gen import shortcut
from components.image_example_gen.index import IndexRow

MAX_EXAMPLES = 8  # examples listed per finding (all are counted)
MAX_GROUPS = 200  # near-duplicate groups listed (all are counted)


def near_duplicate_entries(groups: Sequence[Sequence[str]], rows: Sequence[IndexRow],
                           split_of: Dict[str, str], prior_images: Dict[str, Any],
                           span: int) -> List[Dict[str, Any]]:
  """Groups (lists of sha256s) -> [{members: [...], classes, splits, crosses_splits,
  crosses_classes}], members of this run first (image_id, line, class_name, split, span,
  sha256), then a prior span's (sha256, split, span). Groups without a member in this run are
  left out."""
  by_sha: Dict[str, List[IndexRow]] = collections.defaultdict(list)
  for r in rows:
    by_sha[r.image_sha256].append(r)
  out = []
  for group in groups:
    current = sorted((r for sha in group for r in by_sha.get(sha, ())),
                     key=lambda r: r.image_id)
    if not current:
      continue
    members: List[Dict[str, Any]] = [
        dict(image_id=r.image_id, line=r.line, class_name=r.class_name,
             split=split_of.get(r.image_id, ''), span=span, sha256=r.image_sha256)
        for r in current]
    members += [dict(sha256=sha, split=prior_images[sha][0], span=prior_images[sha][1])
                for sha in sorted(group) if sha not in by_sha and sha in prior_images]
    classes = sorted({m['class_name'] for m in members if 'class_name' in m})
    splits = sorted({m['split'] for m in members if m['split']})
    out.append(dict(members=members, classes=classes, splits=splits,
                    crosses_splits=len(splits) > 1, crosses_classes=len(classes) > 1))
  out.sort(key=lambda g: (not g['crosses_classes'], not g['crosses_splits'],
                          g['members'][0]['image_id']))  # type: ignore[index]
  return out


def quality_entry(rows: Sequence[IndexRow], split_of: Dict[str, str],
                  thresholds: quality.QualityThresholds) -> Dict[str, Any]:
  """{counts: {split: {class: {finding: n}}}, examples: {finding: [{image_id, line, class_name,
  split, value...}]}, images: n measured, thresholds} over the rows with measures."""
  measured = [(r, image_facts.decode_measures(r.measures).get('q', {})) for r in rows
              if r.measures]
  per_image = {r.image_id: list(quality.findings(m, thresholds)) for r, m in measured}
  dataset = quality.dataset_findings({r.image_id: m for r, m in measured}, thresholds)
  for image_id, codes in dataset.items():
    per_image.setdefault(image_id, []).extend(codes)
  counts: Dict[str, Dict[str, Dict[str, int]]] = {}
  examples: Dict[str, List[Dict[str, Any]]] = collections.defaultdict(list)
  for r, _ in sorted(measured, key=lambda rm: rm[0].line):
    split = split_of.get(r.image_id, '')
    for code in sorted(set(per_image.get(r.image_id, ()))):
      by_class = counts.setdefault(split, {}).setdefault(r.class_name, {})
      by_class[code] = by_class.get(code, 0) + 1
      if len(examples[code]) < MAX_EXAMPLES:
        examples[code].append(dict(image_id=r.image_id, line=r.line, class_name=r.class_name,
                                   split=split))
  return dict(images=len(measured), counts=counts, examples=dict(examples),
              thresholds=dataclasses.asdict(thresholds))


def shortcut_entry(rows: Sequence[IndexRow], seed: int, threshold: float
                   ) -> Optional[Dict[str, Any]]:
  """The shortcut-risk assessment over the rows with measured properties (None without)."""
  decoded = [(r, image_facts.decode_measures(r.measures).get('p')) for r in rows
             if r.measures]
  measured = [(r, p) for r, p in decoded if p]
  if not measured:
    return None
  measured.sort(key=lambda rp: rp[0].image_sha256)  # order-free
  result = shortcut.assess([p for _, p in measured], [r.label for r, _ in measured], seed=seed,
                           threshold=threshold)
  out = dataclasses.asdict(result)
  out.update(top_properties=[list(p) for p in result.top_properties], threshold=threshold)
  return out


def format_lines(near_duplicates: str, groups: Sequence[Dict[str, Any]],
                 quality_found: Dict[str, Any], shortcut_found: Dict[str, Any]) -> List[str]:
  """The findings as the first lines of a report (validate's, the run's summary)."""
  from components.errors import escape_name
  lines = []
  if quality_found:
    crossing = [g for g in groups if g['crosses_splits']]
    two_labels = [g for g in groups if g['crosses_classes']]
    how = {'group': 'each dealt to one split', 'report': 'reported only, dealt as any image'}.get(
        near_duplicates, '')
    lines.append(f'near-duplicates: {len(groups)} group(s) of re-encoded, resized, cropped or '
                 f're-exposed copies ({how}); {len(crossing)} straddle splits, '
                 f'{len(two_labels)} carry two labels')
    for g in (two_labels + [g for g in crossing if g not in two_labels])[:5]:
      lines.append('  ' + ', '.join(
          f"{escape_name(m.get('image_id', m['sha256'][:12]))} ({m['split']}"
          f"{', ' + escape_name(m['class_name']) if 'class_name' in m else ''})"
          for m in g['members']))
    totals: Dict[str, int] = collections.Counter()
    for by_class in quality_found.get('counts', {}).values():
      for codes in by_class.values():
        totals.update(codes)
    found = ', '.join(f'{code} {n}' for code, n in sorted(totals.items())) or 'none'
    lines.append(f"image quality ({quality_found.get('images', 0):,} images): {found}")
  if shortcut_found:
    level = 'WARNING shortcut risk' if shortcut_found.get('warning') else 'shortcut risk'
    lines.append(f"{level}: {shortcut_found.get('message', '')}")
  return lines
