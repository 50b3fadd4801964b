"""Which backend a filestore ``path`` points at, and the path in the form its file system uses.

Parsed by hand rather than with ``urllib.parse`` because glob characters are legal in a path:
``sftp://host/data/file?.csv`` has no query string.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import Any

from dataloader.errors import ConnectorError

SCHEMES = {"s3": "s3", "s3a": "s3", "sftp": "sftp", "ssh": "sftp", "file": "local"}
_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")


@dataclass(frozen=True)
class Location:
    backend: str  # "local", "s3" or "sftp"
    root: str  # the path as the backend's fsspec file system spells it (no scheme)
    host: str | None = None
    port: int | None = None
    username: str | None = None

    def display(self) -> str:
        """The location for messages: never carries credentials."""
        if self.backend == "s3":
            return f"s3://{self.root}"
        if self.backend == "sftp":
            port = f":{self.port}" if self.port else ""
            user = f"{self.username}@" if self.username else ""
            return f"sftp://{user}{self.host}{port}{self.root}"
        return self.root


def scheme_of(path: str) -> str | None:
    """The URL scheme of ``path``, lower case (``s3``, ``sftp``, ``gs`` ...), or None for a plain path."""
    match = _SCHEME.match(path)
    return match.group(1).lower() if match else None


def split_scheme(path: str) -> tuple[str | None, str]:
    """``(backend, rest)`` for a scheme we know (``s3a`` is ``s3``, ``ssh`` is ``sftp``); else ``(None, path)``."""
    scheme = scheme_of(path)
    if scheme in SCHEMES:
        return SCHEMES[scheme], path.split("://", 1)[1]
    return None, path


def redact(path: str) -> str:
    """``path`` with any ``user:password@`` reduced to ``user@`` (for messages)."""
    backend, rest = split_scheme(path)
    if backend is None:
        return path
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    return f"{path.partition('://')[0]}://{netloc}{slash}{tail}"


def parse_location(config: Any) -> Location:
    """Resolve ``config.path`` (+ ``backend``, ``host``, ``port``, ``username``) into a Location."""
    path = str(_get(config, "path") or "")
    if not path:
        raise ConnectorError("filestore: `path` is empty; give a local path, s3://bucket/... or sftp://host/...")
    forced = _get(config, "backend")
    scheme_backend, rest = split_scheme(path)
    backend = forced or scheme_backend or "local"
    if scheme_backend and forced and scheme_backend != forced:
        raise ConnectorError(
            f"filestore: path {redact(path)!r} is a {scheme_backend} URL but `backend: {forced}` is set; "
            "remove one of them",
            path=redact(path),
        )
    if backend == "s3":
        return _s3_location(rest if scheme_backend else path)
    if backend == "sftp":
        return _sftp_location(config, path, rest if scheme_backend else None)
    if scheme_backend == "local":
        return Location("local", rest)
    return Location("local", path)


def _s3_location(rest: str) -> Location:
    root = rest.lstrip("/")
    bucket = root.split("/", 1)[0]
    if not bucket:
        raise ConnectorError("filestore: an S3 path needs a bucket: s3://bucket/prefix/*.csv", path=f"s3://{rest}")
    if "@" in bucket:
        raise ConnectorError(
            "filestore: do not put credentials in an S3 path; use the `key` and `secret` keys "
            "(from env_var templates) or the standard AWS credential chain",
            path=redact(f"s3://{rest}"),
        )
    return Location("s3", root)


def _sftp_location(config: Any, path: str, rest: str | None) -> Location:
    host, port, username = _get(config, "host"), _get(config, "port"), _get(config, "username")
    if rest is None:
        root = path
    else:
        netloc, slash, tail = rest.partition("/")
        root = "/" + tail if slash else "/"
        if "@" in netloc:
            userinfo, _, netloc = netloc.rpartition("@")
            if ":" in userinfo:
                raise ConnectorError(
                    "filestore: do not put a password in an sftp:// path (it would show in logs); "
                    "use the `password` key with an env_var template",
                    path=redact(path),
                )
            url_user = userinfo
            if username and username != url_user:
                raise ConnectorError(
                    f"filestore: path names user {url_user!r} but `username` is {username!r}; keep one",
                    path=redact(path),
                )
            username = username or url_user
        url_host, url_port = _split_hostport(netloc, path)
        if host and url_host and host != url_host:
            raise ConnectorError(
                f"filestore: path names host {url_host!r} but `host` is {host!r}; keep one", path=redact(path)
            )
        if port and url_port and port != url_port:
            raise ConnectorError(
                f"filestore: path names port {url_port} but `port` is {port}; keep one", path=redact(path)
            )
        host, port = host or url_host, port or url_port
    if not host:
        raise ConnectorError(
            "filestore: an SFTP location needs a host: path: sftp://host[:port]/dir/*.csv, or `host` with `backend: sftp`",
            path=redact(path),
        )
    root = posixpath.normpath(root) if root not in ("", "/") else "/"
    return Location("sftp", root, host=host, port=int(port or 22), username=username)


def _split_hostport(netloc: str, path: str) -> tuple[str | None, int | None]:
    if not netloc:
        return None, None
    if netloc.startswith("["):  # [::1]:2222
        host, _, tail = netloc[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = netloc.partition(":")
    if port_text:
        if not port_text.isdigit():
            raise ConnectorError(f"filestore: port {port_text!r} in the path is not a number", path=redact(path))
        return host, int(port_text)
    return host, None


def reveal(value: Any) -> str | None:
    """The clear text of a secret, only at the moment a client is built."""
    if value is None:
        return None
    return value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)


def _get(config: Any, name: str) -> Any:
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)
