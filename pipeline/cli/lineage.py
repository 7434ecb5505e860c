"""`cxr-tfx lineage`: an artifact's chain in ML Metadata."""
import os

from components.image_example_gen import config as config_lib
from pipeline import progress


def _lineage(args, display: progress.Display) -> int:  # pylint: disable=unused-argument
  from pipeline import lineage
  from pipeline import mlmd
  if not os.path.exists(args.metadata):
    raise config_lib.ConfigError(f'no metadata store at {args.metadata} (option --metadata).')
  tracer = lineage.Lineage(mlmd.sqlite_store(args.metadata))
  chain = tracer.chain(tracer.resolve(args.artifact_uri or '', args.latest or '',
                                      args.pipeline_name))
  print(lineage.to_json(chain) if args.json else lineage.format_chain(chain))
  return 0
