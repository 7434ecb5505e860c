"""The cxr-tfx CLI: cheap start-up, helpful errors, demo data."""
import glob
import os
import subprocess
import sys
import types

import pytest

from components.image_example_gen import config as config_lib
import pipeline
from pipeline import cli  # cheap: no TensorFlow (see test_help_imports_no_tensorflow)
from pipeline import configs
from tests.support.testutil import CLI
from tests.support.testutil import read_csv_rows
from tests.support.testutil import refused_without_tensorflow
from tests.support.testutil import REPO


def run_cli(*args, cwd=REPO):
  return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=cwd, timeout=900)


SUBCOMMANDS = ('demo-data', 'validate', 'run', 'compile', 'report', 'lineage', 'predict')


@pytest.mark.parametrize('argv, words', [
    (['--help'], ['demo-data', 'validate', 'run', 'compile', 'report', 'lineage']),
    (['demo-data', '--help'], ['--out', '--scale', '--workers', '--quiet', 'examples:']),
    (['validate', '--help'], ['--csv', '--verify', '--workers', '--quiet', '(default header)',
                              '--image-dir', '--split-manifest', '--fresh-splits']),
    (['run', '--help'], ['--beam-arg-for', '--pipeline-name', '--verify', '--max-file-bytes',
                         '--quiet', '(default full)', '--image-dir', '--split-manifest',
                         '--fresh-splits']),
    (['compile', '--help'], ['--beam-arg-for', '--pipeline-name', '--verify', '--max-file-bytes',
                             '--image-dir', '--split-manifest', '--fresh-splits']),
    (['report', '--help'], ['--pipeline-root', '--pipeline-name', 'examples:']),
    (['lineage', '--help'], ['--latest', 'ClassBalance', 'ExampleValidator', 'examples:']),
])
def test_help_imports_no_tensorflow(argv, words):
  code = ('import sys; from pipeline import cli\n'
          f'try:\n  cli.main({argv!r})\nexcept SystemExit:\n  pass\n'
          'heavy = [m for m in ("tensorflow", "tfx", "apache_beam") if m in sys.modules]\n'
          'assert not heavy, heavy')
  done = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=REPO)
  assert done.returncode == 0, done.stderr
  for word in words:
    assert word in done.stdout, word


def test_every_subcommand_explains_itself():
  for sub, words in (('run', ['--csv', '--splits', '--seed', '--beam-arg', 'per-shard']),
                     ('demo-data', ['--out', '--scale', '--missing-masks', '--seed'])):
    done = run_cli(sub, '--help')
    assert done.returncode == 0
    for word in words:
      assert word in done.stdout, (sub, word)


def _help_examples(argv):
  """The commands in a --help text: lines starting with '  cxr-tfx ', continuations joined,
  trailing '# comments' dropped -> [argv list]."""
  import shlex
  done = run_cli(*argv, '--help')
  assert done.returncode == 0, done.stderr
  commands, current = [], None
  for line in done.stdout.splitlines():
    text = line.strip()
    if current is not None:
      current += ' ' + text
    elif line.startswith('  cxr-tfx '):  # examples are indented; prose is not
      current = text
    else:
      continue
    if current.endswith('\\'):
      current = current[:-1]
      continue
    commands.append(shlex.split(current, comments=True)[1:])
    current = None
  return commands


def test_every_help_example_parses_and_the_cheap_ones_run(tmp_path):
  """Each example in `cxr-tfx --help` and `cxr-tfx COMMAND --help` parses; demo-data (at the
  default scale) and validate run as written, in a fresh folder, in that order."""
  examples = []
  for argv in ([], *([sub] for sub in SUBCOMMANDS)):
    found = _help_examples(argv)
    assert found, argv
    examples += found
  assert {e[0] for e in examples} == set(SUBCOMMANDS)
  for argv in examples:
    cli.build_parser().parse_args(argv)  # SystemExit (status 2) if an example does not parse
  cheap = [e for e in examples if e[0] == 'demo-data' and '--scale' not in e]
  cheap += [e for e in examples if e[0] == 'validate']
  assert len(cheap) >= 3
  for argv in dict.fromkeys(tuple(e) for e in cheap):  # each distinct example once
    done = run_cli(*argv, cwd=tmp_path)
    assert done.returncode == 0, (argv, done.stderr[-2000:])
  rows = read_csv_rows(tmp_path / 'data' / 'all_image_mask_pairs.csv')
  assert len(rows) == 423  # demo-data's default scale is run's demo scale
  assert configs.DEMO_SCALE == cli.build_parser().parse_args(['demo-data', '--out', 'x']).scale


