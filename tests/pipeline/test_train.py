"""Train and serve end to end: LocalDagRunner with train=True on demo data (Trainer -> Evaluator
-> Pusher), then the pushed SavedModel served from raw PNG bytes read from disk.

One training run is shared by the module, with blessing threshold 0 (20 steps teach the
template model little, and whether it beats a threshold is not what is tested here); a second
run in the same root with threshold 1 reuses everything up to the Trainer (cache) and must
neither bless nor push. Together they show the Evaluator's threshold deciding the push.
"""
import io
import os

import numpy as np
from PIL import Image
import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import read_examples

TRAIN_STEPS = 20
SPLITS = (('train', 4), ('eval', 1), ('test', 1))


@pytest.fixture(scope='module')
def trained(demo_dataset, tmp_path_factory):
  from components.image_example_gen.config import IngestConfig
  from components.trainer.config import TrainConfig
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  root = str(tmp_path_factory.mktemp('train'))
  config = IngestConfig(load_mapping(demo_dataset.class_mapping_path), splits=SPLITS)
  options, source = PipelineOptions(root), DataSource(csv_path=demo_dataset.csv_path)
  first = run_local(options, source, config,
                    train_config=TrainConfig(train_steps=TRAIN_STEPS, min_accuracy=0.0))
  strict = run_local(options, source, config,
                     train_config=TrainConfig(train_steps=TRAIN_STEPS, min_accuracy=1.0))
  return first, strict


@pytest.fixture(scope='module')
def served(trained):
  """The pushed SavedModel (tf.saved_model.load) and its serving_default signature."""
  import tensorflow as tf
  training = trained[0].training
  loaded = tf.saved_model.load(training.pushed_model_dir)
  return loaded, loaded.signatures['serving_default']


@pytest.fixture(scope='module')
def test_split(trained, demo_dataset):
  """The test split through make_dataset (one batch), and each image's PNG bytes from disk."""
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  result = trained[0]
  features, labels = next(iter(make_dataset(
      [os.path.join(result.examples_uri, 'Split-test', '*')],
      tft.TFTransformOutput(result.transform_graph_uri), batch_size=1000,
      feature_keys=('image', 'image_id'))))
  png = []
  for image_id in features['image_id'].numpy():
    with open(os.path.join(demo_dataset.root, image_id.decode()), 'rb') as f:
      png.append(f.read())
  return features, labels.numpy(), png


@pytest.fixture(scope='module')
def keras_probabilities(trained, test_split):
  """The trained Keras model (ModelRun's model.keras) on make_dataset's images: the
  training-time path."""
  import keras
  import tensorflow as tf

  from components.trainer.config import KERAS_MODEL_FILE
  model = keras.models.load_model(
      os.path.join(trained[0].training.model_run_uri, KERAS_MODEL_FILE), compile=False)
  return tf.nn.softmax(model(test_split[0]['image'])['class'], axis=-1).numpy()


def test_a_run_with_train_blesses_and_pushes_a_model(trained):
  result, _ = trained
  training = result.training
  ids = [c for c, _, _ in result.components]
  assert ids[-3:] == ['Trainer', 'Evaluator', 'Pusher']
  assert training.blessed and training.pushed
  assert training.min_accuracy == 0.0 and 0.0 <= training.accuracy <= 1.0
  assert training.accuracy_per_class  # sliced by class
  assert set(training.accuracy_per_class) <= set(result.summary.class_names.values())
  pushed = training.pushed_model_dir
  # <root>/serving_model/<version>, still there after the second run's clean-up of unpublished
  # execution folders
  assert os.path.dirname(pushed) == os.path.join(result.pipeline_root, 'serving_model')
  assert os.path.basename(pushed).isdigit()
  served_files = sorted(os.path.relpath(os.path.join(d, f), pushed)
                        for d, _, fs in os.walk(pushed) for f in fs)
  source = os.path.join(training.model_uri, 'Format-Serving')
  assert served_files == sorted(os.path.relpath(os.path.join(d, f), source)
                                for d, _, fs in os.walk(source) for f in fs)
  assert 'saved_model.pb' in served_files


def test_tensorboard_logs_and_keras_model_are_in_the_model_run(trained):
  run_dir = trained[0].training.model_run_uri
  events = [f for d, _, fs in os.walk(run_dir) for f in fs if f.startswith('events.out')]
  assert {'train', 'validation'} <= set(os.listdir(run_dir)) and events
  assert os.path.isfile(os.path.join(run_dir, 'model.keras'))


def test_unweighted_while_class_balance_publishes_no_weights(trained):
  """The contract: ClassBalance's `class_weights` property weights the loss when present; the
  Trainer records what it used on the Model ('' = unweighted)."""
  from components.class_balance import spec as balance_spec
  from components.trainer.config import parse_class_weights
  from pipeline import mlmd
  result, _ = trained
  store = mlmd.sqlite_store(result.metadata_path)
  balance = mlmd.run_output(store, mlmd.latest_run(store, 'cxr-tfx'), 'cxr-tfx',
                            'ClassBalance', balance_spec.ANOMALIES_KEY)  # cached: the same
  published = balance.custom_properties.get(balance_spec.CLASS_WEIGHTS_PROPERTY)
  if published is None:
    assert result.training.class_weights == ''
  else:
    assert parse_class_weights(result.training.class_weights) == parse_class_weights(
        published.string_value)


