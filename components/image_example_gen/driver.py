"""ImageExampleGen's driver: TFX's FileBasedDriver, plus the referenced images in the fingerprint."""
from typing import Any, Dict

from tfx.components.example_gen import driver
from tfx.components.example_gen import utils

from components.image_example_gen import fingerprint
from components.image_example_gen import spec


class Driver(driver.FileBasedDriver):
  """Resolves span/version and the CSV fingerprint as TFX does, then appends a fingerprint of
  every image and mask the CSV references (or an image folder's listing holds: the folder is
  listed again, names only, as the launcher lists it), so changing, adding or removing one
  image invalidates the cache."""

  def resolve_exec_properties(self, exec_properties: Dict[str, Any], pipeline_info,
                              component_info) -> Dict[str, Any]:
    exec_properties = super().resolve_exec_properties(exec_properties, pipeline_info,
                                                      component_info)
    from components.image_example_gen import executor  # pylint: disable=g-import-not-at-top
    source, config = executor.config_from_exec_properties(exec_properties)
    files = fingerprint.referenced_files(
        source, config, content=bool(exec_properties.get(spec.FINGERPRINT_CONTENT_KEY)))
    exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = (
        f'{exec_properties[utils.FINGERPRINT_PROPERTY_NAME]}\n{files}')
    return exec_properties
