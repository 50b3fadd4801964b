"""S3 (and S3-compatible stores) through s3fs.

What this adds to plain s3fs:

- a write that fails never publishes anything. s3fs completes the upload when a file object is
  closed, also when it is closed by ``with`` unwinding after an exception or by garbage
  collection; :class:`_AtomicS3File` aborts the multipart upload (or drops the buffered one-shot
  PUT) instead. A finished object appears whole, at once, when the upload completes: S3 never shows
  part of an object.
- no listing cache, so a source listing right after a destination wrote sees the new objects.
- credentials stay ``SecretStr`` until the file system is built.
"""

from __future__ import annotations

from typing import Any

from dataloader.errors import ConnectorError

from .location import Location, reveal

#: Multipart part size, and the range fetched per read request. Memory per open file is a few of
#: these (a 300 MiB object written and read back peaks near 160 MiB RSS, imports included). With
#: S3's limit of 10,000 parts it caps one object at about 80 GiB; datasets split into part files.
BLOCK_SIZE = 8 * 2**20


def build_s3(config: Any, location: Location):
    try:
        import s3fs
        from s3fs.core import S3File
    except ImportError as exc:  # pragma: no cover - depends on the installation
        from dataloader.install import install_hint

        raise ConnectorError(
            f"filestore: S3 paths need s3fs; install it with: {install_hint('s3')}",
            path=location.display(),
        ) from exc

    class _AtomicS3File(S3File):
        """An S3File that discards, rather than publishes, a write that did not finish."""

        def __exit__(self, exc_type, exc, tb):
            if exc_type is not None and self.writable():
                self.discard()
            else:
                self.close()

        def discard(self) -> None:
            """Abort the upload: nothing is published, and the file is closed."""
            if self.closed:
                return
            try:
                super().discard()
            finally:
                self.closed = True

        def __del__(self):
            # Garbage-collected while still open for writing means nobody finished the write.
            if not self.closed and self.mode != "rb":
                try:
                    self.discard()
                except Exception:
                    pass
                return
            super().__del__()

    class _S3FileSystem(s3fs.S3FileSystem):
        def _open(self, path, mode="rb", **kwargs):
            handle = super()._open(path, mode=mode, **kwargs)
            # Same object, one more behaviour; s3fs builds S3File itself, so we re-class it.
            handle.__class__ = _AtomicS3File
            return handle

    client_kwargs: dict[str, Any] = {}
    if config.region:
        client_kwargs["region_name"] = config.region
    kwargs: dict[str, Any] = {
        "anon": bool(config.anon),
        "default_block_size": BLOCK_SIZE,
        "use_listings_cache": False,
        "skip_instance_cache": True,
        "client_kwargs": client_kwargs,
    }
    if config.endpoint_url:
        kwargs["endpoint_url"] = config.endpoint_url
    if config.profile:
        kwargs["profile"] = config.profile
    if config.key is not None or config.secret is not None:
        if config.key is None or config.secret is None:
            raise ConnectorError(
                "filestore: S3 `key` and `secret` go together; set both, or neither to use the "
                "standard AWS credential chain (environment, profile, instance role)",
                path=location.display(),
            )
        kwargs["key"] = reveal(config.key)
        kwargs["secret"] = reveal(config.secret)
    if config.token is not None:
        kwargs["token"] = reveal(config.token)
    try:
        return _S3FileSystem(**kwargs)
    except Exception as exc:
        raise ConnectorError(
            f"filestore: cannot set up S3 access for {location.display()}: {type(exc).__name__}",
            path=location.display(),
        ) from exc


def check_s3(fs: Any, location: Location) -> None:
    """Raise a ConnectorError a person can act on if the bucket cannot be listed."""
    bucket = location.root.split("/", 1)[0]
    try:
        fs.ls(bucket, detail=False)
    except FileNotFoundError as exc:
        raise ConnectorError(f"filestore: S3 bucket {bucket!r} does not exist", path=location.display()) from exc
    except PermissionError as exc:
        raise ConnectorError(
            f"filestore: access to S3 bucket {bucket!r} was denied; check the credentials and the bucket policy",
            path=location.display(),
        ) from exc
    except Exception as exc:
        raise ConnectorError(
            f"filestore: cannot reach S3 bucket {bucket!r}: {type(exc).__name__}: {_safe_text(exc)}",
            path=location.display(),
        ) from exc


def _safe_text(exc: BaseException) -> str:
    # botocore messages name the operation and the error code, not the credentials.
    return str(exc).splitlines()[0][:300] if str(exc) else ""
