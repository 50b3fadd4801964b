"""dataloader-connector-filestore: files as sources and destinations.

``import dataloader_filestore`` stays cheap; fsspec, the compression libraries and pyarrow's
format readers load when a connector is built or a file is opened.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
