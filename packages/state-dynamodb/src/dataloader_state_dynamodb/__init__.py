"""DynamoDB state backend for dataloader (``state: {backend: dynamodb, table: ...}``)."""

__version__ = "0.1.0"