def test_demo_data_command_writes_the_kaggle_layout(tmp_path):
  done = run_cli('demo-data', '--out', str(tmp_path), '--scale', '0.001', '--seed', '3')
  assert done.returncode == 0, done.stderr
  rows = read_csv_rows(tmp_path / 'all_image_mask_pairs.csv')
  assert len(rows) == 21 and 'wrote 21 images' in done.stdout  # 4 + 10 + 6 + 1
  assert any(r['class'] == 'Viral Pneumonia' for r in rows)
  # stderr is not a terminal: the first line, then the end of the progress, no control codes
  assert done.stderr.startswith(f'cxr-tfx demo-data: 21 images (scale 0.001) into {tmp_path}')
  assert '[demo-data] written in' in done.stderr and '\r' not in done.stderr
  quiet = run_cli('demo-data', '--out', str(tmp_path / 'q'), '--scale', '0.001', '--quiet')
  assert quiet.returncode == 0 and quiet.stderr == '' and 'wrote 21 images' in quiet.stdout


def test_run_rejects_a_bad_index_naming_line_path_and_reason(tmp_path):
  (tmp_path / 'a.png').write_bytes(b'\x89PNG')
  (tmp_path / 'index.csv').write_text('image_path,mask_path,class\na.png,,Covid\n')
  (tmp_path / 'class_mapping.json').write_text('{"COVID": 0, "Normal": 1}')
  done = run_cli('run', '--csv', str(tmp_path / 'index.csv'),
                 '--pipeline-root', str(tmp_path / 'out'), '--splits', 'train=1')
  assert done.returncode == 2
  assert "line 2: unknown class: 'Covid' is not in the class mapping" in done.stderr
  assert '(a.png)' in done.stderr
  # the error once, as cxr-tfx's message: no absl/TensorFlow log lines (ERROR:absl:...)
  assert 'absl' not in done.stderr and 'Traceback' not in done.stderr
  assert '[ImageExampleGen] failed after' in done.stderr
  assert done.stderr.startswith('cxr-tfx run: CuratedSchemaGen → ImageExampleGen → ')  # the first line
  # TFX creates the (empty) output folder before the executor runs; no shard was written
  assert not glob.glob(str(tmp_path / 'out' / 'ImageExampleGen' / 'examples' / '*' / '*'))


def test_run_rejects_bad_splits_before_any_work(tmp_path):
  done = run_cli('run', '--splits', 'train=8,eval', '--pipeline-root', str(tmp_path))
  assert done.returncode == 2 and '--splits' in done.stderr
  assert os.listdir(tmp_path) == []


def test_run_with_a_missing_csv_fails_in_a_second_without_tensorflow(tmp_path):
  stderr = refused_without_tensorflow(['run', '--csv', str(tmp_path / 'nope.csv'),
                                       '--pipeline-root', str(tmp_path / 'out')], timeout=60)
  assert 'the CSV index does not exist (option --csv)' in stderr


# --- run/compile options, parsed in-process (no TensorFlow, no run) ---

COMPILE_REQUIRED = ['--image', 'r/cxr-tfx:t', '--output', 'x.yaml', '--pipeline-root', 'gs://b/r']


def _parse(*argv):
  return cli.build_parser().parse_args(list(argv))


@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_beam_arg_for_collects_per_component_args_in_order(sub):
  extra = COMPILE_REQUIRED if sub == 'compile' else []
  args = _parse(sub, *extra, '--beam-arg=--direct_num_workers=1',
                '--beam-arg-for', 'ImageExampleGen=--direct_running_mode=multi_processing',
                '--beam-arg-for', 'Transform=--runner=DataflowRunner',
                '--beam-arg-for=ImageExampleGen=--direct_num_workers=2')
  assert args.beam_arg == ['--direct_num_workers=1']
  group = cli._component_beam_args  # pylint: disable=protected-access
  assert group(args.beam_arg_for) == {
      'ImageExampleGen': ['--direct_running_mode=multi_processing', '--direct_num_workers=2'],
      'Transform': ['--runner=DataflowRunner']}
  assert group(_parse(sub, *extra).beam_arg_for) == {}


