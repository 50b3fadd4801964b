"""Which fsspec file system a ``path`` lives on.

Plain paths and ``file://`` URLs are local; any other scheme is handed to
``dataloader_filestore.remote.open_remote``, which knows S3 and SFTP. Everything else in the
package uses only generic fsspec calls (``glob``, ``info``, ``open``, ``mv``, ``rm``,
``makedirs``, ``exists``) so that it behaves the same on every backend.
"""

from __future__ import annotations

import os
import re
from typing import Any

from dataloader.errors import ConnectorError

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


def scheme_of(path: str) -> str | None:
    match = _SCHEME.match(path)
    return match.group(1).lower() if match else None


def open_filesystem(config: Any) -> tuple[Any, str]:
    """``(fs, root_path)`` for ``config.path``; ``root_path`` is what to pass to ``fs`` calls."""
    scheme = scheme_of(config.path)
    backend = getattr(config, "backend", None)
    if backend in (None, "local") and scheme in (None, "file", "local"):
        return _local(config.path)
    try:
        from dataloader_filestore.remote import open_remote
    except ImportError as exc:
        raise ConnectorError(
            f"no file system for {config.path!r}: remote paths need pip install 'dataloader[s3]' or 'dataloader[sftp]'",
            path=config.path,
        ) from exc
    return open_remote(config)


def _local(path: str) -> tuple[Any, str]:
    try:
        from fsspec.implementations.local import LocalFileSystem
    except ImportError as exc:  # pragma: no cover - fsspec is a hard dependency
        raise ConnectorError(
            "the filestore connector needs fsspec: pip install 'dataloader[filestore]'"
        ) from exc
    if scheme_of(path) is not None:
        path = path.split("://", 1)[1]
    path = os.path.abspath(os.path.expanduser(path)) if path else os.getcwd()
    return LocalFileSystem(), path.replace(os.sep, "/")


__all__ = ["open_filesystem", "scheme_of"]
