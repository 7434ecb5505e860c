"""Feature names of the tf.Examples that ImageExampleGen writes: the one place they are spelt.

The first three are the seed notebook's names and types, so its reader keeps working:
``image`` (raw file bytes), ``mask`` (raw file bytes, or b'' when the row has no mask),
``class`` (int64 label). ``image_id`` is the stable key every example carries.
"""

IMAGE = 'image'
MASK = 'mask'
LABEL = 'class'
IMAGE_ID = 'image_id'

ALL = (IMAGE, MASK, LABEL, IMAGE_ID)
