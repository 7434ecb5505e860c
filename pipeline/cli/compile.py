"""`cxr-tfx compile`: the pipeline for Kubeflow Pipelines v2 (or a Vertex PipelineJob)."""
import os
from typing import Dict, List, Sequence, Tuple
import warnings

from components.image_example_gen import config as config_lib
from components.image_example_gen import spans as spans_lib
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


def _cluster_paths(args) -> List[Tuple[str, str]]:
  """(option, path) of every path the compiled pipeline's tasks read or write (the class
  mapping is not one: compile reads it and compiles its content in)."""
  paths = [('--csv', args.csv), ('--image-dir', args.image_dir),
           ('--split-manifest', args.split_manifest), ('--pipeline-root', args.pipeline_root),
           ('--serving-dir', args.serving_dir), ('--previous-examples', args.previous_examples)]
  paths += [('--window-examples', uri) for uri in args.window_examples]
  return [(option, path) for option, path in paths if path]


def _check_cluster_paths(args) -> None:
  """Every path as the tasks see it: relative paths are refused; local ones too (naming each)
  unless --allow-local-paths says the cluster's nodes mount them."""
  paths = _cluster_paths(args)
  for option, path in paths:
    _cluster_path(path, option)
  local = [f'{option} {path}' for option, path in paths if not _is_uri(path)]
  if local and not args.allow_local_paths:
    raise config_lib.ConfigError(
        'the cluster\'s tasks read these paths, but they are local to this machine: '
        f'{", ".join(local)}. Give URIs the cluster can read (gs://bucket/..., s3://...), or '
        'add --allow-local-paths if every node mounts them at these paths (Vertex AI mounts '
        'Cloud Storage buckets at /gcs/BUCKET/).')


def _check_spans(args) -> None:
  """Earlier spans by URI (drift, the training window) need a span pattern; --fail-on-drift
  needs the previous span's."""
  imported = [flag for flag, given in (('--previous-examples', args.previous_examples),
                                       ('--window-examples', args.window_examples)) if given]
  if imported and not (args.csv and spans_lib.has_any_spec(args.csv)):
    raise config_lib.ConfigError(
        f'{" and ".join(imported)}: earlier spans\' Examples need a span pattern in --csv, '
        "e.g. 'gs://bucket/index-{SPAN}.csv' (docs/kubeflow.md).")
  if args.fail_on_drift and not args.previous_examples:
    raise config_lib.ConfigError(
        '--fail-on-drift needs the previous span\'s Examples, which a compiled pipeline cannot '
        'find in ML Metadata (the KFP v2 compiler supports no custom resolver): give their URI '
        'with --previous-examples (a pipeline parameter, previous_examples) (docs/kubeflow.md).')


def _compile(args, display: progress.Display) -> int:
  if bool(args.csv) == bool(args.image_dir) or not args.class_mapping:
    raise config_lib.ConfigError('compile needs --csv (a URI the cluster reads) or --image-dir '
                                 '(an image folder the cluster reads), one of them, and '
                                 '--class-mapping (a local JSON file).')
  if args.image_dir and not args.no_runtime_parameters:
    raise config_lib.ConfigError(
        '--image-dir needs --no-runtime-parameters: the pipeline parameters (csv_uri, '
        'class_mapping, seed, splits, split_manifest) stand for a CSV index, so an image '
        'folder is compiled in as a constant.')
  _check_split_args(args)
  _check_cluster_paths(args)
  _check_spans(args)
  ingest_config = _ingest_config(args, args.class_mapping)
  if not args.output.endswith(('.yaml', '.yml', '.json')):
    raise config_lib.ConfigError(f'--output {args.output!r} must end in .yaml (KFP pipeline '
                                 'spec) or .json (Vertex PipelineJob).')
  kind = 'a Vertex PipelineJob' if args.output.endswith('.json') else 'a KFP pipeline spec'
  image_note = (' (the tag `make image` builds; the cluster must be able to pull it: push it '
                'to a registry and pass --image REGISTRY/...)'
                if args.image == configs.DEFAULT_IMAGE else '')
  display.line(f'cxr-tfx compile: {kind} into {args.output} for image {args.image}'
               f'{image_note}, pipeline {args.pipeline_name!r}, artifacts under '
               f'{args.pipeline_root}')
  warnings.simplefilter('ignore')
  # through the package, where tests put a stand-in for _load_libraries
  from pipeline import cli
  cli._load_libraries(display, 'pipeline.kubeflow_runner', 'pipeline.pipeline')
  from pipeline import kubeflow_runner
  params = not args.no_runtime_parameters
  with progress.component_progress(), display.activity(
      'compiling with KubeflowV2DagRunner', done_text='compiled in {seconds}'):
    path = kubeflow_runner.compile_pipeline(
        output=args.output, image=args.image,
        options=_pipeline_options(args, args.pipeline_root, schema_path=args.schema,
                                  runtime_parameters=params,
                                  previous_examples=args.previous_examples or '',
                                  window_examples=tuple(args.window_examples)),
        source=configs.DataSource(csv_path=args.csv or '', image_dir=args.image_dir or '',
                                  span=args.span),
        ingest_config=ingest_config, balance_config=_balance_config(args),
        transform_config=_transform_config(args), train_config=_train_config(args),
        component_resources=_resources(args.resources), embeddable=args.embeddable)
  display.close()
  print(f'compiled: {path}')
  first = (configs.SPAN_FOLDER_PARAMETER if args.csv and spans_lib.has_any_spec(args.csv)
           else configs.CSV_RUNTIME_PARAMETER)
  example = f'{{"{first}": "gs://..."}}' if params else ''
  if path.endswith('.json'):
    print('next: submit it to Vertex AI, e.g. google.cloud.aiplatform.PipelineJob('
          f'display_name={args.pipeline_name!r}, template_path={path!r}'
          + (f', parameter_values=kubeflow_runner.check_parameter_values({path!r}, '
             f'{example})' if params else '') + ').submit()')
  else:
    print(f'next: kfp.Client(host=...).create_run_from_pipeline_package({path!r}'
          + (f', arguments=kubeflow_runner.check_parameter_values({path!r}, {example})'
             if params else '') + ') -- or upload it in the KFP UI')
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
