"""The data layer: reading and validating input tables and their ingest into the DB.

The synthetic bank that writes such tables is its own package, ``rmreco.synthetic``.
"""
