"""`python -m consortium_client` runs the `consortium` command."""

import sys

from .cli import main

sys.exit(main())
