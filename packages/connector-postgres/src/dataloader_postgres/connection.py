"""Connecting to PostgreSQL, and turning psycopg2's exceptions into dataloader's.

This is the one boundary where driver exceptions are translated (``raise ... from exc``). It
decides once what is worth retrying: a refused or dropped connection (a server restarting) is
:class:`TransientConnectorError`; authentication failures, unknown hosts and databases, and SQL
errors fail at once. Messages never contain the password: every message passes through
:func:`scrub` before it leaves this module.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from dataloader.errors import ConnectorError, TransientConnectorError
from dataloader.install import install_hint

if TYPE_CHECKING:
    from dataloader_postgres.config import PostgresConfig

INSTALL_HINT = install_hint("postgres")

#: Settings every session gets, so that COPY's text output is unambiguous and exact.
SESSION_SETTINGS = (
    ("TimeZone", "UTC"),
    ("DateStyle", "ISO, YMD"),
    ("IntervalStyle", "iso_8601"),
    ("extra_float_digits", "3"),
    ("bytea_output", "hex"),
    ("client_encoding", "UTF8"),
)

# SQLSTATEs (and libpq texts, which carry no SQLSTATE at connect time) that retrying cannot fix.
_PERMANENT_CONNECT_TEXT = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "could not translate host name",
    "name or service not known",
    "invalid dsn",
    "invalid connection option",
    "invalid sslmode",
    "certificate",
    "permission denied",
)
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P")  # connection exceptions, operator intervention (shutdown)
_TRANSIENT_SQLSTATES = {"40001", "40P01", "53300"}  # serialization failure, deadlock, too many connections


def driver() -> Any:
    """psycopg2, imported on first use; a missing driver names the install command."""
    try:
        import psycopg2
        import psycopg2.extensions
        import psycopg2.sql
    except ImportError as exc:  # pragma: no cover - the package depends on psycopg2-binary
        raise ConnectorError(
            f"the postgres connector needs psycopg2; install it with: {INSTALL_HINT}", install=INSTALL_HINT
        ) from exc
    return psycopg2


def connect_kwargs(config: PostgresConfig, application_name: str | None = None) -> dict[str, Any]:
    """libpq's keywords for ``config``: the recipe's keys override the same ones in ``dsn``.

    Every connection gets TCP keepalives and a TCP user timeout, so a peer that vanished is
    noticed by the kernel in bounded time, whether the connection is idle or sending.
    """
    kwargs: dict[str, Any] = {}
    if config.dsn:
        kwargs["dsn"] = config.dsn
    for key, name in (("host", "host"), ("port", "port"), ("database", "dbname"), ("user", "user")):
        value = getattr(config, key)
        if value is not None:
            kwargs[name] = value
    if config.password:  # an empty value (an unset env_var default) means no password
        kwargs["password"] = config.password
    if config.sslmode:
        kwargs["sslmode"] = config.sslmode
    kwargs["connect_timeout"] = config.connect_timeout
    kwargs["keepalives"] = 1
    kwargs["keepalives_idle"] = setting(config, "keepalives_idle")
    kwargs["keepalives_interval"] = setting(config, "keepalives_interval")
    kwargs["keepalives_count"] = setting(config, "keepalives_count")
    kwargs["tcp_user_timeout"] = setting(config, "network_timeout") * 1000
    kwargs["application_name"] = application_name or "dataloader"
    return kwargs


def setting(config: Any, name: str) -> Any:
    """``config``'s value of a network key, or the connector's default for a config without it.

    Other models with the connection keys (the postgres state backend's) get the same hygiene.
    """
    from dataloader_postgres.config import PostgresConfig

    return getattr(config, name, PostgresConfig.model_fields[name].default)


def session_settings(config: PostgresConfig) -> list[tuple[str, str]]:
    settings = list(SESSION_SETTINGS)
    timeout = setting(config, "statement_timeout")
    if timeout:
        settings.append(("statement_timeout", f"{int(timeout * 1000)}"))
    return settings


def describe_server(config: PostgresConfig) -> str:
    """``user@host:port/database`` without the password, for messages."""
    facts: dict[str, Any] = {}
    if config.dsn:
        try:
            facts = dict(driver().extensions.parse_dsn(config.dsn))
        except Exception:
            facts = {}
    host = config.host or facts.get("host") or "localhost"
    port = config.port or facts.get("port") or 5432
    database = config.database or facts.get("dbname") or "(default database)"
    user = config.user or facts.get("user")
    return f"{user + '@' if user else ''}{host}:{port}/{database}"


def secrets_of(config: PostgresConfig) -> list[str]:
    secrets = [config.password] if config.password else []
    if config.dsn:
        try:
            password = driver().extensions.parse_dsn(config.dsn).get("password")
        except Exception:  # a DSN libpq cannot parse: find what looks like its password
            found = _PASSWORD_PATTERNS[0].search(config.dsn) or _PASSWORD_PATTERNS[1].search(config.dsn)
            password = found.group(2).strip("'") if found else None
        if password:
            secrets.append(password)
    return secrets


def _mask_dsn_fragments(text: str, config: PostgresConfig) -> str:
    """libpq's "invalid dsn" messages quote pieces of the DSN (``missing "=" after "..."``).

    Any quoted piece that comes from the DSN is masked: it may be part of a password with a
    space in it, which no pattern can recognise.
    """
    dsn = config.dsn or ""

    def mask(match: re.Match[str]) -> str:
        piece = match.group(1)
        return match.group(0) if piece in ("", "=") or piece not in dsn else '"********"'

    return re.sub(r'"([^"]*)"', mask, text)


_PASSWORD_PATTERNS = (
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)"),
)


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every password (given, or spelt inside a connection string) masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "********")
    text = _PASSWORD_PATTERNS[0].sub(r"\1********", text)
    return _PASSWORD_PATTERNS[1].sub(r"\1********\3", text)


def _server_message(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = primary or str(exc).strip() or type(exc).__name__
    detail = getattr(diag, "message_detail", None) if diag is not None else None
    hint = getattr(diag, "message_hint", None) if diag is not None else None
    where = getattr(diag, "context", None) if diag is not None else None
    lines = [" ".join(text.split())]
    if detail:
        lines.append(f"detail: {detail}")
    if hint:
        lines.append(f"hint: {hint}")
    if where and where.startswith("COPY"):  # names the row and column a bad value was in
        lines.append(f"where: {where.splitlines()[0]}")
    return "; ".join(lines)


_LIBPQ_AFTERTHOUGHT = " This probably means the server terminated abnormally before or while processing the request."


def _plain_lost_connection(message: str) -> str:
    """libpq's words for a dropped connection, made plain (they mean the same thing)."""
    if "no message from the libpq" in message:  # a COPY cut off by the server ending the session
        return "the server closed the connection"
    return message.replace(_LIBPQ_AFTERTHOUGHT, "")


def _drop_driver_noise(exc: BaseException) -> None:
    """Forget the ``SystemError`` psycopg2 chains to an error raised while it was failing.

    When the server ends a session during a COPY, psycopg2 reports the lost connection with a
    ``SystemError: <function decode ...> returned a result with an exception set`` as its cause:
    an artefact of the driver, which says nothing the error itself does not (``--debug`` would
    print it as a second, misleading traceback).
    """
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, SystemError):
        exc.__cause__ = None
        exc.__context__ = None
        exc.__suppress_context__ = True


