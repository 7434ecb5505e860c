"""The benchmark's arithmetic (pure): cost fit, ratios and the targets table from measured stages."""
import pytest

from bench import run


def _stage(seconds, records, rss=500.0, **extra):
  return dict(seconds=seconds, records=records, process_peak_rss_mb=rss,
              process_wall_seconds=seconds + 10.0, import_seconds=8.0, **extra)


def _runs(n, ieg, seed, stats, balance, rss, proposed):
  components = {'ImageExampleGen': {'seconds': ieg, 'peak_rss_mb': rss, 'peak_anon_mb': rss / 2},
                'StatisticsGen': {'seconds': stats, 'peak_rss_mb': rss, 'peak_anon_mb': rss / 2},
                'ClassBalance': {'seconds': balance, 'peak_rss_mb': rss, 'peak_anon_mb': rss / 2}}
  alone = dict(rss_before_run_mb=700.0, anon_before_run_mb=300.0, peak_rss_mb=rss,
               peak_anon_mb=rss / 2)
  whatif = dict(rss_before_run_mb=600.0, anon_before_run_mb=300.0, peak_rss_mb=rss - 100,
                peak_anon_mb=rss / 2, shards_sha256='same', plan_seconds=0.25)
  return {'floor': _stage(0.01 * n, n), 'seed_write': _stage(seed, n, bytes=1000 * n),
          'image_example_gen': _stage(ieg, n, **alone),
          'pipeline': _stage(ieg + stats + balance, n, components=components,
                             examples_bytes=1001 * n),
          'seed_read': _stage(n / 100, n, steady_records_per_s=110.0),
          'make_dataset': _stage(n / 50, n, first_batch_seconds=4.0, steady_records_per_s=55.0),
          'whatif_current': _stage(ieg - 0.5, n, **whatif),
          'whatif_proposed': _stage(proposed, n, **whatif)}


def _report(small, large):
  return {'summary': run.summarize(small, large), 'runs': {'small': small, 'large': large},
          'machine': {'cpu': 'x', 'cores': 2, 'memory_gib': 1, 'python': '3.10', 'versions': {},
                      'load_average_at_start': (0.0, 0.0, 0.0)},
          'date': 'd', 'seed': 0, 'scales': [0.02, 0.1], 'load_average_at_end': (1.2, 0.5, 0.1)}


def test_fit_recovers_fixed_and_per_record_cost():
  assert run.fit(100, 3.0 + 100 * 0.002, 1000, 3.0 + 1000 * 0.002) == pytest.approx((3.0, 0.002))


def test_summary_ratios_and_targets():
  small = _runs(400, 5.0, 0.4, 4.0, 1.0, 900.0, proposed=1.0)
  large = _runs(2000, 7.0, 2.0, 10.0, 2.0, 950.0, proposed=2.0)
  s = run.summarize(small, large)
  ieg = s['image_example_gen']
  assert ieg['fixed_seconds'] == pytest.approx(4.5) and ieg['per_record_ms'] == pytest.approx(1.25)
  assert ieg['per_record_throughput_vs_seed_loop'] == pytest.approx(1.0 / 1.25)
  assert ieg['rss_growth_mb'] == pytest.approx(50.0)
  assert s['validation']['ratio_to_image_example_gen'] == pytest.approx(12.0 / 7.0)
  assert s['read_path']['ratio'] == pytest.approx(0.5)
  assert s['read_path']['steady_ratio'] == pytest.approx(0.5)
  assert s['whatif']['identical_shards']
  assert s['whatif']['proposed']['per_record_throughput_vs_seed_loop'] == pytest.approx(1.6)
  assert s['whatif']['proposed']['write_seconds_large'] == pytest.approx(1.75)
  met = {t['target'].split(' ≥')[0].split(' ≤')[0].split(' <')[0]: t['met'] for t in s['targets']}
  assert met == {'ImageExampleGen per-record throughput': False,
                 'ImageExampleGen fixed cost': True, 'ImageExampleGen peak RSS': True,
                 'ImageExampleGen RSS growth': True, 'make_dataset throughput': False,
                 'StatisticsGen + ClassBalance': True}
  text = run.markdown(_report(small, large))
  assert '| ImageExampleGen fixed cost ≤ 10 s | 4.5 s (interpreter and imports excluded) | yes |' in text
  assert 'other processes were running' in text
  assert 'Shards byte-identical across variants: **yes**' in text


def test_missing_stages_are_reported_not_fatal():
  small = _runs(400, 5.0, 0.4, 4.0, 1.0, 900.0, proposed=1.0)
  large = _runs(2000, 7.0, 2.0, 10.0, 2.0, 950.0, proposed=2.0)
  for r in (small, large):
    del r['pipeline']['components']['StatisticsGen'], r['pipeline']['components']['ClassBalance']
    r['make_dataset'] = {'skipped': 'transform not available'}
  s = run.summarize(small, large)
  rows = {t['target']: t for t in s['targets']}
  assert rows['StatisticsGen + ClassBalance ≤ 2× ImageExampleGen']['measured'] == 'not in pipeline yet'
  assert rows['make_dataset throughput ≥ 1.0× the seed read loop (doing more)']['met'] is None
  assert 'skipped: transform not available' in run.markdown(_report(small, large))
