"""ImageExampleGen's component spec: every exec-property and output key, in one place."""
from tfx.types import standard_component_specs
from tfx.types.component_spec import ExecutionParameter

from components import options
from components.image_example_gen.config import IngestConfig

# Keys inherited from TFX's FileBasedExampleGen.
INPUT_BASE_KEY = standard_component_specs.INPUT_BASE_KEY
INPUT_CONFIG_KEY = standard_component_specs.INPUT_CONFIG_KEY
OUTPUT_CONFIG_KEY = standard_component_specs.OUTPUT_CONFIG_KEY
EXAMPLES_KEY = standard_component_specs.EXAMPLES_KEY

# ImageExampleGen's own parameters: its input, then one per IngestConfig option (the key is the
# field's name; components/options.py encodes them). class_mapping, splits, seed and
# split_manifest may be RuntimeParameters (KFP pipeline parameters), as csv_uri may.
CSV_URI_KEY = 'csv_uri'  # str: the CSV index (input_base/input_config hold its default)
IMAGE_DIR_KEY = 'image_dir'  # str: an image folder instead of the CSV ('' with a CSV)
RANGE_CONFIG_KEY = standard_component_specs.RANGE_CONFIG_KEY  # TFX's RangeConfig (spans)
# The option keys other modules read (the lineage printout, the driver, the CLI's summary).
SPLITS_KEY = options.key(IngestConfig, 'splits')  # output_config holds the default
CLASS_MAPPING_KEY = options.key(IngestConfig, 'class_mapping')
SEED_KEY = options.key(IngestConfig, 'seed')
FINGERPRINT_CONTENT_KEY = options.key(IngestConfig, 'fingerprint_content')  # read by the driver
SPLIT_MANIFEST_KEY = options.key(IngestConfig, 'split_manifest')
FRESH_SPLITS_KEY = options.key(IngestConfig, 'fresh_splits')
GROUP_ASSIGNMENT_KEY = options.key(IngestConfig, 'group_assignment')
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
      IMAGE_DIR_KEY: ExecutionParameter(type=str, optional=True),
      # Optional: an execution recorded before an option existed reads as its default.
      **{key: ExecutionParameter(type=kind, optional=True)
         for key, kind in options.exec_types(IngestConfig).items()},
      PREVIOUS_SPLIT_MANIFEST_KEY: ExecutionParameter(type=str, optional=True),
  }
