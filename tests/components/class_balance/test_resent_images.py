"""Images re-sent from an earlier span: ImageExampleGen's ingest summary lists the images of this
span whose bytes an earlier span already had (``membership``; each kept its earlier split), and
ClassBalance reports them as a RESENT_IMAGE warning -- in the findings, the JSON and HTML
reports, the TFDV anomalies and an artifact property. On the tiny real files of conftest.py
(real Beam, real TFDV); an older summary without ``membership`` reports nothing."""
import json
import os
import types

import pytest

from tests.components.class_balance.conftest import run_balance
from tests.components.class_balance.conftest import SPLITS
from tests.components.class_balance.conftest import with_summary

HOSTILE_ID = 'new/<b>re&sent</b>.png'  # escaped in the HTML, quoted in the message
RESENT = [
    {'image_id': HOSTILE_ID, 'line': 12, 'class_name': 'COVID', 'split': 'test',
     'first_span': 1, 'sha256': 'ab' * 32},
    {'image_id': "again/o'hara.png", 'line': 40, 'class_name': 'Viral Pneumonia',
     'split': 'train', 'first_span': 2, 'sha256': 'cd' * 32},
]
MEMBERSHIP = {'resent': RESENT, 'resent_count': 2, 'span': 3}


def _has_membership() -> bool:
  from components.image_example_gen.summary import IngestSummary
  return 'membership' in IngestSummary.__dataclass_fields__  # pylint: disable=no-member


def _with_summary(inputs, name, membership=None):
  """conftest's files plus an ingest summary that agrees with them; ``membership`` is added to
  its JSON (None: an older summary without the field) -> ClassBalance's (result, paths)."""
  fields = {} if membership is None else {'membership': membership}
  return run_balance(inputs, f'out_{name}', examples=with_summary(inputs, name, **fields))


@pytest.fixture(scope='module')
def resent_run(balance_inputs):
  if not _has_membership():
    pytest.skip('IngestSummary.membership not there yet')
  return _with_summary(balance_inputs, 'resent', MEMBERSHIP)


@pytest.fixture(scope='module')
def older_run(balance_inputs):
  return _with_summary(balance_inputs, 'no_membership')


def test_resent_images_are_one_warning_that_names_them(resent_run):
  from components.class_balance import balance
  res, _ = resent_run
  [f] = [f for f in res.findings if f.check == balance.RESENT_IMAGE]
  assert (f.severity, f.kind, f.scope, f.split, f.value) == (
      balance.WARNING, balance.KIND_LEAKAGE, balance.DATASET, '', 2)
  assert f.message == (
      '2 images of span 3 were already ingested in an earlier span (same bytes); each kept its '
      "earlier split: line 12 'new/<b>re&sent</b>.png' (COVID) first in span 1, split test; "
      "line 40 \"again/o'hara.png\" (Viral Pneumonia) first in span 2, split train")
  assert f in res.drift_findings and res.resent_images == 2
  assert 'leakage warning' in res.verdict


def test_resent_images_in_the_json_report_and_the_property(resent_run):
  from tfx.types import standard_artifacts

  from components.class_balance import balance
  from components.class_balance import executor
  from components.class_balance import spec
  res, paths = resent_run
  with open(paths['json']) as f:
    report = json.load(f)
  assert report['drift']['resent_images'] == {'known': True, 'span': 3, 'count': 2,
                                              'listed': RESENT}
  for findings in (report['findings'], report['drift']['findings']):
    [f] = [f for f in findings if f['check'] == balance.RESENT_IMAGE]
    assert (f['severity'], f['kind'], f['value']) == ('warning', 'leakage', 2)
  artifact = standard_artifacts.ExampleAnomalies()
  executor.set_properties(artifact, res, paths)
  assert artifact.get_int_custom_property(spec.RESENT_IMAGES_PROPERTY) == 2


