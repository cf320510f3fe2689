"""`python -m dogqueue` runs the command line."""

import sys

from dogqueue.cli import main

sys.exit(main())
