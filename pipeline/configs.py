"""Pipeline constants (pure: importing this costs nothing)."""
import os

from components.image_example_gen.config import DEFAULT_SEED, DEFAULT_SPLITS  # noqa: F401 (re-export)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA_DIR = os.path.join(REPO_ROOT, 'schemas')  # the curated schema, read by ImportSchemaGen
SCHEMA_FILE = os.path.join(SCHEMA_DIR, 'schema.pbtxt')
IMAGE_SCHEMA_FILE = '/opt/cxr-tfx/schemas/schema.pbtxt'  # the same file in the Dockerfile's image
REPORTS_DIR = 'reports'  # `cxr-tfx report` writes under <pipeline_root>/reports by default

PIPELINE_NAME = 'cxr-tfx'  # KFP needs [a-z0-9][a-z0-9-]{0,127}
DEFAULT_PIPELINE_ROOT = 'tfx_pipeline_output'
METADATA_FILE = 'metadata.sqlite'  # default store: <pipeline_root>/metadata.sqlite
DEMO_DATA_DIR = 'demo_data'  # `cxr-tfx run` without --csv generates data here, under the root
DEMO_SCALE = 0.02  # 423 images: a demo that runs in about a minute
DEMO_MISSING_MASKS = 0.1  # some rows without masks, as in real indexes
# `cxr-tfx lineage --latest` choices -> MLMD artifact type names (TFX standard artifacts).
LINEAGE_TYPES = {
    'examples': 'Examples',
    'statistics': 'ExampleStatistics',
    'schema': 'Schema',
    'anomalies': 'ExampleAnomalies',
    'transform_graph': 'TransformGraph',
}
CLASS_MAPPING_FILE = 'class_mapping.json'  # looked for next to the CSV when not given
