"""PostgreSQL source and destination for dataloader.

Importing this package is cheap: psycopg2 loads only when a connector is built.
"""

__version__ = "0.1.0"
