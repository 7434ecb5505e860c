"""Feature names of the tf.Examples that ImageExampleGen writes: the one place they are spelt.

The first three are the seed notebook's names and types, so its reader keeps working:
``image`` (raw file bytes), ``mask`` (raw file bytes, or b'' when the row has no mask),
``class`` (int64 label). ``image_id`` is the stable key every example carries, and
``image_sha256`` the content hash of its image.
"""

IMAGE = 'image'
MASK = 'mask'
LABEL = 'class'
IMAGE_ID = 'image_id'
IMAGE_SHA256 = 'image_sha256'  # hex sha256 of the image bytes: duplicate/leakage checks

ALL = (IMAGE, MASK, LABEL, IMAGE_ID, IMAGE_SHA256)