_QUIET = threading.Lock()


def quiet_driver_noise() -> None:
    """Keep psycopg2's stray ``SystemError`` report out of the output (installed once).

    When the server ends a session in the middle of a COPY, psycopg2 decodes the server's last
    message while its own error is still pending; Python turns that into a ``SystemError`` that
    psycopg2 prints with ``PyErr_Print`` (that is, through ``sys.excepthook``) before raising the
    real error, which this module translates. The filter drops exactly that report: a
    ``SystemError`` caused by a psycopg2 error. Everything else reaches the previous hook.
    """
    with _QUIET:
        if getattr(sys.excepthook, "_dataloader_postgres", False):
            return
        previous = sys.excepthook
        psycopg2 = driver()

        def hook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
            if isinstance(value, SystemError) and isinstance(value.__cause__ or value.__context__, psycopg2.Error):
                return
            previous(kind, value, tb)

        hook._dataloader_postgres = True  # type: ignore[attr-defined]
        sys.excepthook = hook


def is_transient(exc: BaseException) -> bool:
    psycopg2 = driver()
    code = getattr(exc, "pgcode", None)
    if code:
        return code.startswith(_TRANSIENT_SQLSTATE_PREFIXES) or code in _TRANSIENT_SQLSTATES
    if isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)):
        text = str(exc).lower()
        return not any(marker in text for marker in _PERMANENT_CONNECT_TEXT)
    return False


