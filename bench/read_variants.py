"""Where the read path's time goes: the seed's reader against make_dataset and its pieces.

Usage: python -m bench.read_variants [--work-dir bench/work] [--scale 1.0] [--limit 4000]
                                     [--repeat 3] [--out bench/results/read_variants.md]

Runs after ``python -m bench.run`` (it reads that run's outputs under
``<work-dir>/run-s<scale>/``: the seed loop's shards, ImageExampleGen's examples and the
TransformGraph). Each variant is one tf.data stream over the first ``--limit`` records, built
and started (tracing, first element) before its timing; best of ``--repeat`` interleaved rounds.
The seed's reader and the per-example variants map as written, without num_parallel_calls
(tf.data's default map_parallelization still runs a stateless map on several cores);
make_dataset maps batches in parallel (AUTOTUNE). Two figures per record: wall time, and CPU
time (this process's user + system time: every thread, on however many cores it got), each
also as throughput relative to the seed's reader (above 1: faster). CPU time is the steadier
figure on a shared machine. make_dataset reads ahead (parallel map, prefetch), so with
``--limit`` below the run's record count its CPU time includes a few batches it did not return
(at scale 0.1, ``--limit 2116`` reads every record).

make_dataset runs with the run's TransformGraph and with one traced here from the current
components/transform/preprocessing.py (same image size and channels), so a change to the
preprocessing_fn is measured against the graph it replaces in one run, without re-running the
pipeline. The per-example variants call the current decode functions.
"""
import argparse
import functools
import glob
import os
import sys
import tempfile
import time
from typing import Callable, Dict, List, NamedTuple, Optional

from bench.stages import cpu_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BATCH_SIZE = 32


class Variant(NamedTuple):
  build: Callable  # () -> a tf.data.Dataset
  records: Optional[Callable] = None  # element -> records in it; None: one per element


def trace_graph(tf_transform_output, out_dir: str):
  """A TransformGraph of the current preprocessing_fn, with the raw schema and the image size
  and channels of ``tf_transform_output`` (as TFX's Transform writes one: the traced function,
  and the raw metadata beside it)."""
  import tensorflow_transform as tft
  import tensorflow_transform.beam as tft_beam
  from tensorflow_transform.tf_metadata import metadata_io

  from components.transform import config as config_lib
  from components.transform import preprocessing
  height, width, channels = tf_transform_output.transformed_feature_spec()[config_lib.IMAGE].shape
  config = config_lib.TransformConfig(image_size=(height, width), channels=channels)
  metadata = tf_transform_output.raw_metadata
  with tft_beam.Context(temp_dir=os.path.join(out_dir, 'tmp'), force_tf_compat_v1=False):
    transform_fn = ([], metadata) | tft_beam.AnalyzeDataset(functools.partial(
        preprocessing.preprocessing_fn, custom_config=config.to_custom_config()))
    _ = transform_fn | tft_beam.WriteTransformFn(os.path.join(out_dir, 'graph'))
  metadata_io.write_metadata(metadata, os.path.join(out_dir, 'graph', 'metadata'))
  return tft.TFTransformOutput(os.path.join(out_dir, 'graph')), config


