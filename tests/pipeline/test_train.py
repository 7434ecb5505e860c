"""Train, evaluate, push and serve end to end on `make demo`'s data (423 images, 10% without
masks, splits train=8,eval=1,test=1) with the default TrainConfig, as `cxr-tfx run --train`.

Three LocalDagRunner runs, shared by the module:

* ``trained[0]``: the template learns the demo (test accuracy >= 0.90, lung-mask Dice >= 0.90)
  and is blessed and pushed;
* ``trained[1]``: the same root again with a majority margin out of reach: the Trainer is
  cached, the Evaluator compares the model with the one blessed before (its baseline), and
  nothing is pushed;
* ``permuted``: the same pipeline on the same images with the labels permuted, in another
  root: the model learns no image-to-label relation and is not blessed.

Then the pushed SavedModel served from raw PNG bytes read from disk, ``load_split``,
``cxr-tfx predict``, lineage from the pushed folder, and the Evaluator refusing a model worse
than the blessed one.
"""
import argparse
import io
import os

import numpy as np
from PIL import Image
import pytest

from tests.support.testutil import load_mapping
from tests.support.testutil import read_csv_rows
from tests.support.testutil import read_examples
from tests.support.testutil import write_csv_rows

MIN_ACCURACY = 0.90  # what the template must reach on the demo (issue: a model worth pushing)
MIN_DICE = 0.90


def _config(dataset):
  from components.image_example_gen.config import IngestConfig
  from pipeline import demo_data
  # as `cxr-tfx run` ingests its demo data: default splits, the masks' size checked
  return IngestConfig(load_mapping(dataset.class_mapping_path),
                      mask_size=f'{demo_data.MASK_SIZE}x{demo_data.MASK_SIZE}')


def _run(root, csv_path, config, train_config):
  from pipeline.configs import DataSource
  from pipeline.configs import PipelineOptions
  from pipeline.local_runner import run_local
  return run_local(PipelineOptions(root), DataSource(csv_path=csv_path), config,
                   train_config=train_config)


@pytest.fixture(scope='module')
def demo(tmp_path_factory):
  """`make demo`'s dataset: what `cxr-tfx run` generates (scale, missing masks, seed 0)."""
  from pipeline import configs
  from pipeline import demo_data
  return demo_data.generate(str(tmp_path_factory.mktemp('demo423')), scale=configs.DEMO_SCALE,
                            missing_masks=configs.DEMO_MISSING_MASKS, seed=0)


@pytest.fixture(scope='module')
def trained(demo, tmp_path_factory):
  from components.trainer.config import TrainConfig
  root = str(tmp_path_factory.mktemp('train'))
  first = _run(root, demo.csv_path, _config(demo), TrainConfig())
  strict = _run(root, demo.csv_path, _config(demo), TrainConfig(majority_margin=0.6))
  return first, strict


@pytest.fixture(scope='module')
def permuted(demo, tmp_path_factory):
  """The same images and pipeline, each row's class replaced by another row's (a seeded
  permutation of the class column: the class counts stay, the images say nothing)."""
  from components.trainer.config import TrainConfig
  rows = read_csv_rows(demo.csv_path)
  classes = np.random.default_rng(0).permutation([r['class'] for r in rows])
  moved = sum(r['class'] != c for r, c in zip(rows, classes))
  assert moved > len(rows) / 2  # most rows changed class
  csv_path = write_csv_rows(os.path.join(demo.root, 'permuted_labels.csv'),
                            [dict(r, **{'class': c}) for r, c in zip(rows, classes)])
  return _run(str(tmp_path_factory.mktemp('permuted')), csv_path, _config(demo), TrainConfig())


def _report(result):
  from components.trainer import report
  found = report.load(result.training.evaluation_uri)
  assert found is not None, result.training.evaluation_uri
  return found


def _split_count(result, split):
  return sum(s['count'] for s in result.summary.shards if s['split'] == split)


@pytest.fixture(scope='module')
def served(trained):
  """The pushed SavedModel (tf.saved_model.load) and its serving_default signature."""
  import tensorflow as tf
  loaded = tf.saved_model.load(trained[0].training.pushed_model_dir)
  return loaded, loaded.signatures['serving_default']


