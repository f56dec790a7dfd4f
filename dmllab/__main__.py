"""`python -m dmllab`: the `dmllab` command (`dmllab.cli`)."""

import sys

from dmllab.cli import main

sys.exit(main())
