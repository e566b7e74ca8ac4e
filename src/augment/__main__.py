"""`python -m augment` from the sources (PYTHONPATH=src): the same command line as `python augment.py`."""

import sys

from augment.cli import main

sys.exit(main())