@pytest.fixture(scope='module')
def test_split(trained, demo):
  """The test split through make_dataset (one batch), each image's PNG bytes from disk, and
  its mask from disk (None without one)."""
  import tensorflow_transform as tft

  from components.transform.input_fn import make_dataset
  result = trained[0]
  features, labels = next(iter(make_dataset(
      [os.path.join(result.examples_uri, 'Split-test', '*')],
      tft.TFTransformOutput(result.transform_graph_uri), batch_size=1000,
      feature_keys=('image', 'image_id'))))
  rows = {r['image_path']: r for r in read_csv_rows(demo.csv_path)}
  png, masks = [], []
  for image_id in features['image_id'].numpy():
    with open(os.path.join(demo.root, image_id.decode()), 'rb') as f:
      png.append(f.read())
    mask = rows[image_id.decode()]['mask_path']
    masks.append(np.asarray(Image.open(os.path.join(demo.root, mask))) > 0 if mask else None)
  return features, labels.numpy(), png, masks


@pytest.fixture(scope='module')
def keras_probabilities(trained, test_split):
  """The trained Keras model (ModelRun's model.keras) on make_dataset's images: the
  training-time path."""
  import keras
  import tensorflow as tf

  from components.trainer import model as model_lib  # noqa: F401  (registers MaskDice)
  from components.trainer.config import KERAS_MODEL_FILE
  model = keras.models.load_model(
      os.path.join(trained[0].training.model_run_uri, KERAS_MODEL_FILE), compile=False)
  return tf.nn.softmax(model(test_split[0]['image'])['class'], axis=-1).numpy()


def test_the_template_learns_the_demo_and_is_blessed_and_pushed(trained):
  result, _ = trained
  training = result.training
  ids = [c for c, _, _ in result.components]
  assert ids[-3:] == ['Trainer', 'Evaluator', 'Pusher']
  assert training.blessed and training.pushed
  report = _report(result)
  assert report['splits'] == ['test'] and report['examples'] == _split_count(result, 'test')
  assert report['accuracy'] == pytest.approx(training.accuracy)
  assert report['accuracy'] >= MIN_ACCURACY, report['confusion_matrix']
  assert report['majority_class'] == 'Normal' and 0.4 < report['majority_class_rate'] < 0.55
  assert report['top_class_share'] < 0.95
  dice = report['mask_dice']
  assert dice['mean'] >= MIN_DICE
  test_masks = sum(1 for _, ex in read_examples(os.path.join(result.examples_uri, 'Split-test',
                                                             '*'))
                   if ex.features.feature['mask'].bytes_list.value[0])
  assert dice['examples'] == test_masks > 0
  names = result.summary.class_names
  assert [c['name'] for c in report['classes']] == [names[k] for k in sorted(names)]
  for c in report['classes']:
    assert 0 <= c['precision'] <= 1 and 0 <= c['recall'] <= 1 and 0.5 < c['auc'] <= 1, c
  matrix = np.array(report['confusion_matrix'])
  assert matrix.sum() == report['examples']
  assert matrix.trace() / matrix.sum() == pytest.approx(report['accuracy'])
  assert [c['examples'] for c in report['classes']] == matrix.sum(axis=1).tolist()
  assert report['baseline'] is None and report['failures'] == []
  assert 'no blessed model yet' in report['reasons'][-1]
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
  assert 'saved_model.pb' in served_files and 'assets.extra/class_names.json' in served_files


def test_the_summary_says_split_count_per_class_metrics_and_why(trained, capsys):
  from pipeline.cli import summary
  first, strict = trained
  summary._print_training(first.training)
  text = capsys.readouterr().out
  report = _report(first)
  assert f"evaluated on split test: {report['examples']} examples; accuracy" in text
  for name in first.summary.class_names.values():
    assert f'\n  {name}' in text  # its row of precision / recall / AUC, and of the matrix
  assert 'precision  recall    AUC' in text and 'confusion matrix' in text
  assert 'lung masks: mean Dice' in text
  assert 'blessed: accuracy' in text and f'pushed: {first.training.pushed_model_dir}' in text
  summary._print_training(strict.training)
  text = capsys.readouterr().out
  assert 'NOT blessed: accuracy' in text and 'is below the majority-class rate' in text
  assert "not worse than the blessed model's accuracy" in text
  assert 'not blessed: nothing pushed' in text


