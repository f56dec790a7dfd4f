import sys

from dmllab.cli import main

sys.exit(main())
