"""Metabase: the pinned versions, the API client and the provisioner (docs/metabase.md).

The versions are one pair: the DuckDB driver release embeds one DuckDB, and that DuckDB must
open the serving copy the pipeline writes (``tests/test_publish.py`` proves it with that
exact version). The Metabase image (``deploy/``) is built from the same pins.
"""

# The Metabase release line and the DuckDB driver release paired with it (the exact
# Metabase patch release and the jars' checksums are pinned where the image is built).
METABASE_VERSION = "0.63"
DUCKDB_DRIVER_VERSION = "1.5.5.0"
# The DuckDB that driver release embeds (its release notes; docs/metabase.md).
DRIVER_DUCKDB_VERSION = "1.5.5"
# The storage format of the serving copy: the newest the driver's DuckDB writes itself,
# so it reads it, with that release's compression (smaller than the v1.0 default format).
SERVING_STORAGE_VERSION = "v1.5.0"
