"""Where the read path's time goes: the seed's reader against the pieces of the Transform graph.

Usage: python -m bench.read_variants [--work-dir bench/work] [--scale 1.0] [--limit 4000]
                                     [--repeat 3] [--out bench/results/read_variants.md]

Runs after ``python -m bench.run`` (it reads that run's outputs under
``<work-dir>/run-s<scale>/``: the seed loop's shards, ImageExampleGen's examples and the
TransformGraph). One process, one tf.data stream per variant (no parallel map), the first
``--limit`` records, best of ``--repeat``; milliseconds per record and the ratio to the seed's
reader. The proposed variants are what ``components/transform/preprocessing.py`` could do
instead (same outputs; not applied here).
"""
import argparse
import glob
import os
import sys
import time
from typing import Callable, Dict, List

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def variants(run_dir: str, limit: int) -> Dict[str, Callable]:
  """Name -> a function building the dataset to time."""
  import tensorflow as tf
  import tensorflow_transform as tft

  from bench import seed_loop
  from components.image_example_gen import spec
  from components.transform import preprocessing
  from components.transform.input_fn import make_dataset
  from pipeline import configs
  from pipeline import mlmd

  # bench.run's whole-pipeline stage: pipeline.local_runner's defaults under <run_dir>/root.
  store = mlmd.sqlite_store(os.path.join(run_dir, 'root', configs.METADATA_FILE))
  run = mlmd.latest_run(store, configs.PIPELINE_NAME)
  examples = mlmd.run_output(store, run, configs.PIPELINE_NAME, configs.IMAGE_EXAMPLE_GEN,
                             spec.EXAMPLES_KEY).uri
  graph = mlmd.run_output(store, run, configs.PIPELINE_NAME, configs.TRANSFORM,
                          configs.TRANSFORM_GRAPH_KEY).uri
  ours = sorted(glob.glob(os.path.join(examples, 'Split-*', '*')))
  seed_files = sorted(glob.glob(os.path.join(run_dir, 'seed', '*')))
  size = (256, 256)
  spec = {k: tf.io.FixedLenFeature([], t) for k, t in
          (('image', tf.string), ('mask', tf.string), ('class', tf.int64))}

  def per_example(fn):
    return lambda: tf.data.TFRecordDataset(ours, compression_type='GZIP').take(limit).map(
        lambda p: fn(tf.io.parse_single_example(p, spec)))

  def mask_same_size_skip(data):
    """decode_mask, with the nearest-neighbour resize skipped when the mask already has the
    output size (the real masks are 256x256)."""
    def decoded():
      m = tf.io.decode_image(data, channels=1, expand_animations=False)
      m = tf.cond(tf.reduce_all(tf.equal(tf.shape(m)[:2], size)), lambda: m,
                  lambda: tf.image.resize(m, size, method=tf.image.ResizeMethod.NEAREST_NEIGHBOR))
      return tf.cast(m > 0, tf.float32)
    mask = tf.cond(tf.strings.length(data) > 0, decoded, lambda: tf.zeros([*size, 1], tf.float32))
    return tf.ensure_shape(mask, [*size, 1])

  def image_resize_then_scale(data):
    """decode_image at the source's integer depth, resize (float out), then scale: the scale
    runs on 256x256 instead of 299x299 (8-bit shown; 16-bit would divide by 65535)."""
    image = tf.io.decode_image(data, channels=1, expand_animations=False)
    image = tf.image.resize(image, size) * (1.0 / 255.0)
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [*size, 1])

  output = tft.TFTransformOutput(graph)
  return {
      "seed reader over the seed loop's shards (uncompressed)":
          lambda: tf.data.TFRecordDataset(seed_files).take(limit).map(seed_loop.parse_function),
      "seed reader over ImageExampleGen's shards (gzip level 0)":
          lambda: tf.data.TFRecordDataset(ours, compression_type='GZIP').take(limit).map(
              seed_loop.parse_function),
      'parse only': per_example(lambda x: x['class']),
      'preprocessing.decode_image (decode float, resize)':
          per_example(lambda x: preprocessing.decode_image(x['image'], size, 1)),
      'preprocessing.decode_mask (decode, cond, resize, > 0)':
          per_example(lambda x: preprocessing.decode_mask(x['mask'], size)),
      'proposed decode_mask: skip same-size resize': per_example(
          lambda x: mask_same_size_skip(x['mask'])),
      'proposed decode_image: resize, then scale': per_example(
          lambda x: image_resize_then_scale(x['image'])),
      'decode_image + decode_mask (the graph\'s work, per example)': per_example(
          lambda x: (preprocessing.decode_image(x['image'], size, 1),
                     preprocessing.decode_mask(x['mask'], size))),
      'both proposed, per example': per_example(
          lambda x: (image_resize_then_scale(x['image']), mask_same_size_skip(x['mask']))),
      'make_dataset, batch 32 (graph loaded and traced beforehand)':
          lambda: make_dataset(os.path.join(examples, 'Split-*', '*'), output, 32).unbatch().take(
              limit),
  }


def measure(builders: Dict[str, Callable], repeat: int) -> Dict[str, float]:
  """Best seconds per variant over ``repeat`` interleaved rounds (each dataset built first)."""
  best: Dict[str, float] = {}
  for _ in range(repeat):
    for name, build in builders.items():
      dataset = build()
      for _ in dataset.take(1):  # tracing and first-element set-up, outside the timing
        pass
      dataset = build()
      start = time.monotonic()
      n = sum(1 for _ in dataset)
      best[name] = min(best.get(name, float('inf')), time.monotonic() - start)
      best[name + '\0n'] = n
  return best


def main(argv: List[str] = None) -> int:
  parser = argparse.ArgumentParser(prog='python -m bench.read_variants', description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--work-dir', default=os.path.join(REPO, 'bench', 'work'))
  parser.add_argument('--scale', type=float, default=1.0,
                      help='the bench.run size whose outputs to read (default %(default)s)')
  parser.add_argument('--limit', type=int, default=4000, help='records per variant')
  parser.add_argument('--repeat', type=int, default=3)
  parser.add_argument('--out', default=os.path.join(REPO, 'bench', 'results', 'read_variants.md'))
  args = parser.parse_args(argv)
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  load0 = os.getloadavg()
  best = measure(variants(os.path.join(args.work_dir, f'run-s{args.scale}'), args.limit),
                 args.repeat)
  names = [k for k in best if '\0' not in k]
  seed = best[names[0]] / best[names[0] + '\0n']
  lines = ['# Read path: where the time goes', '',
           f'{int(best[names[0] + chr(0) + "n"])} records per variant from the scale-{args.scale} '
           f'run, one tf.data stream each (no parallel map), best of {args.repeat}; load '
           f'average {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at end. Proposed '
           'variants are not applied in components/.', '',
           '| variant | ms per record | time vs the seed reader |', '|---|---:|---:|']
  for name in names:
    per = best[name] / best[name + '\0n']
    lines.append(f'| {name} | {per * 1e3:.3f} | {per / seed:.2f}× |')
  text = '\n'.join(lines) + '\n'
  with open(args.out, 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
