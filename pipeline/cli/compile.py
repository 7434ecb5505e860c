"""`cxr-tfx compile`: the pipeline for Kubeflow Pipelines v2 (or a Vertex PipelineJob)."""
import os
from typing import Dict, Sequence, Tuple
import warnings

from components.image_example_gen import config as config_lib
from pipeline import configs
from pipeline import progress
from pipeline.cli.options import _balance_config
from pipeline.cli.options import _check_split_args
from pipeline.cli.options import _ingest_config
from pipeline.cli.options import _is_uri
from pipeline.cli.options import _pipeline_options
from pipeline.cli.options import _train_config
from pipeline.cli.options import _transform_config


def _cluster_path(path: str, option: str) -> None:
  """A path the cluster's tasks read: a URI or an absolute path (a relative one would resolve
  against the task's working folder, not this one)."""
  if not _is_uri(path) and not os.path.isabs(path):
    raise config_lib.ConfigError(
        f'{option} {path!r}: give it as the cluster\'s tasks see it, a URI (gs://bucket/...) or '
        'an absolute path.')


def _compile(args, display: progress.Display) -> int:
  if bool(args.csv) == bool(args.image_dir) or not args.class_mapping:
    raise config_lib.ConfigError('compile needs --csv (a URI the cluster reads) or --image-dir '
                                 '(an image folder the cluster reads), one of them, and '
                                 '--class-mapping (a local JSON file).')
  if args.image_dir:
    _cluster_path(args.image_dir, '--image-dir')
    if not args.no_runtime_parameters:
      raise config_lib.ConfigError(
          '--image-dir needs --no-runtime-parameters: the pipeline parameters (csv_uri, '
          'class_mapping, seed, splits, split_manifest) stand for a CSV index, so an image '
          'folder is compiled in as a constant.')
  _check_split_args(args)
  if args.split_manifest:
    _cluster_path(args.split_manifest, '--split-manifest')
  if args.fail_on_drift:
    raise config_lib.ConfigError(
        '--fail-on-drift needs the previous span, which a compiled KFP pipeline cannot resolve '
        '(the KFP v2 compiler supports no custom resolver); check drift with `cxr-tfx run` '
        '(docs/spans.md).')
  ingest_config = _ingest_config(args, args.class_mapping)
  if not args.output.endswith(('.yaml', '.yml', '.json')):
    raise config_lib.ConfigError(f'--output {args.output!r} must end in .yaml (KFP pipeline '
                                 'spec) or .json (Vertex PipelineJob).')
  kind = 'a Vertex PipelineJob' if args.output.endswith('.json') else 'a KFP pipeline spec'
  display.line(f'cxr-tfx compile: {kind} into {args.output} for image {args.image}, pipeline '
               f'{args.pipeline_name!r}, artifacts under {args.pipeline_root}')
  warnings.simplefilter('ignore')
  # through the package, where tests put a stand-in for _load_libraries
  from pipeline import cli
  cli._load_libraries(display, 'pipeline.kubeflow_runner', 'pipeline.pipeline')
  from pipeline import kubeflow_runner
  with progress.component_progress(), display.activity(
      'compiling with KubeflowV2DagRunner', done_text='compiled in {seconds}'):
    path = kubeflow_runner.compile_pipeline(
        output=args.output, image=args.image,
        options=_pipeline_options(args, args.pipeline_root, schema_path=args.schema,
                                  runtime_parameters=not args.no_runtime_parameters),
        source=configs.DataSource(csv_path=args.csv or '', image_dir=args.image_dir or '',
                                  span=args.span),
        ingest_config=ingest_config, balance_config=_balance_config(args),
        transform_config=_transform_config(args), train_config=_train_config(args),
        component_resources=_resources(args.resources), embeddable=args.embeddable)
  display.close()
  print(f'compiled: {path}')
  params = not args.no_runtime_parameters
  if path.endswith('.json'):
    print('next: submit it to Vertex AI, e.g. google.cloud.aiplatform.PipelineJob('
          f'display_name={args.pipeline_name!r}, template_path={path!r}'
          + (', parameter_values={"csv_uri": "gs://..."}' if params else '') + ').submit()')
  else:
    print(f'next: kfp.Client(host=...).create_run_from_pipeline_package({path!r}'
          + (', arguments={"csv_uri": "gs://...", "seed": 0}' if params else '')
          + ') -- or upload it in the KFP UI')
  return 0


def _resources(pairs: Sequence[str]) -> Dict[str, Tuple[str, str]]:
  """['Transform=4,16G', ...] -> {'Transform': ('4', '16G')} (validated by the compiler)."""
  out = {}
  for pair in pairs:
    component, sep, value = pair.partition('=')
    cpu, comma, memory = value.partition(',')
    if not sep or not comma:
      raise configs.PipelineConfigError(
          f'--resources {pair!r}: expected COMPONENT=CPU,MEM, e.g. Transform=4,16G.')
    try:
      out[component] = (float(cpu), memory)
    except ValueError as e:
      raise configs.PipelineConfigError(f'--resources {pair!r}: CPU must be a number.') from e
  return out
