"""ClassBalance's configuration: a validated dataclass (pure: no TensorFlow/TFX imports)."""
import dataclasses

from components.errors import CxrError

DEFAULT_MAX_LINF = 0.02
DEFAULT_MAX_JS = 0.001
DEFAULT_MIN_COUNT_PER_CLASS = 1
DEFAULT_NEAR_FULL_MASK = 0.95


class ConfigError(CxrError, ValueError):
  """A ClassBalance option is invalid; the message names the option that fixes it."""


@dataclasses.dataclass(frozen=True)
class BalanceConfig:
  """Thresholds of the balance check.

  Attributes:
    max_linf: largest L-infinity distance allowed between a split's or shard's class
      proportions and the whole dataset's, on top of the unavoidable rounding of a unit of m
      records (2/m, see ``balance.granularity_allowance``).
    max_js: largest Jensen-Shannon divergence (bits, TFDV's measure) allowed, on top of the
      rounding allowance.
    min_count_per_class: every class must have at least this many examples in every split
      (1: no class may be missing from eval or test).
    fail_on_imbalance: stop the run (after writing the reports) when any check fails.
    near_full_mask: a mask covering at least this fraction of its pixels counts as near-full.
  """
  max_linf: float = DEFAULT_MAX_LINF
  max_js: float = DEFAULT_MAX_JS
  min_count_per_class: int = DEFAULT_MIN_COUNT_PER_CLASS
  fail_on_imbalance: bool = False
  near_full_mask: float = DEFAULT_NEAR_FULL_MASK

  def __post_init__(self):
    for name, option in (('max_linf', '--max-linf'), ('max_js', '--max-js')):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ConfigError(f'{name} must be a number in [0, 1], got {value!r} (option {option}).')
      object.__setattr__(self, name, float(value))
    if (isinstance(self.min_count_per_class, bool) or not isinstance(self.min_count_per_class, int)
        or self.min_count_per_class < 0):
      raise ConfigError(f'min_count_per_class must be an int >= 0, got '
                        f'{self.min_count_per_class!r} (option --min-count-per-class).')
    if not isinstance(self.fail_on_imbalance, bool):
      raise ConfigError(f'fail_on_imbalance must be True or False, got '
                        f'{self.fail_on_imbalance!r} (option --fail-on-imbalance).')
    if not 0 < self.near_full_mask <= 1:
      raise ConfigError(f'near_full_mask must be in (0, 1], got {self.near_full_mask!r}.')
