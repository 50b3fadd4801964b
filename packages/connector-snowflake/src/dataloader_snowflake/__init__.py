"""Snowflake source and destination for dataloader.

Importing this package is cheap: ``snowflake-connector-python`` loads only when a connector is built.
"""

__version__ = "0.1.0"
