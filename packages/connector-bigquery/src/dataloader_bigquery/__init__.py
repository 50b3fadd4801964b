"""BigQuery source and destination for dataloader (entry point ``dataloader_bigquery.plugin``)."""

__version__ = "0.1.0"
