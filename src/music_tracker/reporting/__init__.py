"""Dashboards as code: definitions in ``dashboards/``, rendered as a static site (and, later,
provisioned into Metabase from the same definitions)."""
