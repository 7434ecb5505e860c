"""ClassBalance's configuration: a validated dataclass (pure: no TensorFlow/TFX imports)."""
import dataclasses

from components.errors import ConfigError

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
  """Thresholds of ClassBalance's checks.

  Attributes:
    max_linf: stratification: largest L-infinity distance allowed between a split's or shard's
      class proportions and the whole dataset's, on top of the unavoidable rounding of a unit of
      m records (2/m, see ``balance.granularity_allowance``).
    max_js: stratification: largest Jensen-Shannon divergence (bits, TFDV's measure) allowed, on
      top of the rounding allowance.
    min_count_per_class: every class must have at least this many examples in every split
      (1: no class may be missing from eval or test).
    fail_on_imbalance: stop the run (after writing the reports) when the stratification verdict
      fails (a split or shard off the whole's class proportions, or a class under
      min_count_per_class in a split). The dataset's own class imbalance never stops a run.
    near_full_mask: a mask covering at least this fraction of its pixels counts as near-full.
    max_class_ratio: the class-imbalance warning threshold: largest class count / smallest
      class count in the whole dataset above this is a CLASS_IMBALANCE warning (use the class
      weights).
    max_mask_presence_gap: a split whose share of records with a mask differs from the whole
      dataset's by more than this (plus a 3-sigma sampling allowance) is a MASK_PRESENCE_DRIFT
      warning.
    coverage_sample: masks decoded per shard file and class for the mask-coverage histogram
      (a seeded sample: records are in ImageExampleGen's hash order); 0 decodes every mask.
      Exact empty-mask and mask-check counts come from ImageExampleGen's summary.
    warnings_as_errors: warning findings (class imbalance, masks, image/mask drift) get
      severity ERROR in the TFDV anomalies and the reports. They still do not stop the run.
    max_drift_linf: drift between spans: largest L-infinity distance allowed between this
      span's class mix (all splits pooled) and the baseline span's (an ERROR above it); also
      the threshold of the image size/mode distributions' L-infinity and of the mask presence
      rate's absolute difference (WARNINGs above it).
    max_drift_js: drift between spans: largest Jensen-Shannon divergence (bits) allowed between
      the two spans' class mixes (an ERROR above it); also the threshold of the mask-coverage
      histograms' JS (a WARNING above it).
    fail_on_drift: stop the run (after writing the reports) when the class mix drifted from the
      baseline span beyond max_drift_linf or max_drift_js.
  """
  max_linf: float = DEFAULT_MAX_LINF
  max_js: float = DEFAULT_MAX_JS
  min_count_per_class: int = DEFAULT_MIN_COUNT_PER_CLASS
  fail_on_imbalance: bool = False
  near_full_mask: float = DEFAULT_NEAR_FULL_MASK
  max_class_ratio: float = DEFAULT_MAX_CLASS_RATIO
  max_mask_presence_gap: float = DEFAULT_MAX_MASK_PRESENCE_GAP
  coverage_sample: int = DEFAULT_COVERAGE_SAMPLE
  warnings_as_errors: bool = False
  max_drift_linf: float = DEFAULT_MAX_DRIFT_LINF
  max_drift_js: float = DEFAULT_MAX_DRIFT_JS
  fail_on_drift: bool = False

  def __post_init__(self):
    for name, option in (('max_linf', '--max-linf'), ('max_js', '--max-js'),
                         ('max_mask_presence_gap', '--max-mask-presence-gap'),
                         ('max_drift_linf', '--max-drift-linf'),
                         ('max_drift_js', '--max-drift-js')):
      value = getattr(self, name)
      if not _number(value) or not 0 <= value <= 1:
        raise ConfigError(f'{name} must be a number in [0, 1], got {value!r} (option {option}).')
      object.__setattr__(self, name, float(value))
    if not _number(self.max_class_ratio) or not self.max_class_ratio >= 1:
      raise ConfigError(f'max_class_ratio must be a number >= 1 (largest class / smallest '
                        f'class), got {self.max_class_ratio!r} (option --max-class-ratio).')
    object.__setattr__(self, 'max_class_ratio', float(self.max_class_ratio))
    for name, option in (('min_count_per_class', '--min-count-per-class'),
                         ('coverage_sample', '--coverage-sample')):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f'{name} must be an int >= 0, got {value!r} (option {option}).')
    for name, option in (('fail_on_imbalance', '--fail-on-imbalance'),
                         ('warnings_as_errors', '--warnings-as-errors'),
                         ('fail_on_drift', '--fail-on-drift')):
      if not isinstance(getattr(self, name), bool):
        raise ConfigError(f'{name} must be True or False, got {getattr(self, name)!r} '
                          f'(option {option}).')
    if not _number(self.near_full_mask) or not 0 < self.near_full_mask <= 1:
      raise ConfigError(f'near_full_mask must be in (0, 1], got {self.near_full_mask!r}.')
