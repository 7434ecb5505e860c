"""Reading the ML Metadata store (SQLite by default) with APIs present in MLMD 1.16 and 1.21."""
from typing import Optional

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2


def sqlite_store(path: str) -> metadata_store.MetadataStore:
  config = metadata_store_pb2.ConnectionConfig()
  config.sqlite.filename_uri = path
  config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
  return metadata_store.MetadataStore(config)


def latest_artifact(store: metadata_store.MetadataStore, type_name: str,
                    with_property: str = '') -> Optional[metadata_store_pb2.Artifact]:
  """The most recently created LIVE artifact of a type (a cached run reuses, so keeps, it).

  with_property: only artifacts carrying this custom property (ClassBalance's and
  ExampleValidator's outputs are both ExampleAnomalies).
  """
  live = [a for a in store.get_artifacts_by_type(type_name)
          if a.state == metadata_store_pb2.Artifact.LIVE
          and (not with_property or with_property in a.custom_properties)]
  return max(live, key=lambda a: (a.create_time_since_epoch, a.id), default=None)