@pytest.mark.parametrize('value, words', [
    ('statisticsgen=--direct_num_workers=2', ["'statisticsgen'", "did you mean 'StatisticsGen'"]),
    ('ExampleValidator=--direct_num_workers=2', ['not a Beam component']),
    (f'{configs.SCHEMA_GEN}=--direct_num_workers=2', ['not a Beam component']),
    ('ImageExampleGen', ['expected COMPONENT=ARG']),
    ('ImageExampleGen=', ['expected COMPONENT=ARG']),
])
@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_beam_arg_for_rejects_bad_values_naming_the_valid_ids(sub, value, words, capsys):
  extra = COMPILE_REQUIRED if sub == 'compile' else []
  with pytest.raises(SystemExit) as e:
    _parse(sub, *extra, '--beam-arg-for', value)
  assert e.value.code == 2
  err = capsys.readouterr().err
  assert 'argument --beam-arg-for' in err
  for word in [*words, 'ImageExampleGen, StatisticsGen, ClassBalance, Transform']:
    assert word in err, (word, err)


def test_latest_takes_a_kind_or_a_producer(capsys):
  for latest in ('examples', 'anomalies', 'balance', 'ClassBalance', 'ExampleValidator',
                 'ImageExampleGen', 'Transform'):
    assert _parse('lineage', '--metadata', 'm', '--latest', latest).latest == latest
  with pytest.raises(SystemExit):
    _parse('lineage', '--metadata', 'm', '--latest', 'classbalance')
  assert "invalid choice: 'classbalance'" in capsys.readouterr().err
  from pipeline import lineage
  assert lineage.latest_target('ClassBalance') == lineage.latest_target('balance') == (
      'ClassBalance', 'anomalies')
  assert lineage.latest_target('ExampleValidator') == ('ExampleValidator', 'anomalies')


@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_pipeline_name_option(sub, capsys):
  extra = COMPILE_REQUIRED if sub == 'compile' else []
  assert _parse(sub, *extra).pipeline_name == 'cxr-tfx'
  assert _parse(sub, *extra, '--pipeline-name', 'cxr-tfx-dev-2').pipeline_name == 'cxr-tfx-dev-2'
  for bad in ('Cxr_TFX', '-x', 'a' * 129):
    with pytest.raises(SystemExit) as e:
      _parse(sub, *extra, f'--pipeline-name={bad}')
    assert e.value.code == 2
    assert '[a-z0-9][a-z0-9-]{0,127}' in capsys.readouterr().err


@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_verify_and_max_file_bytes_go_into_the_ingest_config(sub, tmp_path, capsys):
  mapping = tmp_path / 'class_mapping.json'
  mapping.write_text('{"COVID": 0, "Normal": 1}')
  extra = COMPILE_REQUIRED if sub == 'compile' else []
  ingest_config = cli._ingest_config  # pylint: disable=protected-access
  default = ingest_config(_parse(sub, *extra), str(mapping))
  assert default.verify == config_lib.VERIFY_FULL
  assert default.max_file_bytes == config_lib.DEFAULT_MAX_FILE_BYTES
  args = _parse(sub, *extra, '--verify', 'header', '--max-file-bytes', '1000')
  config = ingest_config(args, str(mapping))
  assert (config.verify, config.max_file_bytes) == ('header', 1000)
  for bad in (['--verify', 'fast'], ['--max-file-bytes', '0'], ['--max-file-bytes', '1k']):
    with pytest.raises(SystemExit) as e:
      _parse(sub, *extra, *bad)
    assert e.value.code == 2
    assert bad[0] in capsys.readouterr().err


class _Called(Exception):
  pass


def _fake_module(monkeypatch, name, function):
  """Puts a stand-in for pipeline.<name> whose <function> records its kwargs and stops."""
  calls = []

  def record(**kwargs):
    calls.append(kwargs)
    raise _Called()
  fake = types.ModuleType(f'pipeline.{name}')
  setattr(fake, function, record)
  monkeypatch.setitem(sys.modules, f'pipeline.{name}', fake)
  monkeypatch.setattr(pipeline, name, fake, raising=False)
  return calls


def _runner_calls(sub, tmp_path, monkeypatch):
  """`run` or `compile` with its runner replaced by a recorder -> (the recorded calls' keyword
  arguments, the command's argv up to its options: a CSV and a class mapping)."""
  module, function = (('local_runner', 'run_local') if sub == 'run' else
                      ('kubeflow_runner', 'compile_pipeline'))
  calls = _fake_module(monkeypatch, module, function)
  mapping = tmp_path / 'class_mapping.json'
  mapping.write_text('{"COVID": 0, "Normal": 1}')
  (tmp_path / 'index.csv').write_text('image_path,mask_path,class\na.png,,COVID\n')
  extra = ([*COMPILE_REQUIRED, '--allow-local-paths'] if sub == 'compile'  # a local CSV
           else ['--pipeline-root', str(tmp_path / 'out')])
  return calls, [sub, *extra, '--csv', str(tmp_path / 'index.csv'), '--class-mapping',
                 str(mapping)]


