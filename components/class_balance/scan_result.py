"""What ClassBalance's Beam job found, as read back from its manifest (pure: no TensorFlow)."""
import dataclasses
import json
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from components.class_balance import image_stats

SAMPLES_PER_CLASS = 4  # thumbnails per class, from the first shard file of each split
NO_LABEL = -1  # a record without an int64 'class'

# Manifest entry kinds (one JSON line [kind, entry] each).
CLASS_STATS = 'class_stats'  # {split, shard, label, stats: ClassStats}
SAMPLE = 'sample'  # {label, split, shard, image_id, has_mask, uri}
DUPLICATE = 'duplicate'  # {sha256, members: [{split, image_id}]}, only without a summary
SHARD_ERROR = 'shard_error'  # {split, shard, message}
# {image_id, split, shard, uri}: a listed image's thumbnail (near-duplicate groups, image-quality
# examples: image_findings.ImageFindings.thumbnail_ids), keyed by its image_id
LISTED_IMAGE = 'listed_image'


@dataclasses.dataclass
class ScanResult:
  """Per (split, shard file, label) statistics, thumbnails, unreadable files, duplicates."""
  shards: List[Tuple[str, str]]  # (split, shard file name) of every file listed, in order
  class_stats: Dict[Tuple[str, str, int], image_stats.ClassStats]
  samples: List[Dict[str, object]]
  errors: List[Tuple[str, str, str]]
  duplicates: Optional[List[Dict[str, object]]]  # None: not computed here (ingest summary)
  # {image_id: {split, shard, uri}}: thumbnails of the images the summary's findings list
  listed_images: Dict[str, Dict[str, object]] = dataclasses.field(default_factory=dict)

  def shard_counts(self) -> Dict[str, List[Tuple[str, Dict[int, int]]]]:
    """{split: [(shard file, {label: records})]} over every listed file, empty ones too."""
    by_shard: Dict[Tuple[str, str], Dict[int, int]] = {key: {} for key in self.shards}
    for (split, shard, label), acc in sorted(self.class_stats.items()):
      by_shard.setdefault((split, shard), {})[label] = acc.records
    out: Dict[str, List[Tuple[str, Dict[int, int]]]] = {}
    for (split, shard), counts in by_shard.items():
      out.setdefault(split, []).append((shard, counts))
    return out

  def records_read(self) -> Dict[Tuple[str, str], int]:
    out = {key: 0 for key in self.shards}
    for (split, shard, _), acc in self.class_stats.items():
      out[(split, shard)] = out.get((split, shard), 0) + acc.records
    return out


def read_manifest_lines(lines: Iterable[str], shards: Sequence[Tuple[str, str]],
                        with_duplicates: bool) -> ScanResult:
  result = ScanResult(list(shards), {}, [], [], [] if with_duplicates else None)
  for line in lines:
    kind, entry = json.loads(line)
    if kind == CLASS_STATS:
      result.class_stats[(entry['split'], entry['shard'], int(entry['label']))] = (
          image_stats.ClassStats.from_dict(entry['stats']))
    elif kind == SAMPLE:
      result.samples.append(entry)
    elif kind == SHARD_ERROR:
      result.errors.append((entry['split'], entry['shard'], entry['message']))
    elif kind == DUPLICATE and result.duplicates is not None:
      result.duplicates.append(entry)
    elif kind == LISTED_IMAGE:  # an id written twice (not ImageExampleGen's): the first file's
      key = (entry['split'], entry['shard'])
      known = result.listed_images.get(entry['image_id'])
      if known is None or key < (known['split'], known['shard']):
        result.listed_images[entry['image_id']] = {k: v for k, v in entry.items()
                                                   if k != 'image_id'}
  order: Dict[Tuple[object, object], int] = {key: i for i, key in enumerate(shards)}
  result.samples.sort(key=lambda s: (order.get((s['split'], s['shard']), 0), s['image_id']))
  result.errors.sort()
  return result
