"""Entry point of dataloader-connector-filestore: the ``filestore`` connector and four formats.

Importing this module is cheap: the connector and format classes import fsspec, the compression
libraries and pyarrow's readers only when they are built or used.
"""

from __future__ import annotations

from dataloader.hookspecs import hookimpl


@hookimpl
def register_connectors(register):  # type: ignore[no-untyped-def]
    from dataloader_filestore.config import FilestoreConfig
    from dataloader_filestore.connector import FilestoreConnector

    register("filestore", FilestoreConnector, config=FilestoreConfig)


@hookimpl
def register_formats(register):  # type: ignore[no-untyped-def]
    from dataloader_filestore.formats.csv_format import CsvFormat, CsvOptions
    from dataloader_filestore.formats.json_format import JsonFormat, JsonLinesFormat, JsonOptions
    from dataloader_filestore.formats.parquet_format import ParquetFormat, ParquetOptions

    register("csv", CsvFormat, config=CsvOptions)
    register("json", JsonFormat, config=JsonOptions)
    register("jsonl", JsonLinesFormat, config=JsonOptions)
    register("parquet", ParquetFormat, config=ParquetOptions)


@hookimpl
def register_state_backends(register):  # type: ignore[no-untyped-def]
    from dataloader_filestore.state_backend import FsspecStateBackend, FsspecStateConfig

    register("fsspec", FsspecStateBackend, config=FsspecStateConfig)
