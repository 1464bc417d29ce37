"""The data layer: reading and validating input tables, ingest into the DB, the synthetic bank."""