@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_run_and_compile_pass_the_new_options_on(sub, tmp_path, monkeypatch):
  calls, base = _runner_calls(sub, tmp_path, monkeypatch)
  with pytest.raises(_Called):
    cli.main([*base, '--pipeline-name', 'cxr-dev', '--beam-arg=--direct_num_workers=1',
              '--beam-arg-for', 'ImageExampleGen=--direct_num_workers=2',
              '--verify', 'header', '--max-file-bytes', '1000'])
  (kwargs,) = calls
  options = kwargs['options']
  assert options.pipeline_name == 'cxr-dev'
  assert options.beam_pipeline_args == ('--direct_num_workers=1',)
  assert options.component_beam_args == {'ImageExampleGen': ['--direct_num_workers=2']}
  ingest = kwargs['ingest_config']
  assert (ingest.verify, ingest.max_file_bytes) == ('header', 1000)


@pytest.mark.parametrize('sub', ['run', 'compile'])
def test_split_options_go_into_the_ingest_config(sub, tmp_path, monkeypatch):
  """--split-manifest (a local path made absolute for `run`; a URI as given) and
  --fresh-splits reach the runner in IngestConfig, not as keyword arguments."""
  calls, base = _runner_calls(sub, tmp_path, monkeypatch)
  with pytest.raises(_Called):
    cli.main([*base, '--split-manifest', 'gs://b/root/split_manifest.json'])
  with pytest.raises(_Called):
    cli.main([*base, '--fresh-splits'])
  with pytest.raises(_Called):
    cli.main(base)
  kept, fresh, default = (c['ingest_config'] for c in calls)
  assert (kept.split_manifest, kept.fresh_splits) == ('gs://b/root/split_manifest.json', False)
  assert (fresh.split_manifest, fresh.fresh_splits) == ('', True)
  assert (default.split_manifest, default.fresh_splits) == ('', False)
  assert not {'split_manifest', 'fresh_splits'} & set(calls[0])
  extra = COMPILE_REQUIRED if sub == 'compile' else []
  assert cli._ingest_config(  # pylint: disable=protected-access
      _parse(sub, *extra, '--split-manifest', 'm/split_manifest.json'),
      str(tmp_path / 'class_mapping.json')).split_manifest == os.path.abspath(
          'm/split_manifest.json')


def test_compile_takes_an_image_folder_with_constants_only(tmp_path, monkeypatch):
  calls = _fake_module(monkeypatch, 'kubeflow_runner', 'compile_pipeline')
  mapping = tmp_path / 'class_mapping.json'
  mapping.write_text('{"COVID": 0, "Normal": 1}')
  with pytest.raises(_Called):
    cli.main(['compile', *COMPILE_REQUIRED, '--image-dir', 'gs://b/xrays', '--class-mapping',
              str(mapping), '--no-runtime-parameters'])
  (kwargs,) = calls
  assert (kwargs['source'].image_dir, kwargs['source'].csv_path,
          kwargs['options'].runtime_parameters) == ('gs://b/xrays', '', False)
  assert kwargs['ingest_config'].class_mapping == {'COVID': 0, 'Normal': 1}


@pytest.mark.parametrize('extra, words', [
    (['--image-dir', 'gs://b/xrays'], '--image-dir needs --no-runtime-parameters: the pipeline '
                                      'parameters (csv_uri, class_mapping, seed, splits, '
                                      'split_manifest) stand for a CSV index'),
    (['--image-dir', 'xrays', '--no-runtime-parameters'],
     "--image-dir 'xrays': give it as the cluster's tasks see it, a URI"),
    (['--image-dir', 'gs://b/xrays', '--csv', 'gs://b/i.csv', '--no-runtime-parameters'],
     'compile needs --csv (a URI the cluster reads) or --image-dir'),
    (['--csv', 'gs://b/i.csv', '--split-manifest', 'out/split_manifest.json'],
     "--split-manifest 'out/split_manifest.json': give it as the cluster's tasks see it"),
])
def test_compile_refuses_what_a_cluster_cannot_read(extra, words, tmp_path):
  """Before anything heavy loads, naming the option."""
  (tmp_path / 'm.json').write_text('{"COVID": 0, "Normal": 1}')
  stderr = refused_without_tensorflow(
      ['compile', '--image', 'i', '--output', str(tmp_path / 'p.yaml'), '--pipeline-root',
       'gs://b/r', '--class-mapping', str(tmp_path / 'm.json'), *extra])
  assert words in stderr, stderr
  assert not os.path.exists(tmp_path / 'p.yaml')


