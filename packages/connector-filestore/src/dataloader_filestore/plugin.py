"""Entry point of dataloader-connector-filestore: the ``filestore`` connector and four formats.

Importing this module is cheap: the connector is registered as a
:class:`dataloader.plugins.PluginClass` (its module, fsspec and pyarrow load when a recipe builds
one; its capabilities are data in ``capabilities.py``), and the format classes import the
compression libraries and pyarrow's readers only when they are used.
"""

from __future__ import annotations

from dataloader.hookspecs import hookimpl


@hookimpl
def register_connectors(register):  # type: ignore[no-untyped-def]
    from dataloader.plugins import PluginClass

    from dataloader_filestore.capabilities import CAPABILITIES
    from dataloader_filestore.config import FilestoreConfig

    connector = PluginClass("dataloader_filestore.connector:FilestoreConnector", capabilities=CAPABILITIES)
    register("filestore", connector, config=FilestoreConfig)


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