def test_tensorboard_logs_and_keras_model_are_in_the_model_run(trained):
  run_dir = trained[0].training.model_run_uri
  events = [f for d, _, fs in os.walk(run_dir) for f in fs if f.startswith('events.out')]
  assert {'train', 'validation'} <= set(os.listdir(run_dir)) and events
  assert os.path.isfile(os.path.join(run_dir, 'model.keras'))


def test_class_balance_weights_are_used_when_published(trained):
  """The contract: ClassBalance's `class_weights` property weights the loss when present; the
  Trainer records what it used on the Model ('' = unweighted)."""
  from components.class_balance import spec as balance_spec
  from components.trainer.config import parse_class_weights
  from pipeline import mlmd
  result, _ = trained
  store = mlmd.sqlite_store(result.metadata_path)
  balance = mlmd.run_output(store, mlmd.run_by_name(store, result.run_id), 'cxr-tfx',
                            'ClassBalance', balance_spec.ANOMALIES_KEY)
  published = balance.custom_properties.get(balance_spec.CLASS_WEIGHTS_PROPERTY)
  if published is None:
    assert result.training.class_weights == ''
  else:
    assert parse_class_weights(result.training.class_weights) == parse_class_weights(
        published.string_value)


def test_a_second_model_is_compared_with_the_blessed_one_and_held_to_the_margin(trained):
  first, strict = trained
  cached = {c for c, _, was_cached in strict.components if was_cached}
  assert 'Trainer' in cached  # same model: only the Evaluator's thresholds changed
  assert strict.training.model_uri == first.training.model_uri
  assert not strict.training.blessed and not strict.training.pushed
  assert strict.training.pushed_model_dir == ''
  report = _report(strict)
  assert report['accuracy'] == pytest.approx(_report(first)['accuracy'])
  assert report['baseline']['model_uri'] == first.training.model_uri
  assert report['baseline']['accuracy'] == pytest.approx(report['accuracy'])
  assert report['baseline']['accuracy_change'] == pytest.approx(0.0, abs=1e-6)
  assert report['thresholds']['majority_margin'] == pytest.approx(0.6)
  import tensorflow_model_analysis as tfma
  validation = tfma.load_validation_result(strict.training.evaluation_uri)
  assert not validation.validation_ok
  (failed,) = validation.metric_validations_per_slice
  assert not failed.slice_key.single_slice_keys  # the overall slice, not a class
  assert [f.metric_key.name for f in failed.failures] == ['accuracy_over_majority']
  assert tfma.load_validation_result(first.training.evaluation_uri).validation_ok


def test_permuted_labels_are_not_blessed(permuted):
  training = permuted.training
  report = _report(permuted)
  print(f"permuted labels: accuracy {report['accuracy']:.3f} on {report['examples']} test "
        f"examples, majority rate {report['majority_class_rate']:.3f}, top class "
        f"{report['top_class']} {report['top_class_share']:.2f}; failed "
        f"{[f['metric'] for f in report['failures']]}")
  assert not training.blessed and not training.pushed and training.pushed_model_dir == ''
  assert report['accuracy'] < report['majority_class_rate'] + 0.1
  assert {f['metric'] for f in report['failures']} & {'accuracy_over_majority',
                                                      'top_class_share'}


