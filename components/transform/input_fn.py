"""``make_dataset``: ImageExampleGen's records -> decoded, fixed-shape batches for training;
``serving_feature_spec``: what a serving request must carry (the schema's SERVING environment)."""
from typing import Dict, Optional, Sequence, Union

import tensorflow as tf
from tensorflow_metadata.proto.v0 import schema_pb2
import tensorflow_transform as tft
from tensorflow_transform import common_types
from tensorflow_transform.tf_metadata import schema_utils

from components.transform import config as config_lib

SERVING = 'SERVING'  # the curated schema's serving environment (schemas/schema.pbtxt)


def make_dataset(file_pattern: Union[str, Sequence[str]],
                 tf_transform_output: tft.TFTransformOutput, batch_size: int, *,
                 label_keys: Sequence[str] = (config_lib.LABEL,),
                 feature_keys: Optional[Sequence[str]] = None,
                 shuffle: bool = False, shuffle_buffer: int = 1024, seed: Optional[int] = None,
                 deterministic: bool = True, num_epochs: Optional[int] = 1,
                 drop_remainder: bool = False) -> tf.data.Dataset:
  """Reads gzipped tf.Example files and applies the Transform graph, batch by batch.

  Batches go through the graph in parallel (AUTOTUNE), and inside it each record's image and
  mask are decoded on their own, several at once (the graph's ``tf.map_fn``).

  Args:
    file_pattern: glob of the shard files, e.g. ``<examples uri>/Split-train/*``, or a list
      of globs (TFX's ``FnArgs.train_files``); files matched by several globs are read once.
    tf_transform_output: ``tft.TFTransformOutput(<TransformGraph artifact uri>)``.
    batch_size: records per batch.
    label_keys: transformed features returned as labels. One key: the label is that tensor;
      several (e.g. ``('class', 'mask')`` for a classification and a segmentation head): a
      dict. Label keys are removed from the features.
    feature_keys: keep only these transformed features (e.g. ``('image',)`` for a Keras model
      with one input); default: all but the labels.
    shuffle, shuffle_buffer, seed: shuffle records (seeded when ``seed`` is given).
    deterministic: keep record order fixed (files sorted, order-preserving parallel map); False
      lets tf.data trade order for throughput.
    num_epochs: repeat count; None repeats forever.
    drop_remainder: drop the last, smaller batch (static batch dimension).

  Returns:
    A dataset of ``(features, label)``: features ``image`` float32 [B, H, W, C] in [0, 1],
    ``mask`` float32 [B, H, W, 1] in {0, 1} (zeros for records without a mask), ``has_mask``
    int64 [B], ``image_id`` string [B] and ``class`` int64 [B], minus the label keys.
  """
  patterns = [file_pattern] if isinstance(file_pattern, str) else list(file_pattern)
  if not patterns or not all(isinstance(p, str) for p in patterns):
    raise ValueError(f'file_pattern must be a glob or a non-empty list of globs, got '
                     f'{file_pattern!r}')
  files = sorted({f for p in patterns for f in tf.io.gfile.glob(p)})
  if not files:
    raise ValueError(f'no files match {file_pattern!r}')
  raw_spec = tf_transform_output.raw_feature_spec()
  transform_layer = tf_transform_output.transform_features_layer()
  options = tf.data.Options()
  options.deterministic = deterministic

  # Traced as written, without AutoGraph: it has no control flow on tensors, and AutoGraph
  # converting the Transform layer's Keras and tf.Transform code costs ~4 s of CPU in a
  # process's first call (bench.stages make_dataset's first_batch_cpu_seconds: 4.2 s with
  # it, 0.5 s without).
  @tf.autograph.experimental.do_not_convert
  def parse_and_transform(serialized):
    # One map: parse the whole batch at once, then the Transform graph, then split labels.
    transformed = transform_layer(tf.io.parse_example(serialized, raw_spec))
    labels = {k: transformed[k] for k in label_keys}
    keep = feature_keys or [k for k in transformed if k not in label_keys]
    transformed = {k: transformed[k] for k in keep}
    return transformed, (labels[label_keys[0]] if len(label_keys) == 1 else labels)

  dataset = tf.data.TFRecordDataset(files, compression_type='GZIP',
                                    num_parallel_reads=tf.data.AUTOTUNE)
  if shuffle:
    dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.repeat(num_epochs).batch(batch_size, drop_remainder=drop_remainder)
  dataset = dataset.map(parse_and_transform, num_parallel_calls=tf.data.AUTOTUNE,
                        deterministic=deterministic)
  return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _in_environment(feature, environment: str) -> bool:
  """TFDV's rule: a feature with ``in_environment`` is in those only; otherwise in every
  environment but its ``not_in_environment``."""
  if feature.in_environment:
    return environment in feature.in_environment
  return environment not in feature.not_in_environment


def serving_feature_spec(tf_transform_output: tft.TFTransformOutput,
                         environment: str = SERVING) -> Dict[str, common_types.FeatureSpecType]:
  """The raw feature spec of the schema's ``environment`` (default SERVING): what a request
  must carry. With the curated schema that is ``{'image': FixedLenFeature([1], tf.string)}``;
  ``raw_feature_spec()`` would also demand ``mask``, ``class``, ``image_id`` and
  ``image_sha256``. The schema is the one the Transform graph was built with.

  Raises ValueError if the schema does not declare ``environment`` (``default_environment``).
  """
  schema = tf_transform_output.raw_metadata.schema
  if environment not in schema.default_environment:
    raise ValueError(f'the schema declares no {environment!r} environment (it has '
                     f'{list(schema.default_environment)}); add default_environment: '
                     f'"{environment}" and mark the features a request does not carry with '
                     f'not_in_environment: "{environment}" (see schemas/schema.pbtxt).')
  subset = schema_pb2.Schema()
  subset.CopyFrom(schema)
  del subset.feature[:]
  subset.feature.extend(f for f in schema.feature if _in_environment(f, environment))
  return schema_utils.schema_as_feature_spec(subset).feature_spec
