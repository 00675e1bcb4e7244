"""`python -m digitlab`: the same command line as the `digitlab` script."""

import sys

from digitlab.cli import main

sys.exit(main())
