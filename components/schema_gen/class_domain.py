"""The class feature's domain, from the class mapping (pure: protobuf only, no TensorFlow/TFX).

The class mapping is the one source of truth for the classes. The rule:

- The schema must have an INT feature ``class``.
- If the schema states no class list -- no ``int_domain.min``/``max`` and no ``"<label>=<name>"``
  annotation tag on ``class`` -- the list is *generated* from the mapping: ``int_domain {min: 0,
  max: K-1, is_categorical: true}`` and one tag ``"<label>=<name>"`` per class, in label order.
  The curated ``schemas/schema.pbtxt`` states none, so any mapping of 2..N classes works with it.
- If it states any part of one (a user-supplied schema may), every stated part must equal the
  mapping's: ``min`` 0, ``max`` K-1, and, if there are ``"<label>=<name>"`` tags, exactly one per
  label 0..K-1 with the mapping's class name. Anything else is a ``ClassDomainError`` naming both
  files and every difference; the schema is then *checked* (and completed: missing parts filled).
- ``is_categorical`` is set (StatisticsGen must count classes as categories for ClassBalance); a
  schema saying ``is_categorical: false`` is refused.

Other annotation tags and the comment are kept.
"""
import dataclasses
import re
from typing import Dict, List, Mapping, Optional, Tuple

from tensorflow_metadata.proto.v0 import schema_pb2

from components import features
from components.errors import CxrError

GENERATED = 'generated'  # the schema stated no class list: it came from the mapping
CHECKED = 'checked'  # the schema stated (part of) one, and it agrees with the mapping

_LABEL_TAG = re.compile(r'^\s*(\d+)\s*=(.*)$', re.DOTALL)


class ClassDomainError(CxrError, ValueError):
  """The schema's class feature cannot take the mapping's classes; the message says why."""


@dataclasses.dataclass(frozen=True)
class StatedDomain:
  """What a schema says about the class feature's values."""
  min: Optional[int]
  max: Optional[int]
  names: Dict[int, str]  # from "<label>=<name>" tags
  duplicate_labels: Tuple[int, ...]  # labels tagged more than once

  @property
  def empty(self) -> bool:
    return self.min is None and self.max is None and not self.names


def mapping_source(mapping_file: str) -> str:
  """How error messages name the mapping: its file, else where it was given."""
  return (f'class mapping {mapping_file}' if mapping_file
          else 'the class mapping (ImageExampleGen\'s class_mapping)')


def class_feature(schema: schema_pb2.Schema, schema_source: str = 'the schema'
                  ) -> schema_pb2.Feature:
  feature = next((f for f in schema.feature if f.name == features.LABEL), None)
  if feature is None or feature.type != schema_pb2.INT:
    raise ClassDomainError(
        f'{schema_source} needs an INT feature {features.LABEL!r} (the label ImageExampleGen '
        'writes); see schemas/schema.pbtxt (option --schema).')
  return feature


def stated_domain(feature: schema_pb2.Feature) -> StatedDomain:
  names: Dict[int, str] = {}
  duplicates = []
  for tag in feature.annotation.tag:
    match = _LABEL_TAG.match(tag)
    if match:
      label = int(match.group(1))
      if label in names:
        duplicates.append(label)
      names[label] = match.group(2)
  domain = feature.int_domain if feature.HasField('int_domain') else None
  return StatedDomain(
      min=domain.min if domain is not None and domain.HasField('min') else None,
      max=domain.max if domain is not None and domain.HasField('max') else None,
      names=names, duplicate_labels=tuple(sorted(set(duplicates))))


def class_names_from_schema(schema: schema_pb2.Schema) -> Dict[int, str]:
  """Labels min..max of the class feature's int_domain, named by its "<label>=<name>" tags
  (unnamed labels by their number). Raises ClassDomainError if there is no class domain."""
  stated = stated_domain(class_feature(schema))
  if stated.min is None or stated.max is None:
    raise ClassDomainError(
        f'the schema\'s {features.LABEL!r} feature has no int_domain min/max; generate it from '
        'the class mapping with CuratedSchemaGen (components/schema_gen).')
  return {c: stated.names.get(c, str(c)) for c in range(stated.min, stated.max + 1)}


def differences(mapping: Mapping[str, int], stated: StatedDomain) -> List[str]:
  """One line per disagreement between the mapping and what the schema states; [] if none."""
  by_label = {label: name for name, label in mapping.items()}
  k = len(by_label)
  out = []
  if stated.min is not None and stated.min != 0:
    out.append(f'int_domain.min: {stated.min} in the schema, 0 from the mapping')
  if stated.max is not None and stated.max != k - 1:
    out.append(f'int_domain.max: {stated.max} in the schema, {k - 1} (K-1 for {k} classes) from '
               'the mapping')
  for label in stated.duplicate_labels:
    out.append(f'label {label}: tagged more than once in the schema')
  if stated.names:
    for label in sorted(set(by_label) | set(stated.names)):
      if label not in stated.names:
        out.append(f'label {label} {by_label[label]!r}: in the mapping, not in the schema')
      elif label not in by_label:
        out.append(f'label {label} {stated.names[label]!r}: in the schema, not in the mapping')
      elif stated.names[label] != by_label[label]:
        out.append(f'label {label}: {by_label[label]!r} in the mapping, '
                   f'{stated.names[label]!r} in the schema')
  return out


def apply_mapping(schema: schema_pb2.Schema, mapping: Mapping[str, int],
                  schema_source: str = 'the schema',
                  mapping_source: str = 'the class mapping') -> Tuple[schema_pb2.Schema, str]:
  """-> (a copy of ``schema`` whose class feature has the mapping's domain, GENERATED|CHECKED).

  ``mapping`` must already be valid (labels exactly 0..K-1). Raises ClassDomainError, naming
  ``schema_source``, ``mapping_source`` and every difference, when the schema states a class
  list that disagrees with the mapping (see the module docstring for the rule).
  """
  out = schema_pb2.Schema()
  out.CopyFrom(schema)
  feature = class_feature(out, schema_source)
  stated = stated_domain(feature)
  if (feature.HasField('int_domain') and feature.int_domain.HasField('is_categorical')
      and not feature.int_domain.is_categorical):
    raise ClassDomainError(
        f'{schema_source}: feature {features.LABEL!r} says int_domain.is_categorical: false; '
        'the class label must be categorical (StatisticsGen then counts each class, which '
        'ClassBalance needs). Remove that line or set it to true (option --schema).')
  diffs = differences(mapping, stated)
  if diffs:
    listed = '\n  '.join(diffs)
    raise ClassDomainError(
        f'{mapping_source} and {schema_source} disagree on the classes of feature '
        f'{features.LABEL!r}:\n  {listed}\nThe class mapping decides the classes: delete the '
        f'class list from the schema (int_domain min/max and the "<label>=<name>" tags of '
        f'{features.LABEL!r}) and it is generated from the mapping, or make the two agree '
        '(options --schema, --class-mapping).')
  by_label = sorted((label, name) for name, label in mapping.items())
  domain = feature.int_domain
  domain.min, domain.max, domain.is_categorical = 0, len(by_label) - 1, True
  if not domain.name:
    domain.name = features.LABEL
  other_tags = [t for t in feature.annotation.tag if not _LABEL_TAG.match(t)]
  del feature.annotation.tag[:]
  feature.annotation.tag.extend([f'{label}={name}' for label, name in by_label] + other_tags)
  return out, (GENERATED if stated.empty else CHECKED)
