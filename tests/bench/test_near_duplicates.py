"""bench/near_duplicates.py end to end at a tiny scale: planted copies, the peers, grouping."""
import json
import os

from bench import near_duplicates


def test_tiny_run_writes_the_report(tmp_path):
  out = tmp_path / 'out'
  assert near_duplicates.main([
      '--scale', '0.002', '--other', '12', '--copies-of', '2', '--grouping-records', '120',
      '--work-dir', str(tmp_path / 'work'), '--out', str(out)]) == 0
  report = json.loads((out / 'near_duplicates.json').read_text())
  for s in report['sets']:
    ours, cleanvision = s['ours'], s['cleanvision']
    assert s['copies'] == 10 and ours['copies'] == 10
    assert ours['false_pairs'] == 0
    assert ours['found'] >= cleanvision['found']  # crops: CleanVision's exact phash misses them
    assert ours['fingerprint_ms'] > 0 and s['imagehash_phash']['phash_ms'] > 0
  grouping = report['grouping']
  assert grouping['records'] == 120 and grouping['candidate_pairs'] > 0
  assert grouping['copies_found']['false_pairs'] == 0
  assert '| cxr-tfx (fingerprint) |' in (out / 'near_duplicates.md').read_text()
  assert not os.listdir(tmp_path / 'work') or all(
      name.startswith('nd-demo') for name in os.listdir(tmp_path / 'work'))
