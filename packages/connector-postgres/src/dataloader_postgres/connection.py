"""Connecting to PostgreSQL, and turning psycopg2's exceptions into dataloader's.

This is the one boundary where driver exceptions are translated (``raise ... from exc``). It
decides once what is worth retrying: a refused or dropped connection (a server restarting) is
:class:`TransientConnectorError`; authentication failures, unknown hosts and databases, and SQL
errors fail at once. Messages never contain the password: every message passes through
:func:`scrub` before it leaves this module.
"""

from __future__ import annotations

import re
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


def connect_kwargs(config: PostgresConfig) -> dict[str, Any]:
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
    kwargs.setdefault("application_name", "dataloader")
    return kwargs


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
        except Exception:
            password = None
        if password:
            secrets.append(password)
    return secrets


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
    message = scrub(_server_message(exc), secrets_of(config))
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


def connect(config: PostgresConfig) -> Any:
    """An open connection with the session settings applied, retrying transient failures.

    Retries back off exponentially (``retry_initial_delay`` doubling up to ``retry_max_delay``)
    for ``connect_attempts`` attempts; the last failure is raised as
    :class:`TransientConnectorError` so the engine's own retry policy can still apply.
    """
    import tenacity

    psycopg2 = driver()

    def attempt() -> Any:
        try:
            conn = psycopg2.connect(**connect_kwargs(config))
        except psycopg2.Error as exc:
            raise translate(exc, config, "connecting") from exc
        try:
            with conn.cursor() as cur:
                for name, value in SESSION_SETTINGS:
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
