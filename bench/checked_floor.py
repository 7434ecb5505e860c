"""The checked floor: ImageExampleGen's per-row checks as one plain loop, one core, with the
fastest exact libraries, so ImageExampleGen's cost per record can be compared with the least the
same work can cost on this machine (``python -m bench.run`` runs it in the same run).

Per row, in CSV order: read the image and mask (builtin ``open``), sha256 of each, then

- ``header``: Pillow's header parse of the image (what verify=header reads) and the mask check,
  which decodes the mask (libpng through ``cv2.imdecode``: binary, single channel, size);
- ``full``: both decoded by libpng (``cv2.imdecode``, as strict as TensorFlow's decoder), the
  mask checked on its pixels, and the image's facts measured on its pixels (the fingerprint,
  quality measures and shortcut properties: ``image_facts.measure``, the same functions the
  workers call);

then one ``tf.train.Example`` with the record's features, serialized deterministically and
written to one GZIP (level 0) TFRecord file, as ImageExampleGen's shards are. No Beam, no
staging, no deal, no thread pool, no PNG structure walk: what is left is the floor.
"""
import csv
import hashlib
import io
import json
import os
import time
from typing import Dict


def run(csv_path: str, mapping_path: str, out_dir: str, verify: str) -> Dict[str, float]:
  """-> {'seconds': the loop's time, 'records': n, 'verify': verify}."""
  import cv2
  import numpy as np
  from PIL import PngImagePlugin
  import tensorflow as tf

  from components.image_example_gen import image_facts
  with open(mapping_path) as f:
    mapping = json.load(f)
  root = os.path.dirname(csv_path)
  with open(csv_path, newline='') as f:
    rows = list(csv.DictReader(f))
  os.makedirs(out_dir, exist_ok=True)
  options = tf.io.TFRecordOptions(compression_type='GZIP', compression_level=0)
  feature = tf.train.Feature
  start = time.monotonic()
  n = 0
  with tf.io.TFRecordWriter(os.path.join(out_dir, 'floor.tfrecord.gz'), options) as writer:
    for row in rows:
      with open(os.path.join(root, row['image_path']), 'rb') as f:
        image = f.read()
      digest = hashlib.sha256(image).hexdigest()
      mask = b''
      if row['mask_path']:
        with open(os.path.join(root, row['mask_path']), 'rb') as f:
          mask = f.read()
        hashlib.sha256(mask).digest()
        pixels = cv2.imdecode(np.frombuffer(mask, np.uint8), cv2.IMREAD_UNCHANGED)
        top = pixels.max()
        assert top and not np.count_nonzero((pixels != 0) & (pixels != top))
      values = {
          'image': feature(bytes_list=tf.train.BytesList(value=[image])),
          'mask': feature(bytes_list=tf.train.BytesList(value=[mask])),
          'class': feature(int64_list=tf.train.Int64List(value=[mapping[row['class']]])),
          'image_id': feature(bytes_list=tf.train.BytesList(
              value=[row['image_path'].encode()])),
          'image_sha256': feature(bytes_list=tf.train.BytesList(value=[digest.encode()])),
      }
      if verify == 'full':
        pixels = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED)
        height, width = pixels.shape[:2]
        facts = image_facts.measure(pixels, width, height, 'L', 8, 'png')
        values['image_fingerprint'] = feature(bytes_list=tf.train.BytesList(
            value=[facts.fingerprint.encode()]))
      else:
        PngImagePlugin.PngImageFile(io.BytesIO(image)).close()
      writer.write(tf.train.Example(features=tf.train.Features(feature=values))
                   .SerializeToString(deterministic=True))
      n += 1
  return {'seconds': time.monotonic() - start, 'records': n, 'verify': verify}
