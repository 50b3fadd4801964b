"""DuckDB source and destination for dataloader.

Importing this package is cheap: the ``duckdb`` driver loads only when a connector is built.
"""

__version__ = "0.1.0"
