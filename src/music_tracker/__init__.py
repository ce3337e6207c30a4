"""Music Tracker: one person's listening history as a DuckDB star schema and dashboards."""

__version__ = "0.1.0"
