"""Transform in the real pipeline (LocalDagRunner, SQLite MLMD), make_dataset over
ImageExampleGen's output, and a two-head Keras model trained from it."""
import os

import numpy as np
import pytest

from tests.support.testutil import read_examples
from tests.support.testutil import seed_parse_function


@pytest.fixture(scope='module')
def run(balanced_run):
  """The balanced run and its TransformGraph artifact, resolved through the run's context."""
  from pipeline import mlmd
  store = mlmd.sqlite_store(balanced_run.metadata_path)
  graph = mlmd.run_output(store, mlmd.latest_run(store, 'cxr-tfx'), 'cxr-tfx', 'Transform',
                          'transform_graph')
  assert graph.uri == balanced_run.transform_graph_uri
  return balanced_run, graph


def _dataset(run, split='train', **kwargs):
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  result, graph = run
  return make_dataset(os.path.join(result.examples_uri, f'Split-{split}', '*'),
                      tft.TFTransformOutput(graph.uri), **kwargs)


def test_transform_graph_is_an_artifact_in_ml_metadata(run):
  result, graph = run
  assert graph is not None and os.path.isdir(os.path.join(graph.uri, 'transform_fn'))
  assert ('Transform', pytest.approx(0, abs=600), False) in [
      (n, s, c) for n, s, c in result.components]


def test_every_record_has_one_shape_and_batches_mix_masked_and_unmasked(run, demo_dataset):
  seen, has_mask = 0, []
  for features, label in _dataset(run, batch_size=16):
    n = int(label.shape[0])
    assert features['image'].shape == (n, 256, 256, 1)
    assert features['mask'].shape == (n, 256, 256, 1)
    assert set(np.unique(features['mask'].numpy())) <= {0.0, 1.0}
    has_mask.extend(features['has_mask'].numpy().tolist())
    seen += n
  assert seen == 48  # train: 3 of 4 shards of 64 rows
  assert 0 in has_mask and 1 in has_mask


def test_pixels_match_the_seeds_reader(run):
  import tensorflow as tf
  result, _ = run
  raw = read_examples(os.path.join(result.examples_uri, 'Split-test', '*'))
  ours = next(iter(_dataset(run, split='test', batch_size=len(raw))))[0]
  for k, (_, example) in enumerate(raw):
    image, mask, _ = seed_parse_function(example.SerializeToString())
    expected = tf.image.resize(tf.cast(image[..., :1], tf.float32) / 255.0, (256, 256)).numpy()
    np.testing.assert_allclose(ours['image'][k].numpy(), expected, atol=1e-6)
    if example.features.feature['mask'].bytes_list.value[0]:
      np.testing.assert_array_equal(ours['mask'][k].numpy(), (mask.numpy() > 0))
    else:
      assert not ours['mask'][k].numpy().any()
    assert ours['image_id'][k].numpy() == example.features.feature['image_id'].bytes_list.value[0]


def test_order_is_deterministic_and_shuffle_is_seeded(run):
  ids = lambda ds: [i for f, _ in ds for i in f['image_id'].numpy().tolist()]
  assert ids(_dataset(run, batch_size=8)) == ids(_dataset(run, batch_size=8))
  a = ids(_dataset(run, batch_size=8, shuffle=True, seed=3))
  assert a == ids(_dataset(run, batch_size=8, shuffle=True, seed=3))
  assert a != ids(_dataset(run, batch_size=8)) and sorted(a) == sorted(ids(_dataset(
      run, batch_size=8)))


def test_a_two_head_keras_model_trains_from_make_dataset(run):
  import tensorflow as tf
  tf.keras.utils.set_random_seed(0)
  dataset = _dataset(run, batch_size=8, label_keys=('class', 'mask'), feature_keys=('image',),
                     shuffle=True, seed=0, num_epochs=None)
  image = tf.keras.Input((256, 256, 1), name='image')
  x = tf.keras.layers.Conv2D(4, 3, strides=4, padding='same', activation='relu')(image)
  pooled = tf.keras.layers.GlobalAveragePooling2D()(x)
  logits = tf.keras.layers.Dense(4, name='class')(pooled)
  up = tf.keras.layers.UpSampling2D(4)(x)
  mask = tf.keras.layers.Conv2D(1, 1, activation='sigmoid', name='mask')(up)
  model = tf.keras.Model(image, {'class': logits, 'mask': mask})
  model.compile(optimizer='adam',
                loss={'class': tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      'mask': tf.keras.losses.BinaryCrossentropy()})
  history = model.fit(dataset, steps_per_epoch=3, epochs=2, verbose=0)
  losses = history.history['loss']
  assert len(losses) == 2 and all(np.isfinite(losses))


def test_make_dataset_takes_a_list_of_patterns_as_fn_args_train_files(run):
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  result, graph = run
  output = tft.TFTransformOutput(graph.uri)
  pattern = lambda split: os.path.join(result.examples_uri, f'Split-{split}', '*')
  ids = lambda ds: [i for f, _ in ds for i in f['image_id'].numpy().tolist()]
  train = ids(make_dataset(pattern('train'), output, 8))
  test = ids(make_dataset(pattern('test'), output, 8))
  both = ids(make_dataset([pattern('train'), pattern('test')], output, 8))
  assert sorted(both) == sorted(train + test) and len(both) == 64
  # the same glob twice, or a list of one: each file read once, as with the single pattern
  assert ids(make_dataset([pattern('train'), pattern('train')], output, 8)) == train
  assert ids(make_dataset((pattern('train'),), output, 8)) == train
  with pytest.raises(ValueError, match='non-empty list of globs'):
    make_dataset([], output, 8)
  with pytest.raises(ValueError, match='no files match'):
    make_dataset([os.path.join(result.examples_uri, 'Split-nope', '*')], output, 8)


def test_a_serving_request_needs_only_the_image(run):
  """The schema's SERVING environment: parse an Example holding only `image`, then apply the
  Transform graph; the full raw spec would demand mask, class, image_id and image_sha256."""
  import tensorflow as tf
  import tensorflow_transform as tft

  from components.transform.input_fn import serving_feature_spec
  result, graph = run
  output = tft.TFTransformOutput(graph.uri)
  spec = serving_feature_spec(output)
  assert spec == {'image': tf.io.FixedLenFeature([1], tf.string)}
  (_, example), = read_examples(os.path.join(result.examples_uri, 'Split-test', '*'))[:1]
  request = tf.train.Example()
  request.features.feature['image'].CopyFrom(example.features.feature['image'])
  serialized = tf.constant([request.SerializeToString()])
  with pytest.raises(tf.errors.InvalidArgumentError, match='is required but could not be found'):
    tf.io.parse_example(serialized, output.raw_feature_spec())
  transformed = output.transform_features_layer()(tf.io.parse_example(serialized, spec))
  assert transformed['image'].shape == (1, 256, 256, 1)
  assert 'mask' not in transformed and 'class' not in transformed
  with pytest.raises(ValueError, match='no .TRAINING2. environment'):
    serving_feature_spec(output, 'TRAINING2')