def test_resent_images_in_the_html_escaped(resent_run):
  res, paths = resent_run
  with open(paths['html'], encoding='utf-8') as f:
    page = f.read()
  assert '<b>re&sent' not in page  # nowhere unescaped: not in the table, not in the findings
  section = page.split('<section id="drift">', 1)[1].split('</section>', 1)[0]
  assert 'Images re-sent from an earlier span' in section
  table = section.split('Images re-sent from an earlier span', 1)[1]
  assert ('<tr><td class="n">12</td><td>new/&lt;b&gt;re&amp;sent&lt;/b&gt;.png</td>'
          '<td>COVID</td><td class="n">1</td><td>test</td></tr>') in table
  assert ('<tr><td class="n">40</td><td>again/o&#x27;hara.png</td><td>Viral Pneumonia</td>'
          '<td class="n">2</td><td>train</td></tr>') in table
  findings = page.split('<section id="findings">', 1)[1].split('</section>', 1)[0]
  assert 'RESENT_IMAGE' in findings and 'new/&lt;b&gt;re&amp;sent&lt;/b&gt;.png' in findings
  assert res.resent_images == 2


def test_resent_images_in_the_anomalies_as_a_warning(resent_run):
  from tensorflow_data_validation.utils import anomalies_util
  from tensorflow_metadata.proto.v0 import anomalies_pb2

  from components.class_balance import balance
  _, paths = resent_run
  out = os.path.dirname(paths['json'])
  for split in SPLITS:  # a dataset finding: every split's file carries it
    anomalies = anomalies_util.load_anomalies_binary(
        os.path.join(out, f'Split-{split}', 'SchemaDiff.pb'))
    info = anomalies.anomaly_info['image_sha256']
    assert info.severity == anomalies_pb2.AnomalyInfo.WARNING  # no duplicate across splits
    assert [r.short_description for r in info.reason] == [balance.RESENT_IMAGE]


def test_a_summary_without_membership_reports_no_resent_images(older_run):
  from tfx.types import standard_artifacts

  from components.class_balance import balance
  from components.class_balance import executor
  from components.class_balance import spec
  res, paths = older_run
  assert balance.RESENT_IMAGE not in {f.check for f in res.findings}
  assert res.resent_images == 0 and not res.drift.resent.known
  with open(paths['json']) as f:
    assert json.load(f)['drift']['resent_images'] == {'known': False, 'span': 0, 'count': 0,
                                                      'listed': []}
  with open(paths['html'], encoding='utf-8') as f:
    assert 'Images re-sent' not in f.read()
  artifact = standard_artifacts.ExampleAnomalies()
  executor.set_properties(artifact, res, paths)
  assert artifact.get_int_custom_property(spec.RESENT_IMAGES_PROPERTY) == 0


def test_all_are_counted_a_few_quoted():
  from components.class_balance import balance
  from components.class_balance import drift
  many = [dict(RESENT[0], image_id=f'n{i}.png', line=i) for i in range(20)]  # the list is cut
  summary = types.SimpleNamespace(membership={'resent': many, 'resent_count': 57, 'span': 4})
  resent, [f] = drift.resent_images(summary)
  assert (resent.known, resent.span, resent.count, len(resent.listed)) == (True, 4, 57, 20)
  assert f.value == 57 and f.message.startswith('57 images of span 4 were already ingested')
  assert f.message.count(' first in span ') == drift.EXAMPLE_IMAGES
  assert f.message.endswith("line 4 'n4.png' (COVID) first in span 1, split test; ...")
  one = types.SimpleNamespace(membership={'resent': RESENT[:1], 'resent_count': 1, 'span': 2})
  assert drift.resent_images(one)[1][0].message.startswith(
      '1 image of span 2 was already ingested in an earlier span (same bytes); it kept its '
      "earlier split: line 12 'new/<b>re&sent</b>.png'")
  none = types.SimpleNamespace(membership={'resent': [], 'resent_count': 0, 'span': 2})
  assert drift.resent_images(none) == (drift.ResentImages(True, 2), [])
  for older in (None, types.SimpleNamespace(), types.SimpleNamespace(membership={})):
    assert drift.resent_images(older) == (drift.ResentImages(False), [])
  first = types.SimpleNamespace(membership={'images': 9, 'kept': 0, 'new': 9, 'span': 1})
  assert drift.resent_images(first) == (drift.ResentImages(False, 1), [])  # nothing earlier
  assert balance.KIND_OF[balance.RESENT_IMAGE] == balance.KIND_LEAKAGE
