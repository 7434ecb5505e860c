"""``make_dataset``: ImageExampleGen's records -> decoded, fixed-shape batches for training."""
from typing import Optional, Sequence

import tensorflow as tf
import tensorflow_transform as tft

from components.transform import config as config_lib


def make_dataset(file_pattern: str, tf_transform_output: tft.TFTransformOutput,
                 batch_size: int, *, label_keys: Sequence[str] = (config_lib.LABEL,),
                 feature_keys: Optional[Sequence[str]] = None,
                 shuffle: bool = False, shuffle_buffer: int = 1024, seed: Optional[int] = None,
                 deterministic: bool = True, num_epochs: Optional[int] = 1,
                 drop_remainder: bool = False) -> tf.data.Dataset:
  """Reads gzipped tf.Example files and applies the Transform graph, batch by batch.

  Args:
    file_pattern: glob of the shard files, e.g. ``<examples uri>/Split-train/*``.
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
  files = sorted(tf.io.gfile.glob(file_pattern))
  if not files:
    raise ValueError(f'no files match {file_pattern!r}')
  raw_spec = tf_transform_output.raw_feature_spec()
  transform_layer = tf_transform_output.transform_features_layer()
  options = tf.data.Options()
  options.deterministic = deterministic

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
