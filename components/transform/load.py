"""``load_split``: a run's split as a decoded ``tf.data.Dataset``, in one line::

  from components.transform.load import load_split
  train = load_split('out/', 'train', batch_size=32, label_keys=('class', 'mask'))

It finds, in the pipeline root's ML Metadata store, the newest run of the pipeline that got as
far as Transform, and calls ``make_dataset`` over that run's ImageExampleGen shards of the
split with that run's TransformGraph: the records decoded exactly as the Trainer and the
served model decode them.
"""
import dataclasses
import json
import os
from typing import Any, List, Optional

from components.errors import CxrError

SPLIT_PREFIX = 'Split-'  # TFX's split folders: <examples>/Split-<name>/


class LoadError(CxrError, LookupError):
  pass


@dataclasses.dataclass(frozen=True)
class RunData:
  """Where a run's data is: its Examples artifact, its split names, its TransformGraph."""
  run_id: str
  examples_uri: str
  split_names: List[str]
  transform_graph_uri: str

  def pattern(self, split: str) -> str:
    """The glob of a split's shard files; LoadError naming the splits when it has none."""
    if split not in self.split_names:
      raise LoadError(f'run {self.run_id} has no split {split!r}; its splits are '
                      f'{self.split_names}.')
    return os.path.join(self.examples_uri, f'{SPLIT_PREFIX}{split}', '*')


def run_data(pipeline_root: str, metadata: str = '',
             pipeline_name: Optional[str] = None) -> RunData:
  """The newest run of ``pipeline_name`` (default cxr-tfx's; in ``metadata``, default
  ``<pipeline_root>/metadata.sqlite``) with both ImageExampleGen's Examples and Transform's
  graph; LoadError when there is none."""
  # The pipeline's names and its ML Metadata readers (no TensorFlow): imported here, as the
  # pipeline package builds on the components.
  from components.image_example_gen import spec as ingest_spec
  from pipeline import configs
  from pipeline import mlmd
  pipeline_name = pipeline_name or configs.PIPELINE_NAME
  location = metadata or os.path.join(pipeline_root, configs.METADATA_FILE)
  if not mlmd.exists(location):
    raise LoadError(f'no ML Metadata store at {location}: is {pipeline_root} a pipeline root '
                    'that `cxr-tfx run` wrote?')
  store = mlmd.open_store(location)
  runs = mlmd.runs(store, pipeline_name)
  for run in reversed(runs):
    try:
      examples = mlmd.run_output(store, run, pipeline_name, configs.IMAGE_EXAMPLE_GEN,
                                 ingest_spec.EXAMPLES_KEY)
      graph = mlmd.run_output(store, run, pipeline_name, configs.TRANSFORM,
                              configs.TRANSFORM_GRAPH_KEY)
    except mlmd.NotInStore:
      continue
    names = examples.properties.get('split_names')
    return RunData(run.name, examples.uri, json.loads(names.string_value) if names else [],
                   graph.uri)
  raise LoadError(f'no run of pipeline {pipeline_name!r} in {location} got as far as '
                  f'{configs.TRANSFORM} ({len(runs)} run(s) recorded).')


def load_split(pipeline_root: str, split: str = 'train', batch_size: int = 32, *,
               metadata: str = '', pipeline_name: Optional[str] = None,
               **make_dataset_args: Any):
  """``make_dataset`` over ``split`` of the newest run in ``pipeline_root`` (``run_data``):
  batches of ``(features, labels)`` with ``image`` float32 [B, H, W, C] in [0, 1], ``mask``,
  ``has_mask``, ``image_id`` and ``class`` (see ``make_dataset``; ``make_dataset_args`` such
  as ``label_keys``, ``feature_keys``, ``shuffle``, ``num_epochs`` go to it; one pass in file
  order by default)."""
  import tensorflow_transform as tft  # heavy: only here

  from components.transform.input_fn import make_dataset
  data = run_data(pipeline_root, metadata, pipeline_name)
  return make_dataset(data.pattern(split), tft.TFTransformOutput(data.transform_graph_uri),
                      batch_size, **make_dataset_args)
