"""`python -m server.cli`: the `alma` command."""

import sys

from server.cli.main import main

sys.exit(main())
