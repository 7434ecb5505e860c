"""Session fixtures shared by the suite. Heavy imports stay inside fixtures."""
import pytest


@pytest.fixture(scope='session')
def demo_dataset(tmp_path_factory):
  """A small demo dataset in the Kaggle layout: 64 rows (Viral Pneumonia: 4), ~20% without masks."""
  from pipeline import demo_data  # pylint: disable=g-import-not-at-top
  return demo_data.generate(str(tmp_path_factory.mktemp('demo')), scale=0.003,
                            missing_masks=0.2, seed=7)
