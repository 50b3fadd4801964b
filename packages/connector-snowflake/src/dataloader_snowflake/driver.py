"""The boundary with ``snowflake-connector-python``: loading it, connecting, translating its errors.

Every driver exception leaves this package as a :class:`ConnectorError` made here, once, with any
configured secret scrubbed from the text. Failures that a later attempt can get past (network
errors, timeouts, throttling, HTTP 5xx, a warehouse that is resuming or queueing, a lock wait) are
:class:`TransientConnectorError`, so the engine's retry logic never looks at driver classes.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from dataloader.errors import ConnectorError, DataLoaderError, TransientConnectorError

from dataloader_snowflake.config import SnowflakeConfig

INSTALL_HINT = (
    "the snowflake connector needs the 'snowflake-connector-python' package; from this repository: "
    "pip install ./packages/connector-snowflake (or pip install './packages/core[snowflake]')"
)

#: Driver classes whose failure is worth retrying: HTTP 5xx, 429, request timeouts.
_TRANSIENT_CLASSES = (
    "InternalServerError",
    "ServiceUnavailableError",
    "GatewayTimeoutError",
    "BadGatewayError",
    "RequestTimeoutError",
    "TooManyRequests",
    "OtherHTTPRetryableError",
    "RequestExceedMaxRetryError",
)
#: Snowflake error numbers worth retrying: the statement waited too long for a lock (625), the
#: warehouse is resuming / was suspended mid-query (604 cancelled by suspension, 608 warehouse
#: resuming, 630 queued too long), and the client's network errors (250001-250003, 251xxx).
_TRANSIENT_ERRNOS = frozenset({604, 608, 625, 630, 250001, 250002, 250003, 251005, 251006})
_TRANSIENT_WORDS = ("connection reset", "connection refused", "timed out", "timeout", "temporarily unavailable", "is resuming", "throttl")


def load_driver() -> ModuleType:
    try:
        import snowflake.connector
    except ImportError as exc:
        raise ConnectorError(INSTALL_HINT, connector="snowflake") from exc
    return snowflake.connector


def _private_key_der(config: SnowflakeConfig) -> bytes | None:
    """The configured key pair's private key as DER (PKCS#8), which the driver takes as ``private_key``."""
    if not (config.private_key or config.private_key_file):
        return None
    from cryptography.hazmat.primitives import serialization

    if config.private_key_file:
        path = Path(os.path.expanduser(config.private_key_file))
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConnectorError(
                f"could not read private_key_file {path}: {exc.strerror or exc}; check the path and its permissions",
                key="private_key_file",
            ) from None
        where = f"private_key_file {path}"
    else:
        assert config.private_key is not None
        pem = config.private_key.strip().encode("utf-8")
        where = "private_key"
    passphrase = config.private_key_passphrase.encode("utf-8") if config.private_key_passphrase else None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError:
        hint = "it is encrypted: set private_key_passphrase" if passphrase is None else "it is not encrypted: remove private_key_passphrase"
        raise ConnectorError(f"could not load the {where}: {hint}", key="private_key") from None
    except ValueError:
        raise ConnectorError(
            f"could not load the {where}: not a PEM private key, or the passphrase is wrong "
            "(expected '-----BEGIN PRIVATE KEY-----' or '-----BEGIN ENCRYPTED PRIVATE KEY-----')",
            key="private_key",
        ) from None
    return key.private_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def connect_arguments(config: SnowflakeConfig) -> dict[str, Any]:
    """Keyword arguments for ``snowflake.connector.connect``; secrets included, so never log them."""
    arguments: dict[str, Any] = {
        "account": config.account,
        "application": "dataloader",
        # Server-side binding: values travel apart from the SQL text (no client-side quoting).
        "paramstyle": "qmark",
        "login_timeout": config.login_timeout,
        "session_parameters": {"CLIENT_OUT_OF_BAND_TELEMETRY_ENABLED": False, **config.session_parameters},
    }
    for key in ("user", "password", "authenticator", "token", "role", "warehouse", "database", "host", "port", "protocol"):
        value = getattr(config, key)
        if value is not None:
            arguments[key] = value
    if config.schema_:
        arguments["schema"] = config.schema_
    if config.network_timeout is not None:
        arguments["network_timeout"] = config.network_timeout
    der = _private_key_der(config)
    if der is not None:
        arguments["private_key"] = der
        arguments.setdefault("authenticator", "SNOWFLAKE_JWT")
    return arguments


def connect(config: SnowflakeConfig) -> Any:
    driver = load_driver()
    arguments = connect_arguments(config)
    try:
        return driver.connect(**arguments)
    except driver.Error as exc:
        raise translate(exc, config, f"connect to Snowflake {config.describe_account()} as user {config.user}") from exc


def is_transient(exc: BaseException) -> bool:
    if type(exc).__name__ in _TRANSIENT_CLASSES:
        return True
    errno = getattr(exc, "errno", None)
    if isinstance(errno, int) and errno in _TRANSIENT_ERRNOS:
        return True
    text = str(exc).lower()
    return any(word in text for word in _TRANSIENT_WORDS)


def scrub(text: str, config: SnowflakeConfig) -> str:
    """``text`` without any secret of ``config`` in it."""
    for secret in (config.password, config.token, config.private_key, config.private_key_passphrase):
        if secret:
            text = text.replace(secret, "********")
    return text


def translate(exc: BaseException, config: SnowflakeConfig, action: str, **facts: Any) -> DataLoaderError:
    """One :class:`ConnectorError` for a driver exception: what was tried, and Snowflake's message."""
    if isinstance(exc, DataLoaderError):
        return exc
    message = getattr(exc, "msg", None) or str(exc) or type(exc).__name__
    text = scrub(" ".join(str(message).split()), config)
    cls = TransientConnectorError if is_transient(exc) else ConnectorError
    errno = getattr(exc, "errno", None)
    if errno:
        facts.setdefault("errno", errno)
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        facts.setdefault("sqlstate", sqlstate)
    return cls(f"could not {action}: {text}", connector="snowflake", **facts)


@contextlib.contextmanager
def translating(config: SnowflakeConfig, action: str, **facts: Any) -> Iterator[None]:
    """Turn a driver error raised in the block into a :class:`ConnectorError`."""
    driver = load_driver()
    try:
        yield
    except driver.Error as exc:
        raise translate(exc, config, action, **facts) from exc


__all__ = ["INSTALL_HINT", "connect", "connect_arguments", "is_transient", "load_driver", "scrub", "translate", "translating"]
