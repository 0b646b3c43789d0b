"""``python -m pipeline`` is the same as the ``frame-ingest`` command."""

import sys

from pipeline.cli import main

sys.exit(main())
