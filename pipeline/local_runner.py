"""Runs ``create_pipeline`` with TFX's LocalDagRunner and a SQLite ML Metadata store.

The runner only builds paths and calls ``create_pipeline``; what it returns is read back from
the metadata store, so the summary is what ML Metadata recorded.
"""
import dataclasses
import datetime
import json
import os
import secrets
import sys
from typing import Dict, List, Mapping, Optional, Tuple

from components.class_balance.config import BalanceConfig
from components.image_example_gen import index
from components.image_example_gen import spans
from components.image_example_gen.config import IngestConfig
from components.image_example_gen.summary import IngestSummary
from components.trainer.config import TrainConfig
from components.transform.config import TransformConfig
from pipeline import cleanup
from pipeline import configs
from pipeline import metadata_store
from pipeline import progress


@dataclasses.dataclass
class RunResult:
  pipeline_root: str
  metadata_path: str
  run_id: str  # the pipeline_run context's name in ML Metadata
  examples_uri: str
  transform_graph_uri: str  # what training code needs (TFTransformOutput)
  summary: IngestSummary
  components: List[Tuple[str, float, bool]]  # (component id, seconds, cached)
  balance_verdict: str  # ClassBalance's one-line verdict
  balanced: bool  # no balance findings
  balance_report: str  # path of ClassBalance's HTML report
  balance_findings: List[str]  # one line per finding ('<kind>: <message>')
  training: Optional['TrainingResult'] = None  # with a train_config
  span: int = 0  # the span ImageExampleGen ingested (0 without a span pattern)
  version: Optional[int] = None  # its version ({VERSION} patterns only)
  span_pattern: bool = False  # the CSV path was a span pattern
  drift: str = ''  # ClassBalance's drift from the previous span, one line ('' without spans)


@dataclasses.dataclass
class TrainingResult:
  """What Trainer, Evaluator and Pusher recorded in this run (run_local(..., train_config=...))."""
  model_uri: str  # the Model artifact; the SavedModel is <model_uri>/Format-Serving
  model_run_uri: str  # TensorBoard logs and the Keras model (model.keras)
  class_weights: str  # JSON {"<label>": weight} the class loss used; '' = unweighted
  evaluation_uri: str  # TFMA's output (tfma.load_eval_result / load_validation_result)
  accuracy: float  # overall accuracy on the evaluation split
  accuracy_per_class: Dict[str, float]  # class name -> accuracy of its examples (its recall)
  min_accuracy: float  # the blessing threshold
  blessed: bool
  pushed: bool
  pushed_model_dir: str  # the SavedModel the Pusher wrote ('' when not blessed)


def run_local(options: configs.PipelineOptions, source: configs.DataSource,
              ingest_config: IngestConfig, balance_config: Optional[BalanceConfig] = None,
              transform_config: Optional[TransformConfig] = None,
              train_config: Optional[TrainConfig] = None,
              metadata_path: str = '', verbose: bool = False, wait: bool = False) -> RunResult:
  """Runs ``create_pipeline`` (same arguments) locally and returns what the metadata store
  recorded. Local paths become absolute; the store is SQLite at ``metadata_path`` (default
  ``<pipeline_root>/metadata.sqlite``), or a MySQL/MariaDB server given as
  ``mysql://USER@HOST:PORT/DB`` (pipeline/metadata_store.py; shared by runs of other roots,
  each reading back its own run). ``train_config`` adds Trainer, Evaluator and Pusher
  (``RunResult.training``).

  One run at a time per root and store: the run holds their lock (``cleanup.hold``) from its
  start-up cleanup to its read-back. Held by another run, it raises ``cleanup.RootInUse``
  naming that run; with ``wait``, it says so on stderr and waits for it. The result is read
  back by this run's identity: the pipeline_run context named by the run id this function
  gives LocalDagRunner (``RunResult.run_id``), never "the newest run".
  """
  progress.quiet_native_logs()

  from pipeline import mlmd
  from pipeline.pipeline import create_pipeline

  pipeline_root = _absolute(options.pipeline_root)
  if not index.is_uri(pipeline_root):
    os.makedirs(pipeline_root, exist_ok=True)
  source = dataclasses.replace(source, csv_path=_absolute(source.csv_path),
                               image_dir=_absolute(source.image_dir))
  pipeline_name = options.pipeline_name
  metadata_path = metadata_path or os.path.join(pipeline_root, configs.METADATA_FILE)
  if not metadata_store.is_server(metadata_path):
    metadata_path = os.path.abspath(metadata_path)
  options = dataclasses.replace(
      options, pipeline_root=pipeline_root,
      serving_model_dir=_absolute(options.serving_model_dir),
      metadata_connection_config=metadata_store.connection_config(metadata_path))
  pipeline = create_pipeline(options, source, ingest_config, balance_config, transform_config,
                             train_config)
  with cleanup.hold(pipeline_root, metadata_path, wait=wait,
                    on_wait=lambda holder: _say_waiting(holder, pipeline_root)) as lock:
    # No other run of this root or store is alive now, so what is unfinished or unpublished
    # was left by runs that are gone (killed): their executions FAILED, their outputs removed.
    cleanup.clean_abandoned(lock, pipeline_name)
    run_id = new_run_id()
    lock.note_run(run_id)
    try:
      with progress.component_progress(verbose) as reporter:
        _runner(run_id).run(pipeline)
    except BaseException as e:  # also KeyboardInterrupt: nothing of this run is left RUNNING
      cleanup.clean_after_failure(lock, pipeline_name, e)
      raise
    # Read back through this run's own context (by its id) and the producing components, never
    # "the newest run" or "the newest artifact of a type": another run or pipeline sharing the
    # store cannot answer for this one.
    store = mlmd.open_store(metadata_path)
    run = mlmd.run_by_name(store, run_id)
    return _read_back(store, run, pipeline_root, metadata_path, pipeline_name, source,
                      train_config, reporter.finished)


