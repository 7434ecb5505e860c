"""ImageExampleGen's driver: TFX's FileBasedDriver, plus the referenced images in the fingerprint
and the previous run's split manifest (found through ML Metadata)."""
import os
from typing import Any, Dict, Iterable, Optional, Tuple

from tfx.components.example_gen import driver
from tfx.components.example_gen import input_processor
from tfx.components.example_gen import utils
from tfx.dsl.io import fileio
from tfx.orchestration import data_types_utils
from tfx.proto import example_gen_pb2

from components.image_example_gen import fingerprint
from components.image_example_gen import spec
from components.image_example_gen import split_history


class Driver(driver.FileBasedDriver):
  """Resolves span/version and the CSV fingerprint as TFX does, then appends a fingerprint of
  every image and mask the CSV references (or an image folder's listing holds: the folder is
  listed again, names only, as the launcher lists it), so changing, adding or removing one
  image invalidates the cache.

  Then it finds the split manifest the previous runs of this node published
  (``split_history.previous_manifest``) and gives it to the executor as
  ``previous_split_manifest``, so every image published before keeps its split without being
  asked. Only where a driver runs (LocalDagRunner); on Kubeflow/Vertex the manifest is an
  option (``split_manifest``)."""

  def resolve_exec_properties(self, exec_properties: Dict[str, Any], pipeline_info,
                              component_info) -> Dict[str, Any]:
    exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info,
                                                      component_info)
    from components.image_example_gen import executor
    source, config = executor.config_from_exec_properties(exec_properties)
    files = fingerprint.referenced_files(
        source, config, content=bool(exec_properties.get(spec.FINGERPRINT_CONTENT_KEY)))
    exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = (
        f'{exec_properties[utils.FINGERPRINT_PROPERTY_NAME]}\n{files}')
    return exec_properties

  def get_input_processor(self, splits: Iterable[example_gen_pb2.Input.Split],
                          range_config=None, input_base_uri: Optional[str] = None):
    splits = list(splits)
    if [s.pattern for s in splits] == [IMAGE_DIR_PATTERN]:  # an image folder (component.py)
      return ImageFolderProcessor(input_base_uri, splits, range_config)
    return super().get_input_processor(splits, range_config, input_base_uri)

  def run(self, execution_info):
    result = super().run(execution_info)
    resolved = {k: data_types_utils.get_metadata_value(v)
                for k, v in result.exec_properties.items()}
    digest = split_history.exec_digest(resolved, spec.PREVIOUS_SPLIT_MANIFEST_KEY)
    with self._mlmd_connection as m:
      published = split_history.published_examples(
          m.store, execution_info.pipeline_info.id,
          execution_info.pipeline_node.node_info.id)
    previous = split_history.previous_manifest(
        published, digest, spec.SPLIT_MANIFEST_PROPERTY, spec.SPLIT_MANIFEST_IMAGES_PROPERTY)
    data_types_utils.set_metadata_value(
        result.exec_properties[spec.PREVIOUS_SPLIT_MANIFEST_KEY], previous)
    for artifact in result.output_artifacts[spec.EXAMPLES_KEY].artifacts:
      artifact.custom_properties[split_history.EXEC_DIGEST_PROPERTY].string_value = digest
      artifact.custom_properties[split_history.PRIOR_MANIFEST_PROPERTY].string_value = previous
      artifact.custom_properties[split_history.FRESH_SPLITS_PROPERTY].int_value = int(
          resolved.get(spec.FRESH_SPLITS_KEY) or 0)
    return result


IMAGE_DIR_PATTERN = '*'  # an image folder's input pattern: its entries (component.py)


class ImageFolderProcessor(input_processor.FileBasedInputProcessor):
  """TFX's processor for an image folder (no spans), with a fingerprint that survives what the
  listing skips: TFX's own stats every top-level entry and fails the run on a dangling symlink,
  which the listing ignores like any entry that is not a class folder. Entries that cannot be
  stat'ed count by name; the listed images and masks are fingerprinted by the driver."""

  def resolve_span_and_version(self) -> Tuple[int, Optional[int]]:
    pattern = os.path.join(self._input_base_uri, IMAGE_DIR_PATTERN)
    lines = []
    for path in sorted(fileio.glob(pattern)):
      try:
        st = fileio.stat(path)
        lines.append(f'{os.path.basename(path)}:{st.length}:{int(st.mtime_nsec // 10**9)}')
      except (OSError, fileio.NotFoundError):  # a dangling symlink: by name only
        lines.append(f'{os.path.basename(path)}:unreadable')
    self._fingerprint = f'split:{IMAGE_DIR_PATTERN},entries:' + ','.join(lines)
    return 0, None
