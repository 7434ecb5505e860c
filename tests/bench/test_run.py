"""The benchmark's arithmetic (pure): cost fit and the targets table from measured stages."""
import pytest

from bench import run


def _stage(seconds, records=100, rss=500.0, **extra):
  return dict(seconds=seconds, records=records, process_peak_rss_mb=rss, **extra)


def _runs(n, ieg, seed, stats, balance, rss):
  components = {'ImageExampleGen': {'seconds': ieg, 'peak_rss_mb': rss},
                'StatisticsGen': {'seconds': stats, 'peak_rss_mb': rss},
                'ClassBalance': {'seconds': balance, 'peak_rss_mb': rss}}
  return {'floor': _stage(0.01 * n, n), 'seed_write': _stage(seed, n, bytes=1000 * n),
          'pipeline': _stage(ieg + stats + balance, n, components=components, import_seconds=20.0,
                             examples_bytes=1001 * n),
          'seed_read': _stage(n / 100, n), 'make_dataset': _stage(n / 50, n)}


def test_fit_recovers_fixed_and_per_record_cost():
  assert run.fit(100, 3.0 + 100 * 0.002, 1000, 3.0 + 1000 * 0.002) == pytest.approx((3.0, 0.002))


def test_summary_and_targets_table():
  small, large = _runs(400, 5.0, 0.4, 4.0, 1.0, 900.0), _runs(2000, 7.0, 2.0, 10.0, 2.0, 950.0)
  s = run.summarize(small, large)
  ieg = s['image_example_gen']
  assert ieg['fixed_seconds'] == pytest.approx(4.5) and ieg['per_record_ms'] == pytest.approx(1.25)
  assert ieg['per_record_throughput_vs_seed_loop'] == pytest.approx(1.0 / 1.25)
  assert ieg['rss_growth_mb'] == pytest.approx(50.0)
  assert s['validation']['ratio_to_image_example_gen'] == pytest.approx(12.0 / 7.0)
  assert s['read_path']['ratio'] == pytest.approx(0.5)
  text = run.markdown({'summary': s, 'runs': {'small': small, 'large': large},
                       'machine': {'cpu': 'x', 'cores': 2, 'memory_gib': 1, 'python': '3.10',
                                   'versions': {}, 'load_average_at_start': (0, 0, 0)},
                       'date': 'd', 'scales': [0.02, 0.1], 'load_average_at_end': (0, 0, 0)})
  assert '| make_dataset ≥ 1.0× seed read loop | 0.50× overall | **no** |' in text
  assert '| ImageExampleGen fixed cost ≤ 10 s | 4.5 s | yes |' in text