def new_run_id() -> str:
  """A run id: the local start time as LocalDagRunner's own ids are (readable, sortable), and
  8 random hex digits, so that no two runs share one even if the clock repeats itself."""
  return f'{datetime.datetime.now().isoformat()}-{secrets.token_hex(4)}'


def _runner(run_id: str):
  """TFX's LocalDagRunner, with ``run_id`` as the run's id: TFX's compiled pipeline names the
  run by the runtime parameter ``pipeline-run-id`` (the pipeline_run context's name, the
  pipeline's runtime_spec), which LocalDagRunner.run_with_ir sets to the time when it starts;
  substituting it first leaves LocalDagRunner none to set."""
  from tfx.dsl.compiler import constants
  from tfx.orchestration.local import local_dag_runner
  from tfx.orchestration.portable import runtime_parameter_utils

  class _Runner(local_dag_runner.LocalDagRunner):

    def run_with_ir(self, pipeline, run_options=None, **kwargs):
      runtime_parameter_utils.substitute_runtime_parameter(
          pipeline, {constants.PIPELINE_RUN_ID_PARAMETER_NAME: run_id})
      return super().run_with_ir(pipeline, run_options=run_options, **kwargs)

  return _Runner()


def _say_waiting(holder: cleanup.Holder, pipeline_root: str) -> None:
  """run_local(wait=True) outside the CLI (which shows it on its display, and holds the lock
  before it calls run_local): one line on stderr, like component_progress's."""
  print(f'waiting for {holder.describe()} to finish: it holds the pipeline root '
        f'{pipeline_root}', file=sys.stderr, flush=True)


def _read_back(store, run, pipeline_root: str, metadata_path: str, pipeline_name: str,
               source: configs.DataSource, train_config: Optional[TrainConfig],
               finished: List[Tuple[str, float, bool]]) -> RunResult:
  """The RunResult from what ML Metadata recorded in ``run`` (this run's context)."""
  import tensorflow as tf  # heavy

  from components.class_balance import spec as balance_spec
  from components.image_example_gen import span_resolvers
  from components.image_example_gen import spec
  from pipeline import mlmd

  csv_path = source.csv_path
  examples = mlmd.run_output(store, run, pipeline_name, configs.IMAGE_EXAMPLE_GEN,
                             spec.EXAMPLES_KEY)
  graph = mlmd.run_output(store, run, pipeline_name, configs.TRANSFORM,
                          configs.TRANSFORM_GRAPH_KEY)
  summary = IngestSummary.from_json(
      examples.custom_properties[spec.SUMMARY_PROPERTY].string_value)
  balance = mlmd.run_output(store, run, pipeline_name, configs.CLASS_BALANCE,
                            balance_spec.ANOMALIES_KEY)
  props = balance.custom_properties
  with tf.io.gfile.GFile(props[balance_spec.JSON_REPORT_PROPERTY].string_value) as f:
    findings = [f'{x["kind"]}: {x["message"]}' for x in json.load(f)['findings']]
  training = (_training_result(store, run, pipeline_name, summary.class_names,
                               train_config.min_accuracy) if train_config else None)
  return RunResult(pipeline_root, metadata_path, run.name, examples.uri, graph.uri, summary,
                   finished,
                   balance_verdict=props[balance_spec.VERDICT_PROPERTY].string_value,
                   balanced=bool(props[balance_spec.BALANCED_PROPERTY].int_value),
                   balance_report=props[balance_spec.HTML_REPORT_PROPERTY].string_value,
                   balance_findings=findings, training=training,
                   span=mlmd.int_property(examples, span_resolvers.SPAN_PROPERTY) or 0,
                   version=mlmd.int_property(examples, span_resolvers.VERSION_PROPERTY),
                   span_pattern=bool(csv_path) and spans.has_any_spec(csv_path),
                   drift=_drift_line(props) if csv_path and spans.has_any_spec(csv_path) else '')


