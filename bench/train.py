"""The Trainer's throughput: images per second the template model trains at, and whether its
input pipeline keeps up. Runs on the CPU here and on a GPU machine unchanged (every visible GPU,
as the Trainer uses them).

  python -m bench.run --stages train    # within the benchmark: on its smaller dataset
  python -m bench.train                 # alone: demo data, the pipeline, then this stage;
                                        # bench/results/train.json and train.md

With the Trainer's own code (components/trainer/task.py: ``training_dataset`` over
``make_dataset``, ``build_model`` and ``compile_model`` under ``distribution_strategy()``), on
ImageExampleGen's train split through the run's TransformGraph, in one process after
TensorFlow's import, each figure after a warm-up of its own:

  input    the input pipeline alone, decoding every batch (no cache: the Trainer caches only
           splits that fit in memory): images/s it can deliver
  compute  model.fit on batches already in memory: images/s the devices train at
  train    model.fit fed by the input pipeline, as the Trainer runs it: images/s end to end

Input-bound when input < compute: the devices wait for data, and the end-to-end figure is close
to the input's (then: more cores for tf.data, a cache, or fewer, larger images).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from bench.stages import RESULT_PREFIX

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGE = 'train'
DEFAULT_STEPS = 100
DEFAULT_WARMUP = 10


def throughput(examples_uri: str, transform_graph_uri: str, steps: int = DEFAULT_STEPS,
               warmup: int = DEFAULT_WARMUP, batch_size: int = 0,
               precision: str = 'float32') -> Dict[str, object]:
  """The three figures (module docstring); ``batch_size`` 0: the Trainer's default."""
  t0 = time.monotonic()
  import keras
  import tensorflow as tf
  import tensorflow_transform as tft

  from components.trainer import model as model_lib
  from components.trainer import task
  from components.trainer.config import Hyperparameters
  from components.trainer.config import TrainConfig
  imported = time.monotonic() - t0
  config = TrainConfig(precision=precision, **({'batch_size': batch_size} if batch_size else {}))
  tf_transform_output = tft.TFTransformOutput(transform_graph_uri)
  patterns = [os.path.join(examples_uri, f'{task.SPLIT_PREFIX}train', '*')]
  strategy, devices = task.distribution_strategy()
  images = steps * config.batch_size

  def rate(seconds: float) -> float:
    return images / seconds if seconds > 0 else float('nan')

  dataset = task.training_dataset(patterns, tf_transform_output, config.batch_size,
                                  shuffle=True, seed=config.seed,
                                  shuffle_buffer=config.shuffle_buffer)
  batches = iter(dataset)
  for _ in range(warmup):
    batch = next(batches)
  start = time.monotonic()
  for _ in range(steps):
    next(batches)
  input_seconds = time.monotonic() - start

  keras.utils.set_random_seed(config.seed)
  with strategy.scope():
    model = model_lib.compile_model(
        model_lib.build_model(task.image_shape(tf_transform_output),
                              len(task.class_names_for(patterns, Hyperparameters())),
                              config.filters, config.precision),
        config.learning_rate, config.mask_loss_weight, None, config.precision)
  in_memory = tf.data.Dataset.from_tensors(batch).repeat()
  model.fit(in_memory, steps_per_epoch=warmup, epochs=1, verbose=0)  # traces the step
  start = time.monotonic()
  model.fit(in_memory, steps_per_epoch=steps, epochs=1, verbose=0)
  compute_seconds = time.monotonic() - start
  model.fit(dataset, steps_per_epoch=warmup, epochs=1, verbose=0)
  start = time.monotonic()
  model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
  train_seconds = time.monotonic() - start
  input_rate, compute_rate = rate(input_seconds), rate(compute_seconds)
  return {'seconds': input_seconds + compute_seconds + train_seconds,
          'records': images, 'import_seconds': imported, 'devices': devices,
          'replicas': strategy.num_replicas_in_sync, 'precision': config.precision,
          'batch_size': config.batch_size, 'steps': steps, 'warmup_steps': warmup,
          'image_shape': list(task.image_shape(tf_transform_output)),
          'input_images_per_s': input_rate, 'compute_images_per_s': compute_rate,
          'train_images_per_s': rate(train_seconds), 'input_bound': input_rate < compute_rate}


