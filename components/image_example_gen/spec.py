"""ImageExampleGen's component spec: every exec-property and output key, in one place."""
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

# Keys inherited from TFX's FileBasedExampleGen.
INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY
OUTPUT_CONFIG_KEY = standard_component_specs.OUTPUT_CONFIG_KEY
OUTPUT_DATA_FORMAT_KEY = standard_component_specs.OUTPUT_DATA_FORMAT_KEY
OUTPUT_FILE_FORMAT_KEY = standard_component_specs.OUTPUT_FILE_FORMAT_KEY
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY

# ImageExampleGen's own parameters. csv_uri, class_mapping, splits and seed may be
# RuntimeParameters (KFP pipeline parameters).
CSV_URI_KEY = 'csv_uri'  # str: the CSV index (input_base/input_config hold its default)
SPLITS_KEY = 'splits'  # str 'train=8,eval=1,test=1' (output_config holds the default)
CLASS_MAPPING_KEY = 'class_mapping'  # canonical JSON {"class name": label}; '' = class folders
SEED_KEY = 'seed'  # int: shard assignment and in-shard order
ON_BAD_RECORD_KEY = 'on_bad_record'  # 'fail' | 'quarantine'
ALLOWED_ROOTS_KEY = 'allowed_roots'  # JSON list of folders/URI prefixes; [] = the CSV's folder
MAX_PIXELS_KEY = 'max_pixels'  # int: decompression-bomb guard
GROUP_COLUMN_KEY = 'group_column'  # str: '' or a CSV column whose rows stay together
DUPLICATES_KEY = 'duplicates'  # 'report' | 'fail' | 'drop'
FINGERPRINT_CONTENT_KEY = 'fingerprint_content'  # int 0/1: hash referenced files for caching
VERIFY_KEY = 'verify'  # 'full' | 'header': how much of each image/mask workers check
MAX_FILE_BYTES_KEY = 'max_file_bytes'  # int: larger files are bad records, never read
MASK_CHECK_KEY = 'mask_check'  # 'off' | 'warn' | 'fail': masks' content (mask_check.py)
MASK_SIZE_KEY = 'mask_size'  # 'WxH' masks may have instead of their image's size, or ''
IMAGE_DIR_KEY = 'image_dir'  # str: an image folder instead of the CSV ('' with a CSV)
DICOM_WINDOW_KEY = 'dicom_window'  # 'auto' | 'none' | 'C,W': DICOM images' VOI step
DICOM_OUTPUT_KEY = 'dicom_output'  # 'png16' | 'png8'
ALLOW_BURNED_IN_KEY = 'allow_burned_in'  # int 0/1: write BurnedInAnnotation=YES files
GROUP_SALT_KEY = 'group_salt'  # str: salt of group_hash ('' = the default constant)
GROUP_ASSIGNMENT_KEY = 'group_assignment'  # 'balanced' | 'stable': groups to splits
RANGE_CONFIG_KEY = standard_component_specs.RANGE_CONFIG_KEY  # TFX's RangeConfig (spans)
SPLIT_MANIFEST_KEY = 'split_manifest'  # str: a split manifest to keep ('' = none given)
FRESH_SPLITS_KEY = 'fresh_splits'  # int 0/1: ignore published membership, deal afresh
# str, set by the driver (never by the user): the split manifest the previous run of this node
# published, found through ML Metadata ('' = none).
PREVIOUS_SPLIT_MANIFEST_KEY = 'previous_split_manifest'

# Custom properties set on the output Examples artifact.
SUMMARY_PROPERTY = 'cxr_ingest_summary'  # IngestSummary JSON (per-shard class counts, ...)
ROWS_IN_PROPERTY = 'cxr_rows_in'
EXAMPLES_WRITTEN_PROPERTY = 'cxr_examples_written'
ROWS_QUARANTINED_PROPERTY = 'cxr_rows_quarantined'
SEED_PROPERTY = 'cxr_seed'
SPLIT_MANIFEST_PROPERTY = 'cxr_split_manifest'  # URI of the published split_manifest.json
SPLIT_MANIFEST_IMAGES_PROPERTY = 'cxr_split_manifest_images'  # images it names (all runs)
SPLIT_MANIFEST_DIGEST_PROPERTY = 'cxr_split_manifest_digest'  # sha256 of its bytes


class ImageExampleGenSpec(standard_component_specs.FileBasedExampleGenSpec):
  """FileBasedExampleGen's spec plus the class mapping, seed and bad-record policy."""

  PARAMETERS = {
      **standard_component_specs.FileBasedExampleGenSpec.PARAMETERS,
      CSV_URI_KEY: ExecutionParameter(type=str),
      SPLITS_KEY: ExecutionParameter(type=str),
      CLASS_MAPPING_KEY: ExecutionParameter(type=str),
      SEED_KEY: ExecutionParameter(type=int),
      ON_BAD_RECORD_KEY: ExecutionParameter(type=str),
      ALLOWED_ROOTS_KEY: ExecutionParameter(type=str),
      MAX_PIXELS_KEY: ExecutionParameter(type=int),
      GROUP_COLUMN_KEY: ExecutionParameter(type=str),
      DUPLICATES_KEY: ExecutionParameter(type=str),
      FINGERPRINT_CONTENT_KEY: ExecutionParameter(type=int),
      VERIFY_KEY: ExecutionParameter(type=str),
      MAX_FILE_BYTES_KEY: ExecutionParameter(type=int),
      MASK_CHECK_KEY: ExecutionParameter(type=str),
      MASK_SIZE_KEY: ExecutionParameter(type=str),
      IMAGE_DIR_KEY: ExecutionParameter(type=str, optional=True),
      DICOM_WINDOW_KEY: ExecutionParameter(type=str, optional=True),
      DICOM_OUTPUT_KEY: ExecutionParameter(type=str, optional=True),
      ALLOW_BURNED_IN_KEY: ExecutionParameter(type=int, optional=True),
      GROUP_SALT_KEY: ExecutionParameter(type=str, optional=True),
      GROUP_ASSIGNMENT_KEY: ExecutionParameter(type=str, optional=True),
      SPLIT_MANIFEST_KEY: ExecutionParameter(type=str, optional=True),
      FRESH_SPLITS_KEY: ExecutionParameter(type=int, optional=True),
      PREVIOUS_SPLIT_MANIFEST_KEY: ExecutionParameter(type=str, optional=True),
  }
