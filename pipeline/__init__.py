"""frame-ingest: feeds a family photo frame's library and keeps it free of duplicates.

The path of one photo: sources/ -> staging.py -> gate.py -> library.py, driven by
ingest.py; cli.py is the command line. See docs/ for how-to and reference pages.
"""

__version__ = "0.1.0"
