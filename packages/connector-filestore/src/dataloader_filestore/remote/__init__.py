"""Remote file systems for the filestore connector: S3 (s3fs) and SFTP (paramiko).

The rest of the connector works on ``(fs, root)`` from :func:`open_remote` with generic fsspec
calls (``glob``, ``info``, ``open``, ``mv``, ``rm``, ``makedirs``, ``exists``), the same way for
local files, S3 and SFTP. What each backend guarantees on top:

- a file opened for writing publishes nothing unless it is closed without an exception (S3: the
  upload is completed only then, otherwise aborted; SFTP: a temporary name renamed into place);
- S3 never shows part of an object; an SFTP rename replaces the target in one step;
- SFTP operations survive a dropped connection (re-connect with backoff, resume), and raise
  ``TransientConnectorError`` when retries run out; authentication failures raise at once.

Drivers load here, never when the plugin module is imported.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from dataloader.errors import ConnectorError

from .location import Location, parse_location, redact, split_scheme
from .options import RemoteOptions

__all__ = [
    "RemoteOptions",
    "Location",
    "open_remote",
    "parse_location",
    "file_marker",
    "check_remote",
    "is_remote",
    "redact",
]


def is_remote(path: str, backend: str | None = None) -> bool:
    """Whether ``path`` (or the forced ``backend``) selects S3 or SFTP."""
    return (backend or split_scheme(path)[0] or "local") in ("s3", "sftp")


def open_remote(config: Any) -> tuple[Any, str]:
    """The fsspec file system and root path for ``config.path`` plus the RemoteOptions keys.

    ``config`` is the filestore config model (or a dict with the same keys). ``root`` is the path
    as the returned file system spells it: ``bucket/prefix/*.csv`` for S3, ``/dir/*.csv`` for SFTP,
    an absolute path for local files; glob characters are kept.
    """
    location = parse_location(config)
    options = _options(config)
    if location.backend == "s3":
        from .s3 import build_s3

        return build_s3(options, location), location.root
    if location.backend == "sftp":
        from .sftp import build_sftp

        return build_sftp(options, location)
    import os

    from fsspec.implementations.local import LocalFileSystem

    return LocalFileSystem(), os.path.abspath(os.path.expanduser(location.root))


def check_remote(fs: Any, config: Any) -> None:
    """Raise ConnectorError with a reason a person can act on if the location is unreachable."""
    location = parse_location(config)
    if location.backend == "s3":
        from .s3 import check_s3

        check_s3(fs, location)


def file_marker(fs: Any, info: dict[str, Any]) -> dict[str, Any]:
    """What identifies one version of a file, for ``incremental: modified_time``.

    ``info`` is an fsspec info dict (from ``fs.info`` or ``fs.glob(..., detail=True)``) of any
    backend. Returns ``{"mtime": epoch seconds (float) or None, "size": int, "etag": str or None}``;
    a file is new or changed when its marker differs from the stored one. S3 gives LastModified
    (whole seconds) and the ETag, which catches a rewrite within the same second; SFTP and local
    files give the modification time (SFTP in whole seconds) and the size.
    """
    stamp = info.get("LastModified")
    if stamp is None:
        stamp = info.get("mtime")
    if stamp is None:
        stamp = info.get("updated") or info.get("created")
    etag = info.get("ETag") or info.get("etag")
    return {
        "mtime": _epoch(stamp),
        "size": int(info.get("size") or 0),
        "etag": str(etag).strip('"') if etag else None,
    }


def _epoch(stamp: Any) -> float | None:
    if stamp is None:
        return None
    if isinstance(stamp, dt.datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.timezone.utc)
        return stamp.timestamp()
    if isinstance(stamp, (int, float)):
        return float(stamp)
    try:
        return _epoch(dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")))
    except ValueError as exc:
        raise ConnectorError(f"filestore: cannot read the modification time {stamp!r}") from exc


def _options(config: Any) -> RemoteOptions:
    if isinstance(config, RemoteOptions):
        return config
    fields = RemoteOptions.model_fields
    if isinstance(config, dict):
        values = {name: config[name] for name in fields if name in config}
    else:
        values = {name: getattr(config, name) for name in fields if hasattr(config, name)}
    values = {name: value for name, value in values.items() if value is not None}
    return RemoteOptions.model_validate(values)
