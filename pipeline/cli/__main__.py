"""`python -m pipeline.cli`: the same as the `cxr-tfx` console script."""
import sys

from pipeline.cli import main

sys.exit(main())
