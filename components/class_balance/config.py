"""ClassBalance's configuration: a validated dataclass (pure: no TensorFlow/TFX imports)."""
import dataclasses

from components import options
from components.errors import ConfigError
from components.options import option

DEFAULT_MAX_LINF = 0.02
DEFAULT_MAX_JS = 0.001
DEFAULT_MIN_COUNT_PER_CLASS = 1
DEFAULT_NEAR_FULL_MASK = 0.95
DEFAULT_MAX_CLASS_RATIO = 3.0
DEFAULT_MAX_MASK_PRESENCE_GAP = 0.05
DEFAULT_COVERAGE_SAMPLE = 32
DEFAULT_MAX_DRIFT_LINF = 0.1
DEFAULT_MAX_DRIFT_JS = 0.02


def _number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclasses.dataclass(frozen=True)
class BalanceConfig:
  """Thresholds of ClassBalance's checks: one field per option, its help line (``option``)
  says what it does; ``cxr-tfx run --help`` shows them as flags (components/options.py).

  The stratification thresholds (max_linf, max_js) come on top of the unavoidable rounding of
  a unit of m records (2/m, ``balance.granularity_allowance``). max_drift_linf is also the
  threshold of the image size/mode distributions' L-infinity and of the mask presence rate's
  difference between spans, max_drift_js that of the mask-coverage histograms' JS (WARNINGs).
  Exact empty-mask and mask-check counts come from ImageExampleGen's summary; coverage_sample
  is a seeded sample (records are in ImageExampleGen's hash order).
  """
  max_linf: float = option(
      DEFAULT_MAX_LINF, flag='--max-linf', kind=float,
      help="largest L-infinity distance between a split/shard's class proportions and the "
           "whole dataset's, on top of the rounding allowance of a unit of m records (2/m) "
           '(default %(default)s)')
  max_js: float = option(
      DEFAULT_MAX_JS, flag='--max-js', kind=float,
      help='largest Jensen-Shannon divergence (bits, as TFDV) on top of the rounding allowance '
           '(default %(default)s)')
  min_count_per_class: int = option(
      DEFAULT_MIN_COUNT_PER_CLASS, flag='--min-count-per-class', kind=int, minimum=0,
      help='every class needs at least this many examples in every split (default '
           '%(default)s: no class missing from eval or test)')
  fail_on_imbalance: bool = option(
      False, flag='--fail-on-imbalance',
      help='stop the run (after writing the reports) when a split or shard fails a balance '
           'check; the error names the split or shard, the class and the measure')
  near_full_mask: float = option(
      DEFAULT_NEAR_FULL_MASK, kind=float,
      help='a mask covering at least this fraction of its pixels counts as near-full')
  max_class_ratio: float = option(
      DEFAULT_MAX_CLASS_RATIO, flag='--max-class-ratio', kind=float, metavar='RATIO',
      help='class-imbalance warning threshold: largest class / smallest class in the whole '
           'dataset (default %(default)s); above it the report says "classes imbalanced" and '
           'points to the class weights (never stops a run)')
  max_mask_presence_gap: float = option(
      DEFAULT_MAX_MASK_PRESENCE_GAP, flag='--max-mask-presence-gap', kind=float,
      metavar='FRACTION',
      help="warn when a split's share of records with a mask differs from the whole dataset's "
           'by more than this, plus a 3-sigma sampling allowance (default %(default)s)')
  coverage_sample: int = option(
      DEFAULT_COVERAGE_SAMPLE, flag='--coverage-sample', kind=int, minimum=0, metavar='N',
      help='masks ClassBalance decodes per shard file and class for the mask-coverage '
           'histogram (default %(default)s; 0: every mask)')
  warnings_as_errors: bool = option(
      False, flag='--warnings-as-errors',
      help="ClassBalance's warnings (class imbalance, masks) get severity ERROR in its TFDV "
           'anomalies and reports (they still do not stop the run)')
  max_drift_linf: float = option(
      DEFAULT_MAX_DRIFT_LINF, flag='--max-drift-linf', kind=float, metavar='FRACTION',
      help="spans: largest L-infinity distance between this span's class mix and the previous "
           "span's (also compares image sizes/modes and mask presence; default %(default)s)")
  max_drift_js: float = option(
      DEFAULT_MAX_DRIFT_JS, flag='--max-drift-js', kind=float, metavar='BITS',
      help="spans: largest Jensen-Shannon divergence between this span's class mix (and mask "
           "coverage) and the previous span's (default %(default)s)")
  fail_on_drift: bool = option(
      False, flag='--fail-on-drift',
      help='spans: stop the run (after writing the reports) when the class mix drifted from '
           'the previous span beyond --max-drift-linf/--max-drift-js')

  def __post_init__(self):
    for name in ('max_linf', 'max_js', 'max_mask_presence_gap', 'max_drift_linf',
                 'max_drift_js'):
      value = getattr(self, name)
      if not _number(value) or not 0 <= value <= 1:
        raise ConfigError(f'{name} must be a number in [0, 1], got {value!r} '
                          f'({options.where(BalanceConfig, name)}).')
      object.__setattr__(self, name, float(value))
    if not _number(self.max_class_ratio) or not self.max_class_ratio >= 1:
      raise ConfigError(f'max_class_ratio must be a number >= 1 (largest class / smallest '
                        f'class), got {self.max_class_ratio!r} (option --max-class-ratio).')
    object.__setattr__(self, 'max_class_ratio', float(self.max_class_ratio))
    options.validate(self)
    if not _number(self.near_full_mask) or not 0 < self.near_full_mask <= 1:
      raise ConfigError(f'near_full_mask must be in (0, 1], got {self.near_full_mask!r}.')