def translate(
    exc: BaseException, config: PostgresConfig, doing: str, *, conn: Any = None, **facts: Any
) -> ConnectorError:
    """The dataloader error for a psycopg2 exception raised while ``doing`` something.

    ``conn``, when given, is the connection the failure happened on: if libpq has marked it
    closed, the failure was a lost connection whatever the exception says (a COPY cut off
    mid-stream surfaces as a bare ``DatabaseError``).
    """
    _drop_driver_noise(exc)
    message = _plain_lost_connection(scrub(_server_message(exc), secrets_of(config)))
    if config.dsn and ("invalid dsn" in message or "connection info string" in message):
        message = _mask_dsn_fragments(message, config)
    lost = conn is not None and bool(getattr(conn, "closed", 0))
    if lost and "closed" not in message and "terminat" not in message:
        message = f"the connection to the server was lost ({message})"
    server = describe_server(config)
    code = getattr(exc, "pgcode", None)
    context = {"server": server, "sqlstate": code, **facts}
    text = f"postgres ({server}): {doing} failed: {message}"
    lowered = message.lower()
    if "password authentication failed" in lowered or code in ("28P01", "28000"):
        text += "; check `user` and `password` (the password is not shown)"
    elif "could not translate host name" in lowered or "name or service not known" in lowered:
        text += "; check `host`"
    if lost or is_transient(exc):
        return TransientConnectorError(text, **context)
    return ConnectorError(text, **context)


#: Servers this process has connected to: refused there means restarting, so it is retried.
_REACHED: set[str] = set()


def _never_reached(exc: BaseException, config: PostgresConfig) -> bool:
    """A refused first connection: a wrong host or port far more often than a restart."""
    text = str(exc).lower()
    refused = "connection refused" in text or "no such file or directory" in text
    explicit = "connect_attempts" in config.model_fields_set
    return refused and not explicit and describe_server(config) not in _REACHED


def connect(config: PostgresConfig, application_name: str | None = None) -> Any:
    """An open connection with the session settings applied, retrying transient failures.

    Retries back off exponentially (``retry_initial_delay`` doubling up to ``retry_max_delay``)
    for ``connect_attempts`` attempts; the last failure is raised as
    :class:`TransientConnectorError` so the engine's own retry policy can still apply. A server
    this process never reached that refuses the connection fails at once, as a plain
    :class:`ConnectorError` (no retry here or in the engine): it is almost always a wrong
    ``host`` or ``port``, and retrying only delays that message. Set ``connect_attempts`` to wait
    for a server that is still starting.
    """
    import tenacity

    psycopg2 = driver()
    quiet_driver_noise()

    def attempt() -> Any:
        try:
            conn = psycopg2.connect(**connect_kwargs(config, application_name))
        except psycopg2.Error as exc:
            error = translate(exc, config, "connecting")
            if _never_reached(exc, config):
                raise ConnectorError(
                    f"{error.message}; check `host` and `port`, and that the server is running", **error.context
                ) from exc
            raise error from exc
        _REACHED.add(describe_server(config))
        try:
            with conn.cursor() as cur:
                for name, value in session_settings(config):
                    cur.execute("SELECT set_config(%s, %s, false)", (name, value))
            conn.commit()
        except psycopg2.Error as exc:
            conn.close()
            raise translate(exc, config, "configuring the session") from exc
        return conn

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: getattr(exc, "transient", False)),
        stop=tenacity.stop_after_attempt(config.connect_attempts),
        wait=tenacity.wait_exponential(multiplier=config.retry_initial_delay, max=config.retry_max_delay),
        reraise=True,
    )
    try:
        return retrying(attempt)
    except TransientConnectorError as exc:
        if config.connect_attempts > 1:
            exc.message = f"{exc.message} (gave up after {config.connect_attempts} attempts)"
            exc.args = (exc.message,)
            exc.context["attempts"] = config.connect_attempts
        raise


class ReplyDeadline:
    """Give up on a reply that does not come within ``seconds``: the connection is cut.

    TCP keepalives cannot see a middlebox (a proxy, a NAT, a firewall) that keeps the connection
    open but stops forwarding: the local end keeps acknowledging. So where a reply must come
    (a COMMIT; any statement under ``statement_timeout``, which the server itself enforces) a
    timer shuts the socket down when it is overdue; the waiting call then fails as a lost
    connection, and an unknown COMMIT outcome is settled by reading the commit record.
    """

    def __init__(self, conn: Any, seconds: float | None) -> None:
        self.conn, self.seconds = conn, seconds
        self.expired = False
        self._timer: threading.Timer | None = None

    def __enter__(self) -> ReplyDeadline:
        if self.seconds:
            self._timer = threading.Timer(self.seconds, self._cut)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _cut(self) -> None:
        self.expired = True
        try:
            fd = self.conn.fileno()
            with socket.socket(fileno=os.dup(fd)) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError, driver().Error):
            pass  # already closed: the waiting call fails on its own
