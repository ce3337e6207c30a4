"""Music Tracker: one person's listening history as a DuckDB star schema and dashboards."""

import os

__version__ = "0.1.0"

# Polars' allocator (jemalloc) keeps freed pages for reuse by default, which on the 2 GB
# production VM reads as ~200 MB of extra resident memory during an import. Returning them
# at once costs a few percent of speed. It must be set before Polars loads, hence here.
os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