def variants(run_dir: str, limit: int, scratch: str) -> Dict[str, Variant]:
  """Name -> how to build the dataset to time; the seed's reader first (the reference)."""
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
  run_graph = tft.TFTransformOutput(graph)
  current_graph, config = trace_graph(run_graph, scratch)
  size, channels = config.image_size, config.channels
  raw = {k: tf.io.FixedLenFeature([], t) for k, t in
         (('image', tf.string), ('mask', tf.string), ('class', tf.int64))}

  def per_example(fn):
    return Variant(lambda: tf.data.TFRecordDataset(ours, compression_type='GZIP').take(
        limit).map(lambda p: fn(tf.io.parse_single_example(p, raw))))

  def ours_read(output, unbatch=True):
    def build():
      dataset = make_dataset(os.path.join(examples, 'Split-*', '*'), output, BATCH_SIZE)
      return (dataset.unbatch().take(limit) if unbatch
              else dataset.take(-(-limit // BATCH_SIZE)))
    return Variant(build, None if unbatch else lambda element: int(element[1].shape[0]))

  shape = f'{size[0]}x{size[1]}x{channels}'
  return {
      "seed reader over the seed loop's shards (uncompressed)": Variant(
          lambda: tf.data.TFRecordDataset(seed_files).take(limit).map(seed_loop.parse_function)),
      "seed reader over ImageExampleGen's shards (gzip level 0)": Variant(
          lambda: tf.data.TFRecordDataset(ours, compression_type='GZIP').take(limit).map(
              seed_loop.parse_function)),
      'parse only': per_example(lambda x: x['class']),
      f'preprocessing.decode_image to {shape}, per example': per_example(
          lambda x: preprocessing.decode_image(x['image'], size, channels)),
      'preprocessing.decode_mask, per example': per_example(
          lambda x: preprocessing.decode_mask(x['mask'], size)),
      'decode_image + decode_mask, per example': per_example(
          lambda x: (preprocessing.decode_image(x['image'], size, channels),
                     preprocessing.decode_mask(x['mask'], size))),
      f"make_dataset, batch {BATCH_SIZE}, the run's TransformGraph, unbatched":
          ours_read(run_graph),
      f'make_dataset, batch {BATCH_SIZE}, TransformGraph of the current preprocessing.py, '
      'unbatched': ours_read(current_graph),
      f'make_dataset, batch {BATCH_SIZE}, TransformGraph of the current preprocessing.py, '
      'by batch (as bench.stages reads it)': ours_read(current_graph, unbatch=False),
  }


def measure(named: Dict[str, Variant], repeat: int) -> Dict[str, Dict[str, float]]:
  """{name: {'records', 'seconds', 'cpu_seconds'}}: the best wall and the best CPU time over
  ``repeat`` interleaved rounds (each dataset built and started first)."""
  best: Dict[str, Dict[str, float]] = {}
  for _ in range(repeat):
    for name, variant in named.items():
      for _ in variant.build().take(1):  # tracing and first-element set-up, outside the timing
        pass
      dataset = variant.build()
      count = variant.records or (lambda element: 1)
      start, cpu = time.monotonic(), cpu_seconds()
      n = sum(count(element) for element in dataset)
      seconds, cpu = time.monotonic() - start, cpu_seconds() - cpu
      old = best.setdefault(name, {'records': n, 'seconds': seconds, 'cpu_seconds': cpu})
      old.update(seconds=min(old['seconds'], seconds), cpu_seconds=min(old['cpu_seconds'], cpu))
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
  with tempfile.TemporaryDirectory(prefix='read_variants-') as scratch:
    best = measure(variants(os.path.join(args.work_dir, f'run-s{args.scale}'), args.limit,
                            scratch), args.repeat)
  seed = next(iter(best.values()))
  per = lambda r, key: r[key] / r['records']
  lines = ['# Read path: where the time goes', '',
           f'Up to {args.limit} records per variant from the scale-{args.scale} run, best of '
           f'{args.repeat}; load average {load0[0]:.2f} at start, {os.getloadavg()[0]:.2f} at '
           'end. Throughput is relative to the first row (above 1: faster); CPU time counts '
           "every thread of the process. See bench/read_variants.py's docstring.", '',
           '| variant | records | ms per record | CPU ms per record | throughput vs the seed '
           'reader (wall) | throughput vs the seed reader (CPU) |',
           '|---|---:|---:|---:|---:|---:|']
  for name, r in best.items():
    lines.append(
        f"| {name} | {r['records']} | {per(r, 'seconds') * 1e3:.3f} | "
        f"{per(r, 'cpu_seconds') * 1e3:.3f} | "
        f"{per(seed, 'seconds') / per(r, 'seconds'):.2f}× | "
        f"{per(seed, 'cpu_seconds') / per(r, 'cpu_seconds'):.2f}× |")
  text = '\n'.join(lines) + '\n'
  with open(args.out, 'w') as f:
    f.write(text)
  print(text)
  return 0


if __name__ == '__main__':
  sys.exit(main())
