"""SFTP through paramiko, behind fsspec's SFTPFileSystem.

fsspec's own SFTP file system accepts unknown host keys by default and knows nothing of dropped
connections, so this module builds the SSH client itself and hands it to a small subclass:

- host keys are checked against ``known_hosts`` (``~/.ssh/known_hosts`` or the ``known_hosts``
  key); an unknown key is refused with a message that says how to trust it, unless the recipe says
  ``host_key_policy: accept_new`` (remember it in known_hosts, like ``ssh -o
  StrictHostKeyChecking=accept-new``) or pins ``host_key_fingerprint: SHA256:...``;
- writes go to a hidden temporary name in the target directory and are renamed into place with
  ``posix-rename`` when the file is closed without error, so readers see the old file or the whole
  new one;
- a connection that drops in the middle of a listing, a read or a write is re-opened with backoff
  and the operation resumes where it was (reads seek, writes re-send the unconfirmed block);
  authentication failures are never retried.
"""

from __future__ import annotations

import base64
import errno
import getpass
import hashlib
import io
import logging
import os
import posixpath
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from dataloader.errors import ConnectorError, TransientConnectorError

from .location import Location, reveal

try:  # paramiko/fsspec's sftp are optional: the `sftp` extra
    import paramiko
    from fsspec import AbstractFileSystem
    from fsspec.implementations.sftp import SFTPFileSystem
except ImportError:  # pragma: no cover - depends on the installation
    paramiko = None
    AbstractFileSystem = SFTPFileSystem = object  # type: ignore[assignment,misc]

log = logging.getLogger("dataloader.filestore.sftp")

T = TypeVar("T")

#: How much of a write is held in memory before it is sent and confirmed by the server; a write
#: interrupted by a dropped connection re-sends at most this much.
WRITE_BLOCK = 4 * 2**20
#: Bytes requested per read round (pipelined by paramiko in 32 KiB requests).
READ_BLOCK = 2 * 2**20
CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class SFTPSettings:
    host: str
    port: int
    username: str
    password: Any = None  # SecretStr
    private_key: Any = None  # SecretStr: a path or the key text
    private_key_passphrase: Any = None  # SecretStr
    known_hosts: str | None = None
    host_key_policy: str = "reject"
    host_key_fingerprint: str | None = None
    retries: int = 5
    backoff: float = 0.2  # seconds before the first retry; doubles each time, at most 5 s

    @property
    def where(self) -> str:
        return f"{self.username}@{self.host}:{self.port}"


def settings_from(config: Any, location: Location) -> SFTPSettings:
    return SFTPSettings(
        host=location.host or "",
        port=location.port or 22,
        username=location.username or getpass.getuser(),
        password=config.password,
        private_key=config.private_key,
        private_key_passphrase=config.private_key_passphrase,
        known_hosts=config.known_hosts,
        host_key_policy=config.host_key_policy,
        host_key_fingerprint=config.host_key_fingerprint,
        retries=getattr(config, "retries", 5),
    )


def build_sftp(config: Any, location: Location) -> tuple[Any, str]:
    if paramiko is None:
        from dataloader.install import install_hint

        raise ConnectorError(
            f"filestore: SFTP paths need paramiko; install it with: {install_hint('sftp')}",
            path=location.display(),
        )
    fs = ResilientSFTPFileSystem(settings_from(config, location))
    root = location.root
    if not root.startswith("/"):  # relative to the login directory, as with the sftp command
        home = fs.call("resolve the login directory", ".", lambda: fs.ftp.normalize("."))
        root = posixpath.join(home, root)
    return fs, root