def stage(examples_uri: str, transform_graph_uri: str, **kwargs) -> Dict[str, object]:
  """``throughput`` in a fresh process, as bench.run runs every stage: its result, the
  process's peak RSS and wall time."""
  request = json.dumps(dict(examples_uri=examples_uri, transform_graph_uri=transform_graph_uri,
                            **kwargs))
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, '-m', 'bench.train', '--stage', request], cwd=REPO,
                            stdout=out, stderr=err, text=True)
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KB
    wall = time.monotonic() - start
    out.seek(0)
    err.seek(0)
    stdout, stderr = out.read(), err.read()
  lines = [l for l in stdout.splitlines() if l.startswith(RESULT_PREFIX)]
  if os.waitstatus_to_exitcode(status) != 0 or not lines:
    raise RuntimeError(f'stage {STAGE} failed:\n{stderr[-3000:]}')
  result = json.loads(lines[-1][len(RESULT_PREFIX):])
  result.update(process_peak_rss_mb=usage.ru_maxrss / 1024, process_wall_seconds=wall)
  return result


def markdown_lines(result: Optional[Dict]) -> List[str]:
  """The stage's section of a results page ([] when it did not run)."""
  if not result or 'train_images_per_s' not in result:
    return []
  verdict = ('input-bound: the input pipeline delivers fewer images/s than the devices train '
             'at' if result['input_bound'] else
             'not input-bound: the input pipeline delivers more images/s than the devices '
             'train at')
  return ['', f"## Training throughput ({result['devices']}, {result['replicas']} replica(s), "
          f"{result['precision']})", '',
          f"The Trainer's input pipeline and template model (bench/train.py), batch "
          f"{result['batch_size']}, {result['steps']} steps after {result['warmup_steps']} of "
          f"warm-up, images {'x'.join(map(str, result['image_shape']))}.", '',
          '| figure | images/s |', '|---|---:|',
          f"| input pipeline alone (decode every batch) | {result['input_images_per_s']:.1f} |",
          f"| model on batches in memory | {result['compute_images_per_s']:.1f} |",
          f"| training end to end (model.fit on the input pipeline) | "
          f"{result['train_images_per_s']:.1f} |", '', f'{verdict}.']


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.train', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--stage', help=argparse.SUPPRESS)  # bench internal: JSON arguments
  parser.add_argument('--scale', type=float, default=0.02,
                      help='demo data scale (default %(default)s = 423 records)')
  parser.add_argument('--seed', type=int, default=0, help='demo data seed (default %(default)s)')
  parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'),
                      help='demo data and the pipeline run (default %(default)s)')
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results'),
                      help='train.json and train.md go here (default %(default)s)')
  parser.add_argument('--steps', type=int, default=DEFAULT_STEPS,
                      help='measured steps per figure (default %(default)s)')
  parser.add_argument('--batch-size', type=int, default=0,
                      help="records per step, over all devices (default: the Trainer's)")
  parser.add_argument('--precision', default='float32',
                      help='Keras dtype policy: float32, mixed_float16 or mixed_bfloat16')
  args = parser.parse_args(argv)
  if args.stage:
    os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
    print(RESULT_PREFIX + json.dumps(throughput(**json.loads(args.stage))), flush=True)
    return 0
  from bench import run
  csv_path, mapping = run.dataset(args.work_dir, args.scale, args.seed)
  pipeline = run.run_stage('pipeline', csv_path=csv_path, mapping_path=mapping,
                           root=os.path.join(args.work_dir, f'train-s{args.scale}'))
  result = stage(pipeline['examples_uri'], pipeline['transform_graph_uri'], steps=args.steps,
                 batch_size=args.batch_size, precision=args.precision)
  report = {'machine': run.machine(), 'scale': args.scale, 'seed': args.seed, STAGE: result}
  text = '\n'.join(['# cxr-tfx training throughput', '',
                    f"{report['machine']['cpu']}, {report['machine']['cores']} cores; demo data "
                    f"at scale {args.scale}."] + markdown_lines(result) + [''])
  run.write_report(args.out, STAGE, report, text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