def test_below_the_threshold_nothing_is_pushed(trained):
  first, strict = trained
  assert first.training.accuracy < 1.0  # precondition: 1.0 is out of reach
  cached = {c for c, _, was_cached in strict.components if was_cached}
  assert 'Trainer' in cached  # same model: only the Evaluator's threshold changed
  assert strict.training.model_uri == first.training.model_uri
  assert not strict.training.blessed and not strict.training.pushed
  assert strict.training.pushed_model_dir == ''
  assert strict.training.accuracy == pytest.approx(first.training.accuracy)
  import tensorflow_model_analysis as tfma
  validation = tfma.load_validation_result(strict.training.evaluation_uri)
  assert not validation.validation_ok
  (failed,) = validation.metric_validations_per_slice
  assert not failed.slice_key.single_slice_keys  # the overall slice, not a class
  assert [f.metric_key.name for f in failed.failures] == ['sparse_categorical_accuracy']
  assert tfma.load_validation_result(first.training.evaluation_uri).validation_ok


def test_raw_png_bytes_give_the_training_time_probabilities(served, test_split,
                                                            keras_probabilities, trained):
  import tensorflow as tf
  _, serve = served
  _, labels, png = test_split
  out = serve(image=tf.constant(png))
  np.testing.assert_allclose(out['class_probabilities'].numpy(), keras_probabilities, atol=1e-5)
  names = trained[0].summary.class_names
  expected_ids = keras_probabilities.argmax(axis=1)
  assert out['class_id'].numpy().tolist() == expected_ids.tolist()
  assert [n.decode() for n in out['class_name'].numpy()] == [names[k] for k in expected_ids]
  assert out['mask'].shape == (len(png), 256, 256, 1)
  assert 0 <= out['mask'].numpy().min() and out['mask'].numpy().max() <= 1
  assert len(labels) == len(png) >= 5


def test_16_bit_png_and_jpeg_requests_need_no_mask(served, test_split, keras_probabilities):
  """A request is the image alone. The same pixels as 16-bit PNG give the same probabilities
  (x * 257 / 65535 == x / 255); a JPEG is decoded the way training decodes one."""
  import tensorflow as tf
  _, serve = served
  _, _, png = test_split
  pixels = np.asarray(Image.open(io.BytesIO(png[0])))
  assert pixels.dtype == np.uint8
  sixteen = io.BytesIO()
  Image.fromarray(pixels.astype(np.uint16) * 257).save(sixteen, format='PNG')
  assert Image.open(io.BytesIO(sixteen.getvalue())).mode.startswith('I')  # 16-bit gray
  jpeg = io.BytesIO()
  Image.fromarray(pixels).save(jpeg, format='JPEG', quality=95)
  out = serve(image=tf.constant([sixteen.getvalue(), jpeg.getvalue()]))
  np.testing.assert_allclose(out['class_probabilities'].numpy()[0], keras_probabilities[0],
                             atol=1e-5)
  probabilities = out['class_probabilities'].numpy()[1]
  assert probabilities.shape == (keras_probabilities.shape[1],)
  np.testing.assert_allclose(probabilities.sum(), 1.0, atol=1e-5)


def test_a_malformed_request_is_a_clear_error_and_the_model_keeps_serving(served, test_split,
                                                                          keras_probabilities):
  import tensorflow as tf
  _, serve = served
  _, _, png = test_split
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match=r'not PNG or JPEG image bytes \(batch indices\):\] \[1 2\]'):
    serve(image=tf.constant([png[0], b'not an image', b'']))
  with pytest.raises(tf.errors.InvalidArgumentError, match='Invalid PNG data'):
    serve(image=tf.constant([png[0][:300]]))  # a PNG's start, truncated
  out = serve(image=tf.constant(png[:1]))  # the same process serves the next request
  np.testing.assert_allclose(out['class_probabilities'].numpy(), keras_probabilities[:1],
                             atol=1e-5)


def test_the_evaluators_tf_example_signature_matches(served, trained, keras_probabilities,
                                                     test_split):
  """from_examples reads only `image` from a tf.Example: full training records and
  image-only requests alike."""
  import tensorflow as tf
  loaded, _ = served
  by_id = {ex.features.feature['image_id'].bytes_list.value[0]: ex for _, ex in read_examples(
      os.path.join(trained[0].examples_uri, 'Split-test', '*'))}
  records = [by_id[i] for i in test_split[0]['image_id'].numpy()]
  image_only = []
  for ex in records:
    request = tf.train.Example()
    request.features.feature['image'].CopyFrom(ex.features.feature['image'])
    image_only.append(request.SerializeToString())
  from_examples = loaded.signatures['from_examples']
  for batch in ([ex.SerializeToString() for ex in records], image_only):
    out = from_examples(examples=tf.constant(batch))
    np.testing.assert_allclose(out['class_probabilities'].numpy(), keras_probabilities,
                               atol=1e-5)


def test_a_session_based_loader_serves_it_too(trained, test_split, keras_probabilities):
  """What saved_model_cli and TF Serving do: load the SavedModel into a TF1 session and run
  the serving_default SignatureDef by tensor names (the model's variables must be restorable
  by name, which a Keras 3 model inside a tf.Module is not without tracking them)."""
  import tensorflow as tf
  _, _, png = test_split
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.load(session, ['serve'],
                                               trained[0].training.pushed_model_dir)
    signature = meta_graph.signature_def['serving_default']
    fetch = signature.outputs['class_probabilities'].name
    probabilities = session.run(fetch, {signature.inputs['image'].name: png})
  np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-5)