def _absolute(path: str) -> str:
  return path if not path or index.is_uri(path) else os.path.abspath(path)


def _drift_line(props) -> str:
  """ClassBalance's drift properties (ClassBalance's spec) as one line."""
  from components.class_balance import spec as balance_spec
  baseline = props[balance_spec.DRIFT_BASELINE_SPAN_PROPERTY].int_value if (
      balance_spec.DRIFT_BASELINE_SPAN_PROPERTY in props) else -1
  if baseline < 0:
    return 'no earlier span to compare with'
  drifted = props[balance_spec.DRIFTED_PROPERTY].int_value
  linf = props[balance_spec.DRIFT_LINF_PROPERTY].double_value
  js = props[balance_spec.DRIFT_JS_PROPERTY].double_value
  leakage = props[balance_spec.SPAN_LEAKAGE_PROPERTY].int_value if (
      balance_spec.SPAN_LEAKAGE_PROPERTY in props) else 0
  return (f'{"DRIFTED" if drifted else "no drift"} from span {baseline} (class mix L-infinity '
          f'{linf:.3f}, JS {js:.4f} bits)'
          + (f'; {leakage} patient group(s) moved into train from an earlier eval/test split'
             if leakage else ''))


def _training_result(store, run, pipeline_name: str, class_names: Mapping[int, str],
                     min_accuracy: float) -> TrainingResult:
  """Trainer's model, Evaluator's metrics and blessing, Pusher's destination, read back through
  this run's context (TFMA's files for the metrics)."""
  import tensorflow_model_analysis as tfma  # heavy

  from components import features
  from components.trainer import evaluation
  from components.trainer import spec as trainer_spec
  from pipeline import mlmd

  def output(component_id, key):
    return mlmd.run_output(store, run, pipeline_name, component_id, key)

  model = output(configs.TRAINER, trainer_spec.MODEL_KEY)
  model_run = output(configs.TRAINER, trainer_spec.MODEL_RUN_KEY)
  evaluation_artifact = output(configs.EVALUATOR, trainer_spec.EVALUATION_KEY)
  blessing = output(configs.EVALUATOR, trainer_spec.BLESSING_KEY)
  pushed = output(configs.PUSHER, trainer_spec.PUSHED_MODEL_KEY)
  accuracy, per_class = float('nan'), {}
  for slice_key, metrics in tfma.load_eval_result(evaluation_artifact.uri).slicing_metrics:
    # slice_key: () overall, or ((feature, value),); metrics: {output: {sub key: {name: value}}}
    values = next(iter(metrics.values())).get('', {})
    value = values.get(evaluation.ACCURACY, {}).get('doubleValue', float('nan'))
    if not slice_key:
      accuracy = value
    elif slice_key[0][0] == features.LABEL:
      per_class[class_names.get(int(slice_key[0][1]), str(slice_key[0][1]))] = value
  weights = model.custom_properties.get(trainer_spec.CLASS_WEIGHTS_USED_PROPERTY)
  was_pushed = bool(pushed.custom_properties[trainer_spec.PUSHED_PROPERTY].int_value)
  return TrainingResult(
      model_uri=model.uri, model_run_uri=model_run.uri,
      class_weights=weights.string_value if weights else '',
      evaluation_uri=evaluation_artifact.uri, accuracy=accuracy,
      accuracy_per_class=dict(sorted(per_class.items())), min_accuracy=min_accuracy,
      blessed=bool(blessing.custom_properties[trainer_spec.BLESSED_PROPERTY].int_value),
      pushed=was_pushed,
      pushed_model_dir=(pushed.custom_properties[
          trainer_spec.PUSHED_DESTINATION_PROPERTY].string_value if was_pushed else ''))
