"""`python -m evals`: the same as `alma eval`."""

import sys

from evals.runner import main

sys.exit(main())
