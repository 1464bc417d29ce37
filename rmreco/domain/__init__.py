"""The domain: table and column names, categorical levels, the product catalog and errors.

Everything else in rmreco imports from here; this package imports nothing of rmreco.
"""
