"""`cxr-tfx lineage`: an artifact's chain in ML Metadata."""

from pipeline import progress
from pipeline.cli.inputs import _existing_store


def _lineage(args, display: progress.Display) -> int:  # pylint: disable=unused-argument
  from pipeline import lineage
  from pipeline import mlmd
  _existing_store(args.metadata, '--metadata')
  tracer = lineage.Lineage(mlmd.open_store(args.metadata))
  chain = tracer.chain(tracer.resolve(args.artifact_uri or '', args.latest or '',
                                      args.pipeline_name))
  print(lineage.to_json(chain) if args.json else lineage.format_chain(chain))
  return 0
