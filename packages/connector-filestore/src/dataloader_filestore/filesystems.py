"""Which fsspec file system a ``path`` lives on.

Plain paths and ``file://`` URLs are local; any other scheme is handed to
``dataloader_filestore.remote.open_remote``, which knows S3 and SFTP. Everything else in the
package uses only generic fsspec calls (``glob``, ``info``, ``open``, ``mv``, ``rm``,
``makedirs``, ``exists``) so that it behaves the same on every backend.
"""

from __future__ import annotations

import os
from typing import Any

from dataloader.errors import ConnectorError, TransientConnectorError

from dataloader_filestore.remote.location import scheme_of


def is_local(config: Any) -> bool:
    """Plain paths and ``file://`` URLs, unless ``backend`` forces a remote one."""
    return getattr(config, "backend", None) in (None, "local") and scheme_of(config.path) in (None, "file", "local")


def open_filesystem(config: Any) -> tuple[Any, str]:
    """``(fs, root_path)`` for ``config.path``; ``root_path`` is what to pass to ``fs`` calls."""
    if is_local(config):
        return _local(config.path)
    try:
        from dataloader_filestore.remote import open_remote
    except ImportError as exc:
        from dataloader.install import install_hint

        raise ConnectorError(f"remote paths need the S3/SFTP support: {install_hint('s3', 'sftp')}") from exc
    return open_remote(config)


def _local(path: str) -> tuple[Any, str]:
    try:
        from fsspec.implementations.local import LocalFileSystem
    except ImportError as exc:  # pragma: no cover - fsspec is a hard dependency
        from dataloader.install import install_hint

        raise ConnectorError(f"the filestore connector needs fsspec: {install_hint('filestore')}") from exc
    if scheme_of(path) is not None:
        path = path.split("://", 1)[1]
    path = os.path.abspath(os.path.expanduser(path)) if path else os.getcwd()
    return LocalFileSystem(), path.replace(os.sep, "/")


__all__ = ["open_filesystem", "scheme_of"]


#: Exception class names of network failures worth retrying, from the S3 and SFTP client stacks
#: (botocore, aiohttp, paramiko). Matched by name so that no client has to be imported here.
_TRANSIENT_NAMES = frozenset(
    {
        "EndpointConnectionError",
        "ConnectTimeoutError",
        "ReadTimeoutError",
        "ConnectionClosedError",
        "ServerDisconnectedError",
        "ClientConnectorError",
        "ClientOSError",
        "ServerTimeoutError",
        "SSHException",
    }
)
#: S3 error codes that mean "slow down" or "try again".
_TRANSIENT_CODES = frozenset(
    {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "RequestTimeTooSkewed", "InternalError", "ServiceUnavailable", "503", "500"}
)


def is_transient(exc: BaseException) -> bool:
    """Whether an I/O error of any backend is worth retrying (dropped connection, throttling)."""
    for error in (exc, exc.__cause__, exc.__context__):
        if error is None:
            continue
        if isinstance(error, (ConnectionError, TimeoutError)) or type(error).__name__ in _TRANSIENT_NAMES:
            return True
        response = getattr(error, "response", None)
        code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
        if code in _TRANSIENT_CODES:
            return True
    return False


def io_error(exc: BaseException, message: str, **facts: Any) -> ConnectorError:
    """The connector's error for a backend failure: transient ones are marked for retry."""
    if is_transient(exc):
        return TransientConnectorError(message, **facts)
    return ConnectorError(message, **facts)
