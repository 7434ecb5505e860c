"""`cxr-tfx report`: the class-balance reports of the newest run, rebuilt from ML Metadata."""
import dataclasses
import os
import warnings

from pipeline import configs
from pipeline import progress
from pipeline.cli.inputs import _existing_store


def _report(args, display: progress.Display) -> int:
  metadata = args.metadata or os.path.join(args.pipeline_root, configs.METADATA_FILE)
  _existing_store(metadata, '--pipeline-root or --metadata')
  out = args.out or os.path.join(args.pipeline_root, configs.REPORTS_DIR)
  display.line(f'cxr-tfx report: the class-balance reports of the newest run of pipeline '
               f'{args.pipeline_name!r} in {metadata}, into {out}')
  warnings.simplefilter('ignore')
  # through the package, where tests put a stand-in for _load_libraries
  from pipeline import cli
  cli._load_libraries(display, 'pipeline.reports')
  from pipeline import reports
  found = reports.latest_inputs(metadata, args.pipeline_name)
  overrides = {k: v for k, v in (('max_linf', args.max_linf), ('max_js', args.max_js),
                                 ('min_count_per_class', args.min_count_per_class))
               if v is not None}
  config = dataclasses.replace(found.config, **overrides)
  with progress.component_progress(), display.activity(
      '[ClassBalance] rebuilding the reports', done_text='[ClassBalance] reports rebuilt in '
                                                         '{seconds}'):
    result, paths = reports.rebuild(metadata, os.path.abspath(out), config, args.pipeline_name)
  display.close()
  print(f'class balance: {result.verdict}')
  for f in result.findings[:20]:
    print(f'  {f.kind}: {f.message}')
  print(f'HTML report: {paths["html"]}')
  print(f'JSON report: {paths["json"]}')
  return 0
