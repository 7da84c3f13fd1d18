"""`python -m harness.worker REQUEST.json`: the entry point every Python runtime launches."""

import sys

from harness.worker.main import main

sys.exit(main())