# -- host keys --------------------------------------------------------------------------------
def fingerprint(key: Any) -> str:
    """OpenSSH's SHA256 fingerprint of a host key, as ``ssh-keygen -lf`` prints it."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def _known_hosts_path(settings: SFTPSettings) -> str:
    return os.path.expanduser(settings.known_hosts or "~/.ssh/known_hosts")


def _host_key_policy(settings: SFTPSettings):
    class CheckedHostKey(paramiko.MissingHostKeyPolicy):
        """Called by paramiko only for a host that is not in the loaded known_hosts."""

        def missing_host_key(self, client, hostname, key):
            seen = fingerprint(key)
            pinned = settings.host_key_fingerprint
            if pinned:
                if seen == pinned.strip():
                    return
                raise ConnectorError(
                    f"filestore: the SFTP server {settings.host}:{settings.port} presented host key {seen}, "
                    f"not the pinned {pinned}; refusing to connect (the key changed or someone is in the middle)",
                    host=settings.host,
                    port=settings.port,
                    fingerprint=seen,
                )
            if settings.host_key_policy == "accept_new":
                _remember_host_key(_known_hosts_path(settings), hostname, key)
                log.warning("added the host key of %s (%s) to %s", hostname, seen, _known_hosts_path(settings))
                return
            raise ConnectorError(
                f"filestore: the SFTP server {settings.host}:{settings.port} is not in known_hosts "
                f"({_known_hosts_path(settings)}); it presented a {key.get_name()} key {seen}. "
                "To trust it, check that fingerprint with the server's owner and then either pin it with "
                f"`host_key_fingerprint: {seen}`, set `host_key_policy: accept_new` to remember it on first "
                f"connection, or add it to known_hosts (ssh-keyscan -p {settings.port} {settings.host})",
                host=settings.host,
                port=settings.port,
                fingerprint=seen,
            )

    return CheckedHostKey()


def _remember_host_key(path: str, hostname: str, key: Any) -> None:
    directory = os.path.dirname(path)
    try:
        if directory:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        with open(path, "a", encoding="ascii") as handle:
            handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
    except OSError as exc:
        raise ConnectorError(
            f"filestore: cannot add the SFTP host key to {path}: {exc.strerror or exc}", path=path
        ) from exc


# -- connecting --------------------------------------------------------------------------------
def _load_private_key(settings: SFTPSettings):
    value = reveal(settings.private_key)
    passphrase = reveal(settings.private_key_passphrase)
    if "-----BEGIN" in value:
        return _load_inline_key(value, passphrase, settings)
    path = os.path.expanduser(value.strip())
    try:
        # positional: paramiko 3.x names the argument `passphrase`, 5.x `password`
        return paramiko.PKey.from_path(path, passphrase.encode() if passphrase else None)
    except FileNotFoundError as exc:
        raise ConnectorError(f"filestore: private key file {path} does not exist", path=path) from exc
    except (TypeError, ValueError, paramiko.SSHException) as exc:
        raise ConnectorError(
            f"filestore: cannot load the private key {path}: it is encrypted and `private_key_passphrase` "
            "is missing or wrong, or it is not an RSA, ECDSA or Ed25519 key",
            path=path,
        ) from exc


def _load_inline_key(text: str, passphrase: str | None, settings: SFTPSettings):
    last: Exception | None = None
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase)
        except (paramiko.SSHException, ValueError, TypeError) as exc:
            last = exc
    raise ConnectorError(
        "filestore: cannot load the inline `private_key`: it is encrypted and `private_key_passphrase` is "
        "missing or wrong, or it is not an RSA, ECDSA or Ed25519 key",
        host=settings.host,
    ) from last


def connect(settings: SFTPSettings):
    """An SSHClient connected and authenticated, or a ConnectorError (Transient if worth retrying)."""
    client = paramiko.SSHClient()
    if not settings.host_key_fingerprint:  # a pin replaces known_hosts: the policy checks it
        path = _known_hosts_path(settings)
        if os.path.exists(path):
            try:
                client.load_host_keys(path)
            except (OSError, paramiko.SSHException) as exc:
                raise ConnectorError(f"filestore: cannot read known_hosts file {path}: {exc}", path=path) from exc
    client.set_missing_host_key_policy(_host_key_policy(settings))
    explicit = settings.password is not None or settings.private_key is not None
    kwargs: dict[str, Any] = {
        "port": settings.port,
        "username": settings.username,
        "timeout": CONNECT_TIMEOUT,
        "banner_timeout": CONNECT_TIMEOUT,
        "auth_timeout": CONNECT_TIMEOUT,
        "allow_agent": not explicit,
        "look_for_keys": not explicit,
    }
    if settings.private_key is not None:
        kwargs["pkey"] = _load_private_key(settings)
    if settings.password is not None:
        kwargs["password"] = reveal(settings.password)
    try:
        client.connect(settings.host, **kwargs)
        client.get_transport().set_keepalive(30)
        return client
    except ConnectorError:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise ConnectorError(
            f"filestore: the host key of SFTP server {settings.host}:{settings.port} does not match the one in "
            f"{_known_hosts_path(settings)} (it presented {fingerprint(exc.key)}); refusing to connect. If the "
            f"server's key was changed on purpose, remove the old entry with "
            f"ssh-keygen -R '[{settings.host}]:{settings.port}' -f {_known_hosts_path(settings)}",
            host=settings.host,
            port=settings.port,
        ) from exc
    except paramiko.AuthenticationException as exc:
        client.close()
        how = " and ".join(
            name for name, value in (("password", settings.password), ("private key", settings.private_key)) if value
        )
        raise ConnectorError(
            f"filestore: SFTP authentication failed for {settings.where} (tried {how or 'agent and default keys'}); "
            "check `username` and the password or private key",
            host=settings.host,
            port=settings.port,
            username=settings.username,
        ) from exc
    except socket.gaierror as exc:
        client.close()
        raise ConnectorError(
            f"filestore: cannot resolve SFTP host {settings.host!r}", host=settings.host, port=settings.port
        ) from exc
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        raise TransientConnectorError(
            f"filestore: cannot connect to SFTP server {settings.host}:{settings.port}: {type(exc).__name__}: {exc}",
            host=settings.host,
            port=settings.port,
        ) from exc


# -- the file system ---------------------------------------------------------------------------
class _ConnectionLost(Exception):
    pass


class ResilientSFTPFileSystem(SFTPFileSystem):
    """fsspec's SFTP file system on our own SSH client, re-connecting when the connection drops."""

    cachable = False  # each recipe gets its own session, and settings hold secrets

    def __init__(self, settings: SFTPSettings) -> None:
        # SFTPFileSystem.__init__ would connect with an auto-accepting host key policy; skip it.
        AbstractFileSystem.__init__(self)
        self.settings = settings
        self.host = settings.host
        self.ssh_kwargs: dict[str, Any] = {}
        self.temppath = "/tmp"
        self.client = None
        self.ftp = None
        self.reconnects = 0
        self._connect()

    # connection ----------------------------------------------------------------------------
    def _connect(self) -> None:
        def attempt():
            self.client = connect(self.settings)
            self.ftp = self.client.open_sftp()

        self._retrying(f"connect to {self.settings.host}:{self.settings.port}", attempt, on_transient=True)

    def _reconnect(self) -> None:
        self._drop()
        self.reconnects += 1
        log.warning("SFTP connection to %s:%s dropped; reconnecting", self.settings.host, self.settings.port)
        self._connect()

    def _drop(self) -> None:
        for thing in (self.ftp, self.client):
            try:
                if thing is not None:
                    thing.close()
            except Exception:
                pass
        self.ftp = self.client = None

    def _alive(self) -> bool:
        transport = self.client.get_transport() if self.client is not None else None
        return bool(transport and transport.is_active())

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` means the session is gone, as opposed to an answer from the server.

        The server's answers arrive as OSError with an errno (no such file, permission denied) or
        a plain failure; anything at the SSH or socket level means the connection broke. The
        transport may not have noticed yet, so the exception type counts as much as its state.
        """
        if not self._alive():
            return True
        channel = getattr(self.ftp, "sock", None)
        if channel is not None and (channel.closed or channel.eof_received):
            return True
        return isinstance(exc, (paramiko.SSHException, EOFError, ConnectionError, TimeoutError))

    def close_session(self) -> None:
        self._drop()

    def _retrying(self, what: str, func: Callable[[], T], *, on_transient: bool = False) -> T:
        from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

        retryable = (_ConnectionLost, TransientConnectorError) if on_transient else (_ConnectionLost,)
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.settings.retries + 1),
                wait=wait_exponential(multiplier=self.settings.backoff, max=5),
                retry=retry_if_exception_type(retryable),
                reraise=True,
            ):
                with attempt:
                    return func()
        except _ConnectionLost as exc:
            raise TransientConnectorError(
                f"filestore: lost the SFTP connection to {self.settings.host}:{self.settings.port} while trying to "
                f"{what}, {self.settings.retries} retries did not help: {exc}",
                host=self.settings.host,
                port=self.settings.port,
            ) from exc.__cause__
        raise AssertionError("unreachable")  # pragma: no cover

    def call(self, what: str, path: str, func: Callable[[], T]) -> T:
        """Run ``func`` (which uses ``self.ftp``), re-connecting and repeating it if the connection drops."""

        def once() -> T:
            if not self._alive():
                self._reconnect()
            try:
                return func()
            except (OSError, EOFError, paramiko.SSHException) as exc:
                if not self._lost(exc):
                    raise  # the server answered: a real error (no such file, permission denied ...)
                self._drop()  # the next attempt starts a new session
                raise _ConnectionLost(f"{type(exc).__name__}: {exc}") from exc

        return self._retrying(f"{what} {path}", once)

    # fsspec operations -----------------------------------------------------------------------
    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        stat = self.call("stat", path, lambda: self.ftp.stat(path))
        out = self._decode_stat(stat)
        out["name"] = path
        return out

    def ls(self, path, detail=False, **kwargs):
        path = self._strip_protocol(path)
        stats = self.call("list", path, lambda: list(self.ftp.listdir_iter(path)))
        entries = [self._decode_stat(stat, path) for stat in stats]
        return entries if detail else sorted(entry["name"] for entry in entries)

    def exists(self, path, **kwargs):
        # fsspec's exists() turns *any* error into False; a dropped connection is not "missing".
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def makedirs(self, path, exist_ok=False, mode=0o777):
        path = self._strip_protocol(path)
        if self.exists(path):
            if exist_ok:
                return
            raise FileExistsError(f"File exists: {path}")
        current = "/" if path.startswith("/") else ""
        for part in path.split("/"):
            if not part:
                continue
            current = posixpath.join(current, part) if current else part
            if not self.exists(current):
                try:
                    self.call("create directory", current, lambda p=current: self.ftp.mkdir(p, mode))
                except OSError:
                    if not self.isdir(current):  # another writer may have created it meanwhile
                        raise

    def rmdir(self, path):
        path = self._strip_protocol(path)
        self.call("remove directory", path, lambda: self.ftp.rmdir(path))

    def _rm(self, path):
        path = self._strip_protocol(path)
        if self.isdir(path):
            self.rmdir(path)
            return

        first = [True]

        def remove():
            try:
                self.ftp.remove(path)
            except FileNotFoundError:
                if first[0]:
                    raise  # repeated after a drop, the first try may have removed it already
            finally:
                first[0] = False

        self.call("remove", path, remove)

    def mv(self, path1, path2, **kwargs):
        old, new = self._strip_protocol(path1), self._strip_protocol(path2)
        first = [True]

        def rename():
            try:
                self.ftp.posix_rename(old, new)
            except FileNotFoundError:
                # Repeated after a drop: the first try may have renamed it already.
                if first[0] or not self._exists_quietly(new):
                    raise
            finally:
                first[0] = False

        self.call("rename", f"{old} -> {new}", rename)

    def _exists_quietly(self, path: str) -> bool:
        try:
            self.ftp.stat(path)
            return True
        except OSError:
            return False

    def _open(self, path, mode="rb", block_size=None, autocommit=True, **kwargs):
        path = self._strip_protocol(path)
        if mode == "rb":
            return io.BufferedReader(_ResumingReader(self, path), buffer_size=block_size or READ_BLOCK)
        if mode in ("wb", "xb"):
            return _RenamingWriter(self, path)
        raise ValueError(f"filestore: SFTP files open for 'rb' or 'wb', not {mode!r}")


class _ResumingReader(io.RawIOBase):
    """A remote file read in pipelined blocks; after a dropped connection it re-opens and seeks.

    Small reads are served from one read-ahead block (a request per small read would wait a
    round trip each); large reads go straight into the caller's buffer.
    """

    def __init__(self, fs: ResilientSFTPFileSystem, path: str) -> None:
        self.fs, self.path = fs, path
        self._pos = 0
        self._handle = None
        self._block = b""
        self._block_start = 0
        self._size = fs.call("open", path, self._reopen)

    def _reopen(self) -> int:
        self._handle = self.fs.ftp.open(self.path, "rb")
        return self._handle.stat().st_size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fetch(self, offset: int, length: int) -> bytes:
        def fetch() -> bytes:
            if self._handle is None or self._handle.sftp is not self.fs.ftp:
                self._reopen()
            # Plain seek + read: paramiko's readv() starts a prefetch thread that was seen to wait
            # forever for a reply under load; sequential requests cannot lose one.
            self._handle.seek(offset)
            chunks, remaining = [], length
            while remaining > 0:
                chunk = self._handle.read(remaining)
                if not chunk:
                    break
                chunks.append(chunk)
                remaining -= len(chunk)
            return b"".join(chunks)

        data = self.fs.call("read", self.path, fetch)
        if len(data) != length:
            raise OSError(errno.EIO, f"{self.path} ended at byte {offset + len(data)}, expected {offset + length}")
        return data

    def readinto(self, buffer) -> int:
        remaining = max(0, self._size - self._pos)
        want = min(len(buffer), remaining)
        if want == 0:
            return 0
        inside = self._pos - self._block_start
        if not 0 <= inside < len(self._block):
            if want >= READ_BLOCK:  # large: no copy through the read-ahead block
                data = self._fetch(self._pos, min(want, READ_BLOCK))
                buffer[: len(data)] = data
                self._pos += len(data)
                return len(data)
            self._block = self._fetch(self._pos, min(READ_BLOCK, remaining))
            self._block_start, inside = self._pos, 0
        count = min(want, len(self._block) - inside)
        buffer[:count] = self._block[inside : inside + count]
        self._pos += count
        return count

    def readall(self) -> bytes:
        chunks = []
        while self._pos < self._size:
            chunk = bytearray(min(READ_BLOCK, self._size - self._pos))
            count = self.readinto(chunk)
            chunks.append(bytes(chunk[:count]))
        return b"".join(chunks)

    def close(self) -> None:
        if self._handle is not None:
            try:
                self._handle.close()
            except Exception:
                pass
            self._handle = None
        self._block = b""
        super().close()


class _RenamingWriter(io.RawIOBase):
    """Writes a hidden temporary file next to ``path`` and renames it into place on a clean close.

    Data goes out in blocks. Each block is written pipelined through its own handle, which is
    closed, and then confirmed by the file's size on the server (as paramiko's own ``putfo``
    confirms uploads). After a dropped connection the writer therefore knows exactly how many
    bytes the temporary file holds: it re-connects, cuts the file there and re-sends the block.
    Closing after an exception (or ``discard()``) removes the temporary file: nothing changes.
    """

    def __init__(self, fs: ResilientSFTPFileSystem, path: str) -> None:
        self.fs, self.path = fs, path
        directory, name = posixpath.split(path)
        self.temp_path = posixpath.join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
        self._confirmed = 0
        self._pending = bytearray()
        self._finished = False
        fs.call("create", self.temp_path, lambda: fs.ftp.open(self.temp_path, "wb").close())

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._confirmed + len(self._pending)

    def write(self, data) -> int:
        if self.closed:
            raise ValueError("write to a closed file")
        self._pending += data
        if len(self._pending) >= WRITE_BLOCK:
            self._send()
        return len(data)

    def _send(self) -> None:
        if not self._pending:
            return
        block = bytes(self._pending)
        expected = self._confirmed + len(block)

        def send() -> None:
            handle = self.fs.ftp.open(self.temp_path, "r+b")
            try:
                handle.truncate(self._confirmed)  # drops whatever a dropped attempt left behind
                handle.seek(self._confirmed)
                handle.set_pipelined(True)
                handle.write(block)
            finally:
                handle.close()
            stored = self.fs.ftp.stat(self.temp_path).st_size
            if stored != expected:
                raise OSError(
                    errno.EIO,
                    f"the SFTP server stored {stored} bytes of {self.path} where {expected} were sent (disk full?)",
                )

        self.fs.call("write", self.temp_path, send)
        self._confirmed = expected
        self._pending.clear()

    def flush(self) -> None:
        """Data goes out in blocks; the file becomes visible only on close."""

    def close(self) -> None:
        if self.closed:
            return
        try:
            if not self._finished:
                self._send()
                self.fs.mv(self.temp_path, self.path)
                self._finished = True
        except BaseException:
            self.discard()
            raise
        super().close()

    def discard(self) -> None:
        """Throw the write away: the target path is left as it was."""
        self._pending.clear()
        try:
            if self.fs._alive():
                self.fs.ftp.remove(self.temp_path)
        except Exception:
            log.warning("could not remove the temporary file %s", self.temp_path)
        self._finished = True
        super().close()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        if not self.closed:  # never finished: do not publish a partial file
            self.discard()