def _evaluate(examples_uri, model_uri, out, baseline_uri='', **train_config):
  """The pipeline Evaluator's executor, on the test split of ``examples_uri``, with the
  eval config of ``TrainConfig(**train_config)`` -> its report."""
  import json

  from tfx.types import standard_artifacts
  from tfx.utils import proto_utils

  from components.trainer.config import TrainConfig
  from components.trainer.evaluation import eval_config
  from components.trainer.evaluator import Executor
  from components.trainer.report import REPORT_FILE

  def artifact(cls, uri, **properties):
    a = cls()
    a.uri = uri
    for k, v in properties.items():
      setattr(a, k, v)
    return a

  evaluation = artifact(standard_artifacts.ModelEvaluation, str(out / 'evaluation'))
  blessing = artifact(standard_artifacts.ModelBlessing, str(out / 'blessing'))
  os.makedirs(evaluation.uri)
  os.makedirs(blessing.uri)
  inputs = {'examples': [artifact(standard_artifacts.Examples, examples_uri,
                                  split_names='["train", "eval", "test"]')],
            'model': [artifact(standard_artifacts.Model, model_uri)]}
  if baseline_uri:
    inputs['baseline_model'] = [artifact(standard_artifacts.Model, baseline_uri)]
  Executor().Do(inputs, {'evaluation': [evaluation], 'blessing': [blessing]},
                {'eval_config': proto_utils.proto_to_json(eval_config(TrainConfig(
                    **train_config))), 'example_splits': '["test"]'})
  with open(os.path.join(evaluation.uri, REPORT_FILE)) as f:
    report = json.load(f)
  assert os.path.exists(os.path.join(blessing.uri, 'BLESSED' if report['blessed'] else
                                     'NOT_BLESSED'))
  return report


def test_a_one_class_model_is_never_blessed(trained, tmp_path):
  """A model that answers Normal for every image scores the majority-class rate: with no
  margin asked it passes the majority rule, and the one-class rule alone refuses it."""
  import tensorflow_transform as tft

  from components.trainer import export
  from components.trainer import model as model_lib
  first = trained[0]
  names = first.summary.class_names
  normal = next(k for k, n in names.items() if n == 'Normal')
  model = model_lib.build_model((256, 256, 1), len(names), filters=2)
  head = model.get_layer('class')
  kernel, bias = head.get_weights()
  bias[:] = 0.0
  bias[normal] = 10.0
  head.set_weights([kernel * 0.0, bias])
  export.export_serving_model(model, tft.TFTransformOutput(first.transform_graph_uri), names,
                              str(tmp_path / 'model' / 'Format-Serving'))
  report = _evaluate(first.examples_uri, str(tmp_path / 'model'), tmp_path, majority_margin=0.0)
  assert report['top_class'] == 'Normal' and report['top_class_share'] == 1.0
  assert report['accuracy'] == pytest.approx(report['majority_class_rate'])
  assert not report['blessed']
  assert [f['metric'] for f in report['failures']] == ['top_class_share']
  assert 'a one-class model is never blessed' in report['reasons'][1]


def test_a_model_worse_than_the_blessed_one_is_not_blessed(trained, permuted, tmp_path):
  """The Evaluator's executor on the demo's test split with the permuted-label model as the
  candidate and the blessed one as the baseline: TFMA's change threshold refuses it."""
  first = trained[0]
  report = _evaluate(first.examples_uri, permuted.training.model_uri, tmp_path,
                     first.training.model_uri, majority_margin=0.0)
  assert not report['blessed']
  assert ('sparse_categorical_accuracy', True) in {(f['metric'], f['is_diff'])
                                                   for f in report['failures']}
  assert report['baseline']['accuracy_change'] < 0
  assert any(r.startswith("worse than the blessed model's accuracy") for r in report['reasons'])


def test_raw_png_bytes_give_the_training_time_probabilities_and_masks(served, test_split,
                                                                      keras_probabilities,
                                                                      trained):
  import tensorflow as tf
  _, serve = served
  _, labels, png, masks = test_split
  out = serve(image=tf.constant(png))
  np.testing.assert_allclose(out['class_probabilities'].numpy(), keras_probabilities, atol=1e-5)
  names = trained[0].summary.class_names
  expected_ids = keras_probabilities.argmax(axis=1)
  assert out['class_id'].numpy().tolist() == expected_ids.tolist()
  assert [n.decode() for n in out['class_name'].numpy()] == [names[k] for k in expected_ids]
  assert (expected_ids == labels).mean() >= MIN_ACCURACY
  assert out['mask'].shape == (len(png), 256, 256, 1)
  predicted = out['mask'].numpy()[..., 0] > 0.5
  dice = [2 * (p & m).sum() / (p.sum() + m.sum()) for p, m in zip(predicted, masks)
          if m is not None]
  assert len(dice) >= 30 and np.mean(dice) >= MIN_DICE  # against the mask files on disk
  assert len(labels) == len(png) >= 40