def test_only_the_projects_errors_are_user_errors_bugs_keep_their_traceback(monkeypatch, capsys):
  """CxrError and I/O errors: one line naming the problem, exit 2; anything else propagates
  (traceback) and the excepthook asks for a bug report."""
  import sys

  from components.image_example_gen.config import ConfigError
  from pipeline import cli
  monkeypatch.setattr(sys, 'excepthook', sys.excepthook)  # main() installs its hook

  def raising(error):
    def handler(args, display):  # pylint: disable=unused-argument
      raise error
    return handler

  argv = ['lineage', '--metadata', 'm.sqlite', '--latest', 'examples']
  monkeypatch.setattr(cli, '_lineage', raising(ConfigError('bad \x1b[2J option (option --x)')))
  assert cli.main(argv) == 2
  assert capsys.readouterr().err == 'cxr-tfx lineage: error: bad \\x1b[2J option (option --x)\n'
  monkeypatch.setattr(cli, '_lineage', raising(PermissionError(13, 'Permission denied', '/ro/x')))
  assert cli.main(argv) == 2
  err = capsys.readouterr().err
  assert "cannot access '/ro/x': Permission denied" in err and 'Traceback' not in err
  monkeypatch.setattr(cli, '_lineage', raising(KeyError('oops')))
  with pytest.raises(KeyError):
    cli.main(argv)
  try:
    raise KeyError('oops')
  except KeyError:
    sys.excepthook(*sys.exc_info())
  err = capsys.readouterr().err
  assert 'Traceback' in err and 'this is a bug in cxr-tfx' in err


def test_span_options_fail_fast_naming_the_option(tmp_path):
  """Before anything heavy loads: --span without a pattern, a span that is not there."""
  for span in (1, 2):
    with open(tmp_path / f'index-{span}.csv', 'w') as f:
      f.write('image_path,mask_path,class\n')
  plain = run_cli('run', '--csv', str(tmp_path / 'index-1.csv'), '--span', '2',
                  '--pipeline-root', str(tmp_path / 'out'))
  assert plain.returncode == 2 and '--span 2 needs a span pattern in --csv' in plain.stderr
  missing = run_cli('run', '--csv', str(tmp_path / 'index-{SPAN}.csv'), '--span', '7',
                    '--pipeline-root', str(tmp_path / 'out'))
  assert missing.returncode == 2, missing.stderr
  assert 'no CSV for span 7 (spans found: 1, 2) (option --span)' in missing.stderr
  assert 'Traceback' not in missing.stderr + plain.stderr
  kfp = run_cli('compile', '--csv', 'gs://b/index-{SPAN}.csv', '--class-mapping', 'm.json',
                '--image', 'i', '--output', str(tmp_path / 'p.yaml'), '--pipeline-root', 'gs://b/r',
                '--fail-on-drift')
  assert kfp.returncode == 2 and '--fail-on-drift needs the previous span' in kfp.stderr


def test_the_run_summary_says_what_the_membership_kept_and_dealt():
  membership = dict(source='ml-metadata', prior_manifest='root/IEG/examples/2/split_manifest.json',
                    kept=423, new=106, new_by_split={'eval': 10, 'test': 12, 'train': 84},
                    max_split_class_deviation=0.7, missing=2, missing_listed=[
                        dict(sha256='ab' * 32, split='test', first_span=0),
                        dict(sha256='cd' * 32, split='train', first_span=0)],
                    resent_count=1, conflicts_count=0)
  text = cli._membership_text(  # pylint: disable=protected-access
      membership, 'root/IEG/examples/8/split_manifest.json', ['train', 'eval', 'test'])
  assert text == (
      'split membership: 423 images kept their split from root/IEG/examples/2/split_manifest.json '
      '(from ML Metadata), 106 new (train 84, eval 10, test 12); class mix off proportional by '
      'at most 0.7 images per split; 2 of its images missing from this input (abababababab… '
      'test, cdcdcdcdcdcd… train; all in ingest_summary.json), 1 re-sent from an earlier span '
      '(each kept its split); published: root/IEG/examples/8/split_manifest.json')
  fresh = cli._membership_text(  # pylint: disable=protected-access
      dict(source='fresh', new=529, discarded=dict(manifest='m.json', images=423)), 'n.json',
      ['train'])
  assert fresh == ("split membership: --fresh-splits: 423 images' published membership "
                   'discarded (m.json); all 529 images dealt afresh; published: n.json')
