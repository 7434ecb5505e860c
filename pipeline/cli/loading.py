"""Loading TensorFlow, TFX and Beam (15-40 s) under a spinner: only the commands that need them,
after their first line."""
import importlib
import warnings

from pipeline import progress

HEAVY_LIBRARIES = 'TensorFlow, TFX and Beam'


def _load_libraries(display: progress.Display, *modules: str) -> None:
  """Imports TensorFlow, TFX and Beam (15-40 s) under a spinner, then ``modules``."""
  progress.quiet_native_logs()
  with display.activity(f'loading {HEAVY_LIBRARIES}',
                        done_text=f'loaded {HEAVY_LIBRARIES} in {{seconds}}'):
    with warnings.catch_warnings():
      warnings.simplefilter('ignore')
      for name in ('tensorflow', 'tfx.v1', 'apache_beam', *modules):
        importlib.import_module(name)
