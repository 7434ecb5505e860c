"""Feature names of the tf.Examples that ImageExampleGen writes: the one place they are spelt.

The first three are the seed notebook's names and types, so its reader keeps working:
``image`` (raw file bytes), ``mask`` (raw file bytes, or b'' when the row has no mask),
``class`` (int64 label). ``image_id`` is the stable key every example carries, and
``image_sha256`` the content hash of its image (for a DICOM file, of the PNG rendered from it,
which is what ``image`` holds).

``OPTIONAL`` features are written only on some records: the ``dicom_*`` facts on records whose
image was a DICOM file (never a header value that identifies anyone), and ``group_hash`` when
rows are grouped (``--group-column``): a salted hash of the group, never the raw patient ID;
``image_fingerprint`` when the workers measured the image's pixels (``--verify full`` with
``--near-duplicates`` other than off): its perceptual fingerprint (near-duplicate grouping).
"""

IMAGE = 'image'
MASK = 'mask'
LABEL = 'class'
IMAGE_ID = 'image_id'
IMAGE_SHA256 = 'image_sha256'  # hex sha256 of the image bytes: duplicate/leakage checks

ALL = (IMAGE, MASK, LABEL, IMAGE_ID, IMAGE_SHA256)  # on every record

DICOM_TRANSFER_SYNTAX = 'dicom_transfer_syntax'  # bytes: the original Transfer Syntax UID
DICOM_PHOTOMETRIC = 'dicom_photometric'  # bytes: MONOCHROME1 | MONOCHROME2 (as stored)
DICOM_BITS_STORED = 'dicom_bits_stored'  # int64: Bits Stored
DICOM_PIXEL_SPACING = 'dicom_pixel_spacing'  # float [row, column] mm; absent when unknown
GROUP_HASH = 'group_hash'  # bytes: hex HMAC-SHA256(salt, group value)
# bytes: the image's perceptual fingerprint (perceptual.Fingerprint.to_text()), when measured
IMAGE_FINGERPRINT = 'image_fingerprint'
DICOM = (DICOM_TRANSFER_SYNTAX, DICOM_PHOTOMETRIC, DICOM_BITS_STORED, DICOM_PIXEL_SPACING)
OPTIONAL = DICOM + (GROUP_HASH, IMAGE_FINGERPRINT)