def test_16_bit_png_and_jpeg_requests_need_no_mask(served, test_split, keras_probabilities):
  """A request is the image alone. The same pixels as 16-bit PNG give the same probabilities
  (x * 257 / 65535 == x / 255); a JPEG is decoded the way training decodes one."""
  import tensorflow as tf
  _, serve = served
  png = test_split[2]
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
  png = test_split[2]
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
  png = test_split[2]
  with tf.Graph().as_default(), tf.compat.v1.Session() as session:
    meta_graph = tf.compat.v1.saved_model.load(session, ['serve'],
                                               trained[0].training.pushed_model_dir)
    signature = meta_graph.signature_def['serving_default']
    fetch = signature.outputs['class_probabilities'].name
    probabilities = session.run(fetch, {signature.inputs['image'].name: png})
  np.testing.assert_allclose(probabilities, keras_probabilities, atol=1e-5)


def test_load_split_gives_the_runs_decoded_split_in_one_line(trained, test_split):
  from components.transform.load import load_split
  from components.transform.load import LoadError
  result = trained[0]
  features, labels = next(iter(load_split(result.pipeline_root, 'test', batch_size=1000)))
  assert features['image'].shape == (_split_count(result, 'test'), 256, 256, 1)
  assert features['image_id'].numpy().tolist() == test_split[0]['image_id'].numpy().tolist()
  assert labels.numpy().tolist() == test_split[1].tolist()
  with pytest.raises(LoadError, match=r"no split 'validation'.*\['train', 'eval', 'test'\]"):
    load_split(result.pipeline_root, 'validation')
  with pytest.raises(LoadError, match='no ML Metadata store'):
    load_split(os.path.dirname(result.pipeline_root), 'train')


def test_predict_scores_image_files_with_the_pushed_model(trained, test_split, demo,
                                                          keras_probabilities, tmp_path, capsys):
  """`cxr-tfx predict --model <pipeline root>` (its newest pushed model) on test PNG files:
  the class the served model gives, every class's probability, the mask coverage."""
  from pipeline import progress
  from pipeline.cli.predict import _predict
  from pipeline.cli.predict import add_predict_parser
  features = test_split[0]
  root = trained[0].pipeline_root
  paths = [os.path.join(demo.root, i.decode()) for i in features['image_id'].numpy()[:6]]
  parser = argparse.ArgumentParser(prog='cxr-tfx')
  add_predict_parser(parser.add_subparsers(dest='command'))
  args = parser.parse_args(['predict', '--model', root, '--masks-out', str(tmp_path / 'm'),
                            *paths])
  assert _predict(args, progress.Display(quiet=True)) == 0
  lines = capsys.readouterr().out.splitlines()
  names = trained[0].summary.class_names
  assert lines[0].split('\t') == ['image', 'class', *(f'p({names[k]})' for k in sorted(names)),
                                  'mask coverage', 'mask']
  for line, path, expected in zip(lines[1:], paths, keras_probabilities):
    image, name, *probabilities, coverage, mask = line.split('\t')
    assert image == path and name == names[int(expected.argmax())]
    np.testing.assert_allclose([float(p) for p in probabilities], expected, atol=1e-3)
    assert 10 < float(coverage.rstrip('%')) < 60  # two lung fields
    assert np.asarray(Image.open(mask)).shape == (256, 256)
  assert len(lines) == 1 + len(paths)


def test_lineage_walks_from_the_pushed_folder_back_to_the_data(trained, capsys):
  from pipeline import cli
  result = trained[0]
  pushed = result.training.pushed_model_dir
  assert cli.main(['lineage', '--metadata', result.metadata_path, '--artifact-uri',
                   pushed]) == 0
  text = capsys.readouterr().out
  assert text.startswith('● PushedModel #') and f'pushed_destination: {pushed}' in text
  for step in ('produced by Pusher', 'produced by Trainer', 'produced by ImageExampleGen',
               'input_fingerprint', 'class_mapping'):
    assert step in text, step
  assert cli.main(['lineage', '--metadata', result.metadata_path, '--artifact-uri',
                   os.path.dirname(pushed)]) == 2
  assert 'is a serving folder; give one of its pushed models' in capsys.readouterr().err
