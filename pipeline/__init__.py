"""frame-ingest: feeds a family photo frame's library and keeps it free of duplicates.

The path of one photo: sources/ -> staging.py -> gate.py -> transforms.py -> moves.py ->
the library, driven by run.py; cli.py is the command line. See docs/architecture.md.
"""

import os

# The numpy work here is a few tiny matrix products per photo (the 32x32 thumbnail), and
# the parallelism is a process pool, one worker per core. A multi-threaded BLAS would put
# a thread per core under every worker: on a busy 2-core machine a 0.2 ms product then
# took 20 ms waiting for its threads (measured, docs/performance.md). One BLAS thread per
# process; set before numpy is first imported, inherited by the pool's workers. A value
# the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
